"""The rollout outbox's entries: the weights a decision wants, the route's mirroring that goes
with them (a shadow phase's ``shadow``, set or removed), and the promotion's handover (the
baseline track takes the promoted version). ``Rollouts`` saves them in the record's
``desired`` first and writes them to the routing document after, in one write."""

from __future__ import annotations

from config.plans import CanaryPlan
from config.records import Desired, HandedOverTrack, RolloutRecord
from config.schema import RoutingDocument
from control import edits
from control.observation import Action
from control.strategies import ab
from control.strategies.canary import has_shadow


def handover(plan: CanaryPlan) -> Desired:
    """The outbox entry that gives the baseline track the promoted version and all traffic."""
    base, cand = plan.baseline, plan.candidate
    return Desired(
        weights={base: 100.0, cand.track: 0.0},
        track=HandedOverTrack(name=base, version=cand.version, upstreams=list(cand.upstreams)),
        reason=f"promoted: {base} now serves {cand.version}, {cand.track} goes back to 0%",
        end_shadow=cand.track if has_shadow(plan) else None,
    )


def handed_over(
    document: RoutingDocument, route: str, track: HandedOverTrack | None
) -> RoutingDocument:
    """``document`` with the handover's track replaced (its weight kept), if there is one."""
    if track is None:
        return document
    current = edits.find_track(edits.find_route(document, route), track.name)
    body = {"version": track.version, "upstreams": track.upstreams, "weight": current.weight}
    return edits.put_track(document, route, track.name, body)


def desired_of(record: RolloutRecord, action: Action, reason: str) -> Desired:
    """The outbox entry of a decision's action: its weights, and its mirroring."""
    weights = weights_of(record, action)
    if isinstance(action, ab.SetAll):
        return Desired(weights=weights, reason=reason)
    shadow = action.shadow.model_dump(mode="json") if action.shadow is not None else None
    end = record.plan["candidate"]["track"] if action.end_shadow else None
    return Desired(weights=weights, reason=reason, shadow=shadow, end_shadow=end)


def mirrored(document: RoutingDocument, route: str, desired: Desired) -> RoutingDocument:
    """``document`` with the route's ``shadow`` as ``desired`` wants it. Ending leaves a
    shadow alone that someone pointed at another track meanwhile: only the rollout's own
    mirroring (to the candidate) is removed."""
    if desired.shadow is not None:
        return edits.set_shadow(document, route, desired.shadow)
    current = edits.find_route(document, route).shadow
    if desired.end_shadow is None or current is None or current.track != desired.end_shadow:
        return document
    return edits.set_shadow(document, route, None)


def weights_of(record: RolloutRecord, action: Action) -> dict[str, float]:
    if isinstance(action, ab.SetAll):
        return dict(action.weights)
    plan = record.plan
    return {
        plan["candidate"]["track"]: action.candidate,
        plan["baseline"]: round(100 - action.candidate, 2),
    }
