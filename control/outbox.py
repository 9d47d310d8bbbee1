"""The rollout outbox's entries: the weights a decision wants, and the promotion's handover
(the baseline track takes the promoted version). ``Rollouts`` saves them in the record's
``desired`` first and writes them to the routing document after."""

from __future__ import annotations

from config.plans import CanaryPlan
from config.records import Desired, HandedOverTrack, RolloutRecord
from config.schema import RoutingDocument
from control import edits
from control.observation import Action
from control.strategies import ab


def handover(plan: CanaryPlan) -> Desired:
    """The outbox entry that gives the baseline track the promoted version and all traffic."""
    base, cand = plan.baseline, plan.candidate
    return Desired(
        weights={base: 100.0, cand.track: 0.0},
        track=HandedOverTrack(name=base, version=cand.version, upstreams=list(cand.upstreams)),
        reason=f"promoted: {base} now serves {cand.version}, {cand.track} goes back to 0%",
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


def weights_of(record: RolloutRecord, action: Action) -> dict[str, float]:
    if isinstance(action, ab.SetAll):
        return dict(action.weights)
    plan = record.plan
    return {
        plan["candidate"]["track"]: action.candidate,
        plan["baseline"]: round(100 - action.candidate, 2),
    }
