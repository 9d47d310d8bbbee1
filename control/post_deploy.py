"""After promotion: the promoted version's health and metrics, once ``post_deploy.after``
has passed, judged against the plan's criteria over exactly the period since promotion."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from config.metrics import TrackWindow
from config.plans import CanaryMetrics, CanaryPlan
from config.thresholds import parse_threshold
from control import accumulate
from control.analysis.verdict import assess
from control.rollout_store import state_from_dict, state_to_dict
from control.smoke import reachable
from control.windows import WindowReader


async def post_deploy(
    windows: WindowReader, plan: CanaryPlan, record: dict[str, Any], now: float
) -> bool:
    """Health and metrics of the promoted version once ``post_deploy.after`` has passed:
    the checks written into ``record``; True if there were any (the record is to be saved)."""
    post = record["post_deploy"]
    if post is None or post["status"] != "scheduled" or now < post["due_at"]:
        return False
    settings = plan.post_deploy
    checks: list[dict[str, Any]] = []
    if settings.health:
        for r in await reachable(plan.candidate.upstreams, settings.health_path):
            checks.append(
                {
                    "check": "health",
                    "upstream": r.upstream,
                    "verdict": "pass" if r.ok else "fail",
                    "detail": r.detail,
                }
            )
    criteria = settings.criteria or {
        c.name: c.threshold for c in (plan.canary_metrics.primary or CanaryMetrics().primary)
    }
    track = f"@{plan.candidate.version}"
    window: TrackWindow | None
    try:
        # Exactly the period since promotion: the counts started then (``_commit``).
        counts = post.get("counts") or accumulate.new_accumulator(post["due_at"] - settings.after)
        window = (await accumulate.totals(windows, plan.route, counts, [track], now))[track]
    except (RedisError, OSError):
        window = None
    for metric, text in criteria.items():
        threshold = parse_threshold(text, metric)
        c = plan.comparison
        a = assess(metric, threshold, window, c.confidence, design_effect=c.design_effect)
        checks.append({"check": metric, "verdict": a.verdict.value, "detail": a.reason})
    verdicts = {c["verdict"] for c in checks}
    status = (
        "failed"
        if "fail" in verdicts
        else "inconclusive"
        if verdicts & {"inconclusive", "error"}
        else "passed"
    )
    record["post_deploy"] = {**post, "status": status, "checks": checks, "at": now}
    summary = "; ".join(f"{c['check']}: {c['detail']}" for c in checks)
    state = state_from_dict(record["state"]).note(now, "post_deploy", f"{status}: {summary}")
    record["state"] = state_to_dict(state)
    record["waiting_for"] = ""
    return True
