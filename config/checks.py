"""The checks around a rollout, shared by every strategy: the pre-deploy checklist (attested
or probed), the post-deploy checks, and the limits on bad looks."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from config.durations import Duration
from config.schema import Model, Name
from config.thresholds import SHADOW_METRICS, USAGE_METRICS, Metric, parse_threshold


def check_thresholds(criteria: dict[str, str]) -> dict[str, str]:
    for metric, text in criteria.items():
        parse_threshold(text, metric)
    return criteria


def check_probe_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: a probe URL is http:// or https:// with a host")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError(f"{value!r}: a probe URL cannot hold spaces or control characters")
    return value


class Probe(Model):
    """An HTTP check that satisfies a checklist item by itself (e.g. a CI status endpoint)."""

    url: Annotated[str, AfterValidator(check_probe_url)]
    method: Literal["GET", "POST"] = "GET"
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_regex: str | None = None


def _item_from_text(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


class ChecklistItem(Model):
    """One item of the pre-deploy checklist: attested by a person or a pipeline
    (``splitgate rollout check ID ITEM``), or satisfied by its ``probe``."""

    name: Name
    description: str | None = Field(default=None, max_length=500)
    probe: Probe | None = None


Item = Annotated[ChecklistItem, BeforeValidator(_item_from_text)]


class Checklist(Model):
    """The notes' pre-deploy checklist: ``required`` items hold the rollout before any user
    traffic until each is attested or probed; ``recommended`` items are shown as warnings."""

    required: list[Item] = Field(default_factory=list)
    recommended: list[Item] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Checklist:
        seen: set[str] = set()
        for item in (*self.required, *self.recommended):
            if item.name in seen:
                raise ValueError(f"checklist item {item.name!r} is listed twice")
            seen.add(item.name)
        return self


class PostDeploy(Model):
    """Checks run by themselves once a rollout is promoted, over the ``after`` that follows:
    the new version's upstreams answer, and its metrics meet ``criteria`` (by default the
    plan's primary canary metrics)."""

    after: Duration = Field(default=600.0, le=21_600.0)
    """At most 6 hours: the metric windows it is judged from live that long."""
    health: bool = True
    health_path: str = Field(default="/v1/models", pattern=r"^/")
    criteria: dict[Metric, str] | None = None

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        usage = sorted(USAGE_METRICS & set(value))
        if usage:
            # The promoted version has no baseline left and its price is the plan's business.
            raise ValueError(f"{', '.join(usage)}: not a post-deploy criterion")
        shadow = sorted(SHADOW_METRICS & set(value))
        if shadow:
            raise ValueError(
                f"{', '.join(shadow)}: measured on shadow copies, which a promoted version "
                "no longer gets: not a post-deploy criterion"
            )
        return check_thresholds(value)


class Limits(Model):
    """How many bad looks a rollout takes before it rolls back (Argo Rollouts' failure and
    error limits). A failure is a look where a ``rollback_if`` condition or a comparison with
    the baseline failed; an error is a look whose metrics could not be read."""

    consecutive_failures: int = Field(default=1, ge=1, le=100)
    total_failures: int = Field(default=1, ge=1, le=1000)
    consecutive_errors: int = Field(default=4, ge=1, le=100)
    total_errors: int = Field(default=20, ge=1, le=1000)
