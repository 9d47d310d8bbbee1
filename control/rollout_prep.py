"""Before a rollout's first phase: its checklist, the candidate registered at 0 %, whether
the new version is up, its smoke tests; and the counts restarted from that moment."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Literal

from config.checks import Checklist
from config.plans import ABTestPlan, CanaryPlan, SmokeTest
from config.records import (
    Attestation,
    ChecklistState,
    RolloutRecord,
    RolloutState,
    evolve,
)
from config.records import Strategy as StoredKind
from control import edits, looks, waiting
from control.leadership import PASS_EPOCH
from control.rollout_store import RolloutConflict, plan_of
from control.smoke import probe, reachable, run_smoke_tests
from control.store import Change, DocumentStore, Stale

ACTOR = "splitgate-rollout"

Probe = Callable[[str, str, int, str | None], Awaitable[tuple[bool, str]]]


class Preparation:
    def __init__(
        self,
        store: DocumentStore,
        clock: Callable[[], float] = time.time,
        probe: Probe = probe,
    ) -> None:
        self._store = store
        self._clock = clock
        self._probe = probe

    async def check_items(self, record: RolloutRecord) -> tuple[RolloutRecord, str]:
        """Run the probes of items still open: the record with their results, and what the
        rollout still waits for ("" if nothing)."""
        plan = plan_of(record)
        groups = {
            "required": dict(record.checklist.required),
            "recommended": dict(record.checklist.recommended),
        }
        results = dict(record.probe_results or {})
        probed = False
        for item in (*plan.checklist.required, *plan.checklist.recommended):
            group = "required" if item in plan.checklist.required else "recommended"
            if item.probe is None or groups[group].get(item.name) is not None:
                continue
            p = item.probe
            ok, detail = await self._probe(p.url, p.method, p.expect_status, p.expect_regex)
            if ok:
                note = f"{p.method} {p.url}: {detail}"
                groups[group][item.name] = Attestation(
                    by="probe", at=self._clock(), how="probe", note=note
                )
            results[item.name] = detail
            probed = True
        checklist = ChecklistState(**groups)
        record = evolve(
            record,
            checklist=checklist,
            probe_results=results if probed else record.probe_results,
            warnings=checklist_warnings(checklist),
        )
        return record, waiting.waiting_for_checklist(record)

    async def restart_counts(self, record: RolloutRecord, now: float) -> RolloutRecord:
        """Judge only what happens from the start on: a rollout may have waited for its
        checklist for hours, and the weights to restore are the ones it found then."""
        document = await self._store.read()
        assert document is not None
        route = edits.find_route(document, record.route)
        return evolve(
            record,
            accumulator=None,  # counted from the first look every replica acked
            phase_counts=None,
            tests=looks.fresh_tests(looks.opens_with_shadow(record.plan)),
            before_weights={t.name: t.weight for t in route.tracks},
        )

    async def verify(
        self, plan: CanaryPlan, record: RolloutRecord
    ) -> tuple[RolloutRecord, str | None]:
        """Is the new version up, and does it pass the smoke tests? The record with the
        results, and the reason if not."""
        up = await reachable(plan.candidate.upstreams, plan.post_deploy.health_path)
        record = evolve(record, up=[asdict(r) for r in up])
        down = [r for r in up if not r.ok]
        if down:
            return record, "the new version is not up: " + "; ".join(
                f"{r.upstream}: {r.detail}" for r in down
            )
        tests = [SmokeTest.model_validate(t) for t in record.smoke_tests]
        if not tests:
            return record, None
        results = await run_smoke_tests(tests, plan.candidate.upstreams)
        record = evolve(record, smoke_results=[asdict(r) for r in results])
        failed = [r for r in results if not r.ok]
        if failed:
            return record, "smoke tests failed before any user traffic: " + "; ".join(
                f"{r.name}: {r.detail}" for r in failed
            )
        return record, None

    async def register_candidate(self, plan: CanaryPlan) -> None:
        """Put the new version on the candidate's track at 0 %: no user reaches it before it
        is up, has passed its smoke tests and the first phase's weights are written. A track
        that carried users (the previous version) hands them to the baseline."""
        cand = plan.candidate
        for _ in range(3):
            document = await self._store.read()
            assert document is not None
            route = edits.find_route(document, plan.route)
            current = next((t for t in route.tracks if t.name == cand.track), None)
            if current is not None and (current.version, current.upstreams) == (
                cand.version,
                cand.upstreams,
            ):
                return
            held = current.weight if current is not None else 0.0
            body = {"version": cand.version, "upstreams": cand.upstreams, "weight": held}
            new = edits.put_track(document, plan.route, cand.track, body)
            if held:
                base = edits.find_track(route, plan.baseline).weight
                new = edits.set_weights(
                    new, plan.route, {cand.track: 0.0, plan.baseline: base + held}
                )
            change = Change(
                ACTOR,
                f"register {cand.version} at 0%",
                "put_track",
                f"routes/{plan.route}/tracks/{cand.track}",
            )
            try:
                await self._store.write(new, document.generation, change, epoch=PASS_EPOCH.get())
            except Stale:
                continue  # another writer moved the document on: redo the edit on it
            return
        raise RolloutConflict(f"route {plan.route!r}: the routing document keeps changing")


def checklist_record(checklist: Checklist) -> ChecklistState:
    return ChecklistState(
        required={item.name: None for item in checklist.required},
        recommended={item.name: None for item in checklist.recommended},
    )


def checklist_items(record: RolloutRecord) -> list[str]:
    return [*record.checklist.required, *record.checklist.recommended]


def checklist_warnings(checklist: ChecklistState) -> list[str]:
    return [
        f"recommended checklist item {name!r} is not confirmed"
        for name, done in checklist.recommended.items()
        if done is None
    ]


def new_record(
    rollout_id: str,
    plan: CanaryPlan | ABTestPlan,
    actor: str,
    strategy: StoredKind,
    smoke_tests: list[dict[str, Any]] | None,
    rollback: Literal["automatic", "manual"],
    now: float,
    before_weights: dict[str, float],
) -> RolloutRecord:
    """A new rollout's record: pending, waiting for the runner's first step."""
    checklist = checklist_record(plan.checklist)
    return RolloutRecord(
        id=rollout_id,
        route=plan.route,
        strategy=strategy,
        rollback=rollback,
        smoke_tests=smoke_tests or [],
        plan=plan.model_dump(mode="json"),
        created_at=now,
        created_by=actor,
        state=RolloutState(status="pending", phase=0, phase_started_at=0.0, generation=None),
        tests=looks.fresh_tests(looks.opens_with_shadow(plan.model_dump(mode="json"))),
        checklist=checklist,
        warnings=checklist_warnings(checklist),
        before_weights=before_weights,
        waiting_for="the control plane's next step",
        version=0,
    )
