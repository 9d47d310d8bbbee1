"""A routing document with one dated flag, for the schedule tests (runner, steps, API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from config.flag_schedule import zone_of
from config.schema import RoutingDocument

TOKYO = zone_of("Asia/Tokyo")  # loaded here, outside the event loop, and kept
FLAG = "new_prompt_v2"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def document(schedule: dict[str, Any], **flag: Any) -> RoutingDocument:
    return RoutingDocument.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "stickiness": ["header:x-user-id"],
                    "baseline": "v1",
                    "tracks": [
                        {
                            "name": "v1",
                            "version": "v1.0.0",
                            "upstreams": ["http://a:1"],
                            "weight": 100,
                        },
                        {
                            "name": "v2",
                            "version": "v2.0.0",
                            "upstreams": ["http://b:1"],
                            "weight": 0,
                        },
                        {
                            "name": "v3",
                            "version": "v3.0.0",
                            "upstreams": ["http://c:1"],
                            "weight": 0,
                        },
                    ],
                }
            ],
            "segments": {
                "internal_users": {"conditions": [{"type": "user_group", "values": ["internal"]}]},
                "beta_users": {"conditions": [{"type": "user_group", "values": ["beta"]}]},
            },
            "feature_flags": {
                FLAG: {
                    "route": "chat",
                    "track": "v2",
                    "rollout_percentage": 25,
                    "target_groups": ["beta_users"],
                    "gradual_rollout": schedule,
                    **flag,
                }
            },
        }
    )


SEED = {
    "schedule": [
        {"date": "2025-04-01", "percentage": 5, "target": "internal_users"},
        {"date": "2025-04-08T09:30", "percentage": 20, "target": "beta_users"},
        {"date": "2025-04-15", "percentage": 100, "target": "all_users"},
        {"date": "2025-04-22", "percentage": 100, "target": "all_users", "action": "remove_flag"},
    ]
}
