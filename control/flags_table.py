"""The admin API's table for feature flags (``control.flags_api``): list, explain, one flag's
CRUD, its schedule's progress and commands."""

from __future__ import annotations

from dataclasses import replace

from config.flags import Flag
from control.api_table import Operation
from control.flags_api import (
    EXPLAIN_BODY_BYTES,
    delete_flag,
    explain_request,
    get_flag,
    get_schedule,
    list_flags,
    patch_flag,
    put_flag,
    schedule_command,
)
from control.openapi_parts import NAME_PARAM, REASON_PARAM, reasoned, write_op

EXPLAIN_BODY = {
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
        "body": {
            "type": ["object", "string", "null"],
            "description": "The request body as the proxy would buffer it (a JSON object or its "
            f"text, at most {EXPLAIN_BODY_BYTES} bytes): a conversation stickiness source reads "
            "the conversation's opening from it when the conversation id header is absent",
        },
    },
    "additionalProperties": False,
}
FLAG = "/v1/flags/{name}"
COMMAND_PARAM = {
    "name": "command",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["pause", "resume"]},
}

OPERATIONS = (
    Operation(
        "GET",
        "/v1/flags",
        list_flags,
        "Every feature flag in evaluation order, the segments and the attributes",
        ok="The flags",
    ),
    Operation(
        "POST",
        "/v1/flags/explain",
        explain_request,
        "Which track a request would get and why: the rule that matched and what each flag of "
        "the route did",
        ok="The explanation (config.flags.Explanation)",
        errors=(400, 404, 422),
        body=EXPLAIN_BODY,
    ),
    Operation(
        "GET", FLAG, get_flag, "One flag", ok="The flag", errors=(404,), params=(NAME_PARAM,)
    ),
    replace(
        write_op(
            "PUT",
            FLAG,
            put_flag,
            "Add a flag (evaluated after the others) or replace it in place; YAML bodies name "
            "the line of each error",
            reasoned(Flag),
            413,
            params=(NAME_PARAM, REASON_PARAM),
        ),
        body_types={"application/yaml": {"type": "string"}},
    ),
    write_op(
        "PATCH",
        FLAG,
        patch_flag,
        "Change some top-level fields of a flag (enabled, rollout_percentage ...)",
        {"type": "object"},
        413,
        params=(NAME_PARAM, REASON_PARAM),
    ),
    write_op(
        "DELETE",
        FLAG,
        delete_flag,
        "Remove a flag: its users go back to the weighted split",
        None,
        params=(NAME_PARAM, REASON_PARAM),
    ),
    Operation(
        "GET",
        f"{FLAG}/schedule",
        get_schedule,
        "Each dated step of the flag's schedule: applied, due or scheduled; the last result and "
        "the analysis",
        ok="The schedule's progress",
        errors=(404,),
        params=(NAME_PARAM,),
    ),
    write_op(
        "POST",
        f"{FLAG}/schedule/{{command}}",
        schedule_command,
        "Pause or resume the flag's schedule (gradual_rollout.paused); a resume restarts the "
        "analysis period",
        None,
        params=(NAME_PARAM, COMMAND_PARAM, REASON_PARAM),
    ),
)
