"""After promotion: the promoted version's health and metrics, once ``post_deploy.after``
has passed, judged against the plan's criteria over exactly the period since promotion."""

from __future__ import annotations

import copy

from redis.exceptions import RedisError

from config.metrics import TrackWindow
from config.plans import CanaryMetrics, CanaryPlan
from config.records import PostDeployCheck, RolloutRecord, evolve
from config.thresholds import parse_threshold
from control import accumulate
from control.analysis.verdict import assess
from control.metric_source import MetricSource
from control.rollout_store import state_of, with_state
from control.smoke import reachable


async def post_deploy(
    windows: MetricSource, plan: CanaryPlan, record: RolloutRecord, now: float
) -> RolloutRecord | None:
    """Health and metrics of the promoted version once ``post_deploy.after`` has passed:
    the record with the checks (to be saved), or None if none are due."""
    post = record.post_deploy
    if post is None or post.status != "scheduled" or now < post.due_at:
        return None
    settings = plan.post_deploy
    checks: list[PostDeployCheck] = []
    if settings.health:
        for r in await reachable(plan.candidate.upstreams, settings.health_path):
            verdict = "pass" if r.ok else "fail"
            checks.append(
                PostDeployCheck(
                    check="health", upstream=r.upstream, verdict=verdict, detail=r.detail
                )
            )
    criteria = settings.criteria or {
        c.name: c.threshold for c in (plan.canary_metrics.primary or CanaryMetrics().primary)
    }
    track = f"@{plan.candidate.version}"
    window: TrackWindow | None
    try:
        # Exactly the period since promotion: the counts started then (``_commit``).
        counts = copy.deepcopy(post.counts) or accumulate.new_accumulator(
            post.due_at - settings.after
        )
        window = (await accumulate.totals(windows, plan.route, counts, [track], now))[track]
    except (RedisError, OSError):
        window = None
    for metric, text in criteria.items():
        threshold = parse_threshold(text, metric)
        c = plan.comparison
        a = assess(metric, threshold, window, c.confidence, design_effect=c.design_effect)
        checks.append(PostDeployCheck(check=metric, verdict=a.verdict.value, detail=a.reason))
    verdicts = {c.verdict for c in checks}
    status = (
        "failed"
        if "fail" in verdicts
        else "inconclusive"
        if verdicts & {"inconclusive", "error"}
        else "passed"
    )
    done = evolve(post, status=status, checks=checks, at=now)
    summary = "; ".join(f"{c.check}: {c.detail}" for c in checks)
    state = state_of(record).note(now, "post_deploy", f"{status}: {summary}")
    return with_state(record, state, post_deploy=done, waiting_for="")
