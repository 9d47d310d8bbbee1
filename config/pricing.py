"""What a request costs and how much rate limiting a rollout tolerates: the plan's ``pricing``
and ``capacity`` blocks, and the rules that tie them to the criteria that need them.

``pricing`` gives each side a price per 1,000 prompt and per 1,000 completion tokens
(``candidate`` and ``baseline`` in a canary, the split's tracks in an A/B test);
``cost_per_request`` is judged from them. ``capacity.max_429_rate`` is the share of the
candidate's requests answered 429 by its upstream above which a phase holds instead of being
judged (``count_429_as_errors`` in ``comparison`` puts 429s back among the errors).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import Field, field_validator

from config.schema import Model
from config.thresholds import USAGE_METRICS, parse_threshold

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class Price(Model):
    """Price per 1,000 tokens, in the plan's currency (the same for every side)."""

    prompt_per_1k: float = Field(ge=0.0, le=1e6, allow_inf_nan=False)
    completion_per_1k: float = Field(ge=0.0, le=1e6, allow_inf_nan=False)

    def per_token(self) -> tuple[float, float]:
        return self.prompt_per_1k / 1000, self.completion_per_1k / 1000


class Capacity(Model):
    max_429_rate: str = "5%"
    """While more of the candidate's requests than this were answered 429 by its upstream
    (over the interval since the last look), the phase holds: no verdict advances or rolls
    it back; its ``max_duration`` still applies."""

    @field_validator("max_429_rate")
    @classmethod
    def _percent(cls, value: str) -> str:
        match = _PERCENT.match(value)
        if match is None or float(match.group(1)) > 100:
            raise ValueError(f"{value!r}: write a percentage between 0% and 100%, e.g. '5%'")
        return value

    def rate(self) -> float:
        match = _PERCENT.match(self.max_429_rate)
        assert match is not None  # validated
        return float(match.group(1)) / 100


def check_pricing(
    criteria: Iterable[tuple[str, str]],
    pricing: Mapping[str, Price],
    sides: tuple[str, str],
    *,
    statistical: bool,
) -> None:
    """``ValueError`` when a cost criterion lacks a price it needs (the first of ``sides``,
    the candidate, for any cost threshold; both for one relative to the baseline), or when a
    criterion relative to the baseline has no comparison to run (``statistical`` false)."""
    for metric, text in criteria:
        if metric not in USAGE_METRICS:
            continue
        relative = parse_threshold(text, metric).relative
        if relative and not statistical:
            raise ValueError(
                f"{metric} {text!r} is judged against the baseline: it needs "
                "comparison.method: statistical"
            )
        if metric != "cost_per_request":
            continue
        needed = sides if relative else sides[:1]
        missing = [side for side in needed if side not in pricing]
        if missing:
            raise ValueError(
                f"cost_per_request {text!r} needs pricing for {' and '.join(missing)} "
                "(pricing: {SIDE: {prompt_per_1k: …, completion_per_1k: …}})"
            )


def check_ab_pricing(
    split: Mapping[str, float], metrics: Iterable[str], pricing: Mapping[str, Price]
) -> None:
    """An A/B test's ``pricing`` names tracks of its split, and all of them for a cost report."""
    unknown = [track for track in pricing if track not in split]
    if unknown:
        raise ValueError(f"pricing names {', '.join(unknown)}, not in the split")
    if "cost_per_request" in metrics:
        missing = [track for track in split if track not in pricing]
        if missing:
            raise ValueError(f"cost_per_request needs pricing for {', '.join(missing)}")
