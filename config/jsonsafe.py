"""JSON that every strict parser reads: never ``NaN`` or ``Infinity``.

Python's ``json`` writes ``Infinity`` for ``float("inf")`` (a percentile above the top
bucket, overwhelming evidence, a chi-square with a request on a zero-weight track), and
JavaScript's ``JSON.parse`` rejects the whole answer. Everything the product emits goes
through ``dumps``: a non-finite number becomes ``null``, the honest "no finite figure".
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``; non-finite floats are written as ``null``."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **kwargs)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (containers copied)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
