"""What the admin API tests share: the admin token, its header, and the routing document
the control plane is seeded with (two tracks of route ``chat``, 95 % and 5 %)."""

from __future__ import annotations

from config.schema import RoutingDocument

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SEED = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "match": {"path_prefix": "/v1/"},
                "tracks": [
                    {
                        "name": "stable",
                        "version": "v1",
                        "upstreams": ["http://127.0.0.1:9001"],
                        "weight": 95,
                    },
                    {
                        "name": "canary",
                        "version": "v2",
                        "upstreams": ["http://127.0.0.1:9002"],
                        "weight": 5,
                    },
                ],
            }
        ]
    }
)
