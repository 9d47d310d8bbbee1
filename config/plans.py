"""Rollout plans, in the vocabulary of the deployment-pattern notes.

A plan file holds exactly one of ``canary_deployment``, ``blue_green_deployment``,
``big_bang_deployment`` or ``ab_testing``. The checks around a rollout (checklist, post-deploy
checks, limits) are in ``config.checks``; a canary's phases, and the shadow phase it may open
with, in ``config.phases``; environment defaults in ``config.environments``.
The seed's own blocks load as written once they say which route and which new version they
move (``route`` and ``candidate``). Durations read ``2 hours``, ``30 minutes``, ``5m``;
thresholds ``< 1%``, ``< 2000ms``, ``> 4.0/5.0``; conditions ``error_rate > 5%``.
"""

from __future__ import annotations

import copy
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from config.checks import Checklist, Limits, PostDeploy, check_thresholds
from config.durations import Duration
from config.loader import load_model, parse_model
from config.phases import Phase as Phase  # importers take it from here, as before
from config.phases import check_live_metrics, check_shadow_phases
from config.pricing import Capacity, Price, check_ab_pricing, check_pricing
from config.schema import Model, Name, UpstreamURL, Weight
from config.thresholds import (
    SHADOW_METRICS,
    Metric,
    parse_threshold,
    with_unit,
    with_unit_condition,
)


class Candidate(Model):
    """The new version a rollout moves traffic to; its upstreams are registered on ``track``."""

    track: Name = "canary"
    version: str = Field(min_length=1, max_length=128)
    upstreams: list[UpstreamURL] = Field(min_length=1)


OnInconclusive = Literal["pause", "promote", "rollback"]


class MetricCheck(Model):
    name: Metric
    threshold: str
    window: Duration | None = None
    """Accepted as the deployment-pattern notes write it, and shown with the verdict. A phase
    is judged on every request it served since it began (a confidence sequence needs the
    whole phase), not on a sliding window."""

    @model_validator(mode="after")
    def _threshold(self) -> MetricCheck:
        parse_threshold(self.threshold, self.name)
        return self


class CanaryMetrics(Model):
    primary: list[MetricCheck] = Field(
        default_factory=lambda: [
            MetricCheck(name="error_rate", threshold="< 1%", window=300),
            MetricCheck(name="latency_p95", threshold="< 2000ms", window=300),
        ]
    )
    secondary: list[MetricCheck] = Field(
        default_factory=lambda: [
            MetricCheck(name="hallucination_rate", threshold="< 5%", window=3600),
            MetricCheck(name="user_satisfaction", threshold="> 4.0/5.0", window=3600),
        ]
    )
    hold_for_secondary: bool = False
    """Hold a phase until the secondary metrics have enough samples (by default they are
    judged only once they do, and never hold a phase)."""


class Comparison(Model):
    method: Literal["statistical", "none"] = "statistical"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    baseline: str = "current_production"
    design_effect: float = Field(default=1.0, ge=1.0, le=100.0)
    """How much clustering by user inflates the variance of the counts (1: requests are
    independent). Sticky routes where a few heavy users make most of the errors need more:
    ``1 + (m - 1)·ρ`` for ``m`` requests per user and an intra-user correlation ``ρ``. Every
    threshold check and comparison then counts ``n / design_effect`` independent requests:
    slower, but a healthy candidate is not rolled back for its unlucky users
    (``bench/decisions.py``: 22.8 % of healthy rollouts rolled back uncorrected, 0.54 % with
    6, in a simulated sticky route)."""
    count_429_as_errors: bool = False
    """Upstream 429s are the upstream's capacity, not the candidate's fault: by default they
    count neither as errors nor as requests in the error rate and its comparison (the phase
    holds instead, see ``capacity``). True: they are errors, as before, and nothing holds."""
    max_tokens_per_request: int = Field(default=32_768, ge=1, le=10_000_000)
    """The most tokens (prompt + completion) one request can use: the model's context window.
    Showing that tokens or cost per request are *below* a value needs such a bound (a mean of
    unbounded counts has none); showing them above a value does not."""
    min_effect: float = Field(default=0.5, gt=0.0, le=1.0)
    """Deprecated and ignored: threshold checks once needed a fixed sample derived from it;
    they are now judged on confidence sequences, which need none. Kept so that plans, and the
    rollout records stored with them, that name it still load."""


class CanaryConfig(Model):
    initial_percentage: Weight | None = None
    increment: list[Weight] = Field(default_factory=list)
    observation_period: Duration = 7200.0
    success_criteria: dict[Metric, str] = Field(default_factory=dict)

    _criteria = field_validator("success_criteria")(check_thresholds)


class CanaryPlan(Model):
    route: Name
    baseline: Name = "stable"
    candidate: Candidate
    environment: Literal["development", "staging", "production"] | None = None
    config: CanaryConfig = CanaryConfig()
    phases: list[Phase] = Field(min_length=1)
    canary_metrics: CanaryMetrics = CanaryMetrics()
    comparison: Comparison = Comparison()
    limits: Limits = Limits()
    after_promotion: Literal["baseline", "candidate"] = "baseline"
    """Which track serves the new version once it is promoted. ``baseline`` (as Flagger and
    Argo Rollouts do): the baseline track takes the candidate's version and upstreams and all
    the traffic, and the candidate track goes back to 0 %, so the same plan shape runs the
    next version. ``candidate``: the candidate track keeps 100 % (blue-green's switch)."""
    on_inconclusive: OnInconclusive = "pause"
    """What a phase does when its ``max_duration`` has passed and a verdict is still
    inconclusive (too little traffic): pause with the reason, go on to the next phase, or
    roll back. ``promote`` suits low-traffic routes: the next phase gathers evidence faster,
    and the rollback conditions and comparisons keep guarding it."""
    checklist: Checklist = Checklist()
    post_deploy: PostDeploy = PostDeploy()
    pricing: dict[Literal["candidate", "baseline"], Price] = Field(default_factory=dict)
    """Price per 1,000 prompt and completion tokens of each side, for ``cost_per_request``."""
    capacity: Capacity = Capacity()

    @field_validator("phases")
    @classmethod
    def _ramp(cls, phases: list[Phase]) -> list[Phase]:
        check_shadow_phases(phases)
        for before, after in pairwise(phases):
            if after.traffic < before.traffic:
                raise ValueError(
                    f"phase {after.name!r} lowers traffic to {after.traffic:g}% after {before.traffic:g}%: "
                    "a canary only ramps up (a rollback is not a phase)"
                )
        return phases

    @model_validator(mode="after")
    def _tracks(self) -> CanaryPlan:
        if self.candidate.track == self.baseline:
            raise ValueError(f"the candidate's track {self.candidate.track!r} is the baseline's")
        return self

    @model_validator(mode="after")
    def _usage(self) -> CanaryPlan:
        used: list[tuple[str, str]] = [(c.name, c.threshold) for c in self.canary_metrics.primary]
        used += [(c.name, c.threshold) for c in self.canary_metrics.secondary]
        used += list(self.config.success_criteria.items())
        check_live_metrics([m for m, _ in used])
        used += [(c.metric, c.threshold.text) for p in self.phases for c in p.rollback_if]
        used += [item for p in self.phases for item in p.criteria.items()]
        statistical = self.comparison.method == "statistical"
        prices: dict[str, Price] = {str(side): p for side, p in self.pricing.items()}
        check_pricing(used, prices, ("candidate", "baseline"), statistical=statistical)
        return self


class SmokeTest(Model):
    """An HTTP probe sent to the idle colour alone, before any user traffic."""

    name: str = Field(min_length=1, max_length=200)
    method: Literal["GET", "POST"] = "POST"
    path: str = "/v1/chat/completions"
    body: dict[str, object] | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_regex: str | None = None
    expect_json_keys: list[str] = Field(default_factory=list)


class Prepare(Model):
    smoke_tests: list[SmokeTest] = Field(default_factory=list)


class Validate(Model):
    """The validation phase: with ``internal_only`` no user is sent to the idle colour; only
    requests that ask for it with the trusted override header (testers, synthetic checks)
    reach it, and its metrics are compared with the active colour's. Without
    ``internal_only``, ``traffic`` percent of users are sent to it."""

    traffic: Weight = 5.0
    internal_only: bool = True
    duration: Duration = 1800.0
    compare_with_baseline: bool = True


class Switch(Model):
    keep_previous: bool = True


class Cleanup(Model):
    after: Duration = 86_400.0


class BlueGreenPlan(Model):
    route: Name
    active: Name = "blue"
    idle: Name = "green"
    candidate: Candidate
    environment: Literal["development", "staging", "production"] | None = None
    phase_1_prepare: Prepare = Prepare()
    phase_2_validate: Validate = Validate()
    phase_3_switch: Switch = Switch()
    phase_4_cleanup: Cleanup = Cleanup()
    checklist: Checklist = Checklist()
    post_deploy: PostDeploy = PostDeploy()

    @model_validator(mode="after")
    def _colours(self) -> BlueGreenPlan:
        if self.active == self.idle:
            raise ValueError("the active and the idle colour must differ")
        if self.candidate.track != self.idle:
            raise ValueError(
                f"the candidate deploys to the idle colour {self.idle!r}, not {self.candidate.track!r}"
            )
        return self


class BigBangPlan(Model):
    route: Name
    candidate: Candidate
    environment: Literal["development", "staging", "production"] | None = None
    checklist: Checklist = Checklist()
    post_deploy: PostDeploy = PostDeploy()


def _default_ab_metrics() -> list[Metric]:
    return ["error_rate", "latency_p95", "hallucination_rate", "user_satisfaction"]


def as_canary(plan: BigBangPlan) -> CanaryPlan:
    """A big bang is a canary of one phase at 100 %, promoted without analysis."""
    return CanaryPlan(
        route=plan.route,
        candidate=plan.candidate,
        environment=plan.environment,
        phases=[Phase(name="big bang: 100%", traffic=100)],
        canary_metrics=CanaryMetrics(primary=[], secondary=[]),
        comparison=Comparison(method="none"),
        checklist=plan.checklist,
        post_deploy=plan.post_deploy,
    )


def blue_green_as_canary(plan: BlueGreenPlan) -> CanaryPlan:
    """Blue-green as two phases over the idle colour: validation (internal traffic only, or a
    small share of users), compared with the active colour, then the switch to 100 %, held
    for the clean-up period (the old colour stays registered at 0 %, so an abort rolls back
    with one weight change). The smoke tests run before either phase and are kept with the
    rollout."""
    validate = plan.phase_2_validate
    return CanaryPlan(
        route=plan.route,
        baseline=plan.active,
        candidate=plan.candidate,
        environment=plan.environment,
        phases=[
            Phase(
                name="validate (internal traffic only)" if validate.internal_only else "validate",
                traffic=0 if validate.internal_only else validate.traffic,
                duration=validate.duration,
            ),
            Phase(name="switch", traffic=100, duration=plan.phase_4_cleanup.after),
        ],
        canary_metrics=CanaryMetrics(secondary=[]),
        comparison=Comparison(method="statistical" if validate.compare_with_baseline else "none"),
        after_promotion="candidate",
        checklist=plan.checklist,
        post_deploy=plan.post_deploy,
    )


class ABTestPlan(Model):
    route: Name
    split: dict[Name, Weight]
    duration: Duration | None = None
    sample_size: int | None = Field(default=None, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    metrics: list[Metric] = Field(default_factory=_default_ab_metrics)
    holm: bool = False
    """Adjust the p-values for comparing several metrics at once (Holm-Bonferroni)."""
    afterwards: Literal["restore", "keep"] = "restore"
    """At the end, put back the weights the route had before the test, or keep the split."""
    environment: Literal["development", "staging", "production"] | None = None
    checklist: Checklist = Checklist()
    pricing: dict[Name, Price] = Field(default_factory=dict)
    """Price per 1,000 prompt and completion tokens of each track, for ``cost_per_request``."""

    @model_validator(mode="after")
    def _ends(self) -> ABTestPlan:
        if self.duration is None and self.sample_size is None:
            raise ValueError("an A/B test ends after a duration or a sample_size: give one")
        if len(self.split) != 2:
            raise ValueError("an A/B test compares exactly two tracks")
        if round(sum(self.split.values()) * 100) != 10_000:
            raise ValueError("the split must add up to 100")
        check_ab_pricing(self.split, self.metrics, self.pricing)
        shadow = sorted(SHADOW_METRICS & set(self.metrics))
        if shadow:
            raise ValueError(
                f"an A/B test compares live tracks: {', '.join(shadow)} judges shadow copies, "
                "in a canary plan's shadow phase"
            )
        return self


Plan = CanaryPlan | BlueGreenPlan | BigBangPlan | ABTestPlan


class PlanFile(Model):
    canary_deployment: CanaryPlan | None = None
    blue_green_deployment: BlueGreenPlan | None = None
    big_bang_deployment: BigBangPlan | None = None
    ab_testing: ABTestPlan | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PlanFile:
        given = [name for name, value in self if value is not None]
        if len(given) != 1:
            raise ValueError(
                "a plan holds exactly one of canary_deployment, blue_green_deployment, "
                f"big_bang_deployment, ab_testing (found {', '.join(given) or 'none'})"
            )
        return self

    def plan(self) -> Plan:
        return next(value for _, value in self if value is not None)  # type: ignore[no-any-return]


def stored_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan as a rollout record stored it, readable by today's models: rate thresholds
    written as bare fractions (``< 0.01``), which plans may no longer use, get their unit
    (``< 1%``), so a rollout started before that rule keeps running."""
    fixed = copy.deepcopy(plan)
    criteria = (fixed.get("config") or {}).get("success_criteria") or {}
    for metric, text in criteria.items():
        criteria[metric] = with_unit(text, metric)
    for group in ("primary", "secondary"):
        for check in (fixed.get("canary_metrics") or {}).get(group) or []:
            check["threshold"] = with_unit(check["threshold"], check["name"])
    for phase in fixed.get("phases") or []:
        phase["rollback_if"] = [with_unit_condition(c) for c in phase.get("rollback_if") or []]
    post = fixed.get("post_deploy") or {}
    for metric, text in (post.get("criteria") or {}).items():
        post["criteria"][metric] = with_unit(text, metric)
    return fixed


def parse_plan(text: str, source: str = "plan") -> Plan:
    """Validate plan YAML (or JSON) text; ``ConfigError`` lines read ``source:line: field: reason``."""
    return parse_model(text, PlanFile, source=source).plan()


def load_plan(path: str | Path) -> Plan:
    """Read a plan file; ``ConfigError`` names the file, line, field and reason."""
    return load_model(path, PlanFile).plan()
