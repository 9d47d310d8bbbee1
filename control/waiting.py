"""What a rollout waits for, in words: ``waiting_for`` in ``GET /v1/rollouts/{id}``.

Pure functions of the stored record and its state; every span of time is said as a person
reads it ("45 s", "3 min", "2 h 5 min").
"""

from __future__ import annotations

from config.plans import Phase, stored_plan
from config.records import RolloutRecord, StoredVerdict
from control.strategies.canary import FINAL, State, Status
from control.views import span


def waiting_for_checklist(record: RolloutRecord) -> str:
    missing = [name for name, done in record.checklist.required.items() if done is None]
    if not missing:
        return ""
    return (
        f"required checklist items: {', '.join(missing)} (splitgate rollout check {record.id} ITEM)"
    )


def waiting_for(record: RolloutRecord, state: State, now: float) -> str:
    """What the rollout waits for, in words (``GET /v1/rollouts/{id}``)."""
    rid = record.id
    if record.desired is not None:
        return "its weights to be written"
    status = state.status
    if status is Status.PENDING:
        return waiting_for_checklist(record) or "the control plane's next step"
    if status is Status.AWAITING_APPROVAL:
        return f"an approval (splitgate rollout approve {rid})"
    if status is Status.AWAITING_PROMOTION:
        return f"a promotion (splitgate rollout promote {rid})"
    if status is Status.PAUSED:
        return f"a resume or an abort (splitgate rollout resume|abort {rid})"
    if status is Status.PROMOTED and record.post_deploy is not None:
        post = record.post_deploy
        if post.status == "scheduled":
            return f"post-deploy checks in {span(max(0.0, post.due_at - now))}"
        return ""
    if status in FINAL:
        return ""
    if state.generation is None:
        return "its weights to be written"
    if record.strategy == "ab_test":
        plan = record.plan
        parts = []
        if plan.get("duration") is not None:
            parts.append(f"{span(max(0.0, state.phase_started_at + plan['duration'] - now))} left")
        if plan.get("sample_size") is not None:
            parts.append(f"{plan['sample_size']} requests on each version")
        return "the end of the test: " + " or ".join(parts)
    if record.acked is False:
        return f"every proxy replica to apply the phase's weights (generation {state.generation})"
    phase = Phase.model_validate(stored_plan(record.plan)["phases"][state.phase])
    elapsed = now - state.phase_started_at
    limited = [v for v in record.verdicts if v.metric == "capacity" and v.verdict == "inconclusive"]
    if limited:
        return (
            f"the candidate's upstream to stop rate-limiting: {limited[0].reason} (decides "
            f"within {span(max(0.0, phase.deadline() - elapsed))}, then on_inconclusive: "
            f"{record.plan.get('on_inconclusive', 'pause')})"
        )
    if phase.duration is not None and elapsed < phase.duration:
        return f"the phase's minimum bake: {span(phase.duration - elapsed)} left"
    deadline = span(max(0.0, phase.deadline() - elapsed))
    on = record.plan.get("on_inconclusive", "pause")
    pending = [v for v in record.verdicts if v.verdict == "inconclusive" and v.role == "success"]
    if not pending:
        return "the next look"
    return (
        "enough evidence: "
        + "; ".join(shortfall(v) for v in pending)
        + f" (decides within {deadline}, then on_inconclusive: {on})"
    )


def shortfall(v: StoredVerdict) -> str:
    what = f"{v.metric} {v.threshold}"
    needed, eta = v.needed, v.eta_s
    if needed is None:
        return f"{what}: {v.reason}"
    more = f"{what}: {needed} more samples"
    return more + (f", about {span(eta)} at the current rate" if eta is not None else "")
