"""The OpenAPI paths of the feature flags, segments and attributes (``control.flags_api``,
``control.segments_api``)."""

from __future__ import annotations

from typing import Any

from control.openapi_parts import (
    NAME_PARAM,
    REASON_PARAM,
    reasoned,
    responses,
    write,
)

FLAG_PATHS: dict[str, Any] = {
    "/v1/flags": {
        "get": {
            "summary": "Every feature flag in evaluation order, the segments and the attributes",
            "responses": responses("The flags"),
        }
    },
    "/v1/flags/explain": {
        "post": {
            "summary": "Which track a request would get and why: the rule that matched and what each flag of the route did",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["route"],
                            "properties": {
                                "route": {"type": "string"},
                                "headers": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "Request headers, read as the proxy reads them (sticky key, attributes)",
                                },
                                "user_id": {"type": ["string", "null"]},
                                "attributes": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "Attribute values; they win over those the headers give",
                                },
                                "client_ip": {"type": "string"},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": responses("The explanation (config.flags.Explanation)", 400, 404, 422),
        }
    },
    "/v1/flags/{name}": {
        "get": {
            "summary": "One flag",
            "parameters": [NAME_PARAM],
            "responses": responses("The flag", 404),
        },
        "put": {
            **write(
                "Add a flag (evaluated after the others) or replace it in place; YAML bodies name the line of each error",
                None,
                413,
                params=[NAME_PARAM, REASON_PARAM],
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": reasoned({"$ref": "#/components/schemas/Flag"})},
                    "application/yaml": {"schema": {"type": "string"}},
                },
            },
        },
        "patch": write(
            "Change some top-level fields of a flag (enabled, rollout_percentage ...)",
            {"type": "object"},
            413,
            params=[NAME_PARAM, REASON_PARAM],
        ),
        "delete": write(
            "Remove a flag: its users go back to the weighted split",
            None,
            params=[NAME_PARAM, REASON_PARAM],
        ),
    },
    "/v1/flags/{name}/schedule": {
        "get": {
            "summary": "Each dated step of the flag's schedule: applied, due or scheduled; the last result and the analysis",
            "parameters": [NAME_PARAM],
            "responses": responses("The schedule's progress", 404),
        }
    },
    "/v1/flags/{name}/schedule/{command}": {
        "post": write(
            "Pause or resume the flag's schedule (gradual_rollout.paused); a resume restarts the analysis period",
            None,
            params=[
                NAME_PARAM,
                {
                    "name": "command",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["pause", "resume"]},
                },
                REASON_PARAM,
            ],
        )
    },
    "/v1/segments/{name}": {
        "get": {
            "summary": "One segment",
            "parameters": [NAME_PARAM],
            "responses": responses("The segment", 404),
        },
        "put": write(
            "Add or replace a segment (a named condition set)",
            reasoned({"$ref": "#/components/schemas/Segment"}),
            413,
            params=[NAME_PARAM, REASON_PARAM],
        ),
        "delete": write(
            "Remove a segment (409 while a flag or schedule names it)",
            None,
            params=[NAME_PARAM, REASON_PARAM],
        ),
    },
    "/v1/attributes": {
        "put": write(
            "Replace the map of attribute name to the request header it is read from",
            {
                "type": "object",
                "required": ["attributes"],
                "properties": {
                    "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                    "reason": {"type": "string"},
                },
                "additionalProperties": False,
            },
            413,
            params=[REASON_PARAM],
        )
    },
}
