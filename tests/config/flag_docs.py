"""What the feature-flag tests share: the seed's example file and its text, and routing
documents with flags on route ``chat`` (tracks ``stable`` and ``v2``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.schema import RoutingDocument

EXAMPLE = Path(__file__).parents[2] / "config" / "examples" / "flags.yaml"


def track(name: str, weight: float) -> dict[str, Any]:
    return {
        "name": name,
        "version": f"{name}.0",
        "upstreams": ["http://127.0.0.1:1"],
        "weight": weight,
    }


def document(
    flags: dict[str, Any], segments: dict[str, Any] | None = None, **extra: Any
) -> RoutingDocument:
    return RoutingDocument.model_validate(
        {
            "routes": [{"name": "chat", "tracks": [track("stable", 100), track("v2", 0)]}],
            "segments": segments or {},
            "feature_flags": flags,
            **extra,
        }
    )


def flag(**fields: Any) -> dict[str, Any]:
    return {"route": "chat", "track": "v2", **fields}


SEED = EXAMPLE.read_text(encoding="utf-8")
