"""What ``splitgate rollout`` shows of a rollout record: pure functions, record in, lines out.

People read these once (``status``, ``verdicts``) or watch them redraw (``status --watch``),
so every figure carries its unit, every time reads as a clock time or "3 min ago", and no
label is said twice. The record's newer keys (``max_duration``, a verdict's ``unit``,
``needed``, ``eta_s``, ``baseline``, ``bound``) are optional: older records render too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

Record = Mapping[str, Any]

FINAL = ("promoted", "completed", "rolled_back", "aborted")
DEFAULT_MAX_DURATION = 3600.0
"""A phase without ``duration`` or ``max_duration`` decides within an hour (config.plans)."""

_STRATEGIES = {"ab_test": "A/B test", "blue_green": "blue-green", "big_bang": "big bang"}
_ACKS_FIRST = " (acks from every proxy replica first)"
_UNITS = {"error_rate": "%", "hallucination_rate": "%", "user_satisfaction": "/5"}


# Figures and times -------------------------------------------------------------------------


def unit_of(verdict: Mapping[str, Any]) -> str:
    """The verdict's own ``unit``, else the one its metric is measured in."""
    given = verdict.get("unit")
    if isinstance(given, str):
        return given
    metric = str(verdict.get("metric", ""))
    if metric.endswith("_vs_baseline"):
        return ""
    if metric.startswith(("latency_", "ttfb_")):
        return "ms"
    return _UNITS.get(metric, "")


def figure(value: float | None, unit: str) -> str:
    """``0.0123, "%"`` → ``1.23 %``; ``1840.0, "ms"`` → ``1,840 ms``; ``4.2, "/5"`` → ``4.20/5``."""
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value * 100:.3g} %"
    if unit == "ms":
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"
    if unit == "/5":
        return f"{value:.2f}/5"
    return f"{value:.3g}{f' {unit}' if unit else ''}"


def span(seconds: float) -> str:
    """A length of time the way people say it: ``45 s``, ``3 min 5 s``, ``2 h 10 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        minutes, rest = divmod(s, 60)
        return f"{minutes} min" + (f" {rest} s" if rest and minutes < 10 else "")
    if s < 86400:
        hours, rest = divmod(s, 3600)
        return f"{hours} h" + (f" {rest // 60} min" if rest >= 60 else "")
    days, rest = divmod(s, 86400)
    return f"{days} d" + (f" {rest // 3600} h" if rest >= 3600 else "")


def ago(at: float, now: float) -> str:
    return "just now" if now - at < 1 else f"{span(now - at)} ago"


def when(at: float, now: float, tz: tzinfo | None = None) -> str:
    """ISO 8601 in local time (or ``tz``), and how long ago."""
    stamp = datetime.fromtimestamp(at, tz).astimezone(tz).isoformat(timespec="seconds")
    return f"{stamp} ({ago(at, now)})"


# Labels without repeats ---------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\s_]+", "", text).lower()


def without_repeats(text: str) -> str:
    """``phase: 10%: 10%`` → ``phase: 10%``: a ``: ``-separated part equal to the one before
    it goes (events are written as ``kind: name: traffic`` and phases may be named by their
    traffic)."""
    parts: list[str] = []
    for part in text.split(": "):
        if not parts or _norm(parts[-1]) != _norm(part):
            parts.append(part)
    return ": ".join(p for p in parts if p.strip())


def after_metric(metric: str, reason: str) -> str:
    """The reason without a leading repeat of the metric's name (``error_rate: 50 samples``,
    or ``error rate vs baseline: 5/1000 …`` for ``error_rate_vs_baseline``)."""
    spoken = metric.replace("_", " ")
    for prefix in (metric, spoken):
        if reason.lower().startswith(prefix.lower()):
            return reason[len(prefix) :].lstrip(" :")
    return reason


def phase_label(phase: Mapping[str, Any]) -> str:
    """The phase's name, with its traffic unless the name says it already."""
    name, traffic = str(phase["name"]), phase["traffic"]
    said = {f"{traffic:g}%", f"{traffic:g} %"}
    return name if any(s in name for s in said) else f"{name} ({traffic:g} %)"


def phase_title(index: int, phases: Sequence[Mapping[str, Any]]) -> str:
    """``phase 2 of 4: 25%``; a name that starts with its own number ("Phase 2: 25%") does
    not say it twice."""
    if not 0 <= index < len(phases):
        return f"phase {index + 1}"
    label = phase_label(phases[index])
    own = f"phase {index + 1}"
    if label.lower().startswith(own):
        label = label[len(own) :].lstrip(" :-")
    if not label:
        return f"{own} of {len(phases)}"
    return f"{own} of {len(phases)}" + (f" {label}" if label.startswith("(") else f": {label}")


def event_text(event: Mapping[str, Any]) -> str:
    return without_repeats(f"{event['kind']}: {event.get('detail') or ''}")


# Verdicts -----------------------------------------------------------------------------------


def distinct(verdicts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One verdict per metric, threshold and role (a success criterion may repeat a primary
    metric word for word)."""
    seen: set[tuple[Any, Any, Any]] = set()
    out = []
    for v in verdicts:
        key = (v.get("metric"), v.get("threshold"), v.get("role"))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _reason(v: Mapping[str, Any], metric: str, unit: str) -> str:
    """The verdict's own words; for records older than ``unit`` (whose reasons print rates
    as bare fractions) a pass or fail is put in words from the figures instead."""
    reason = after_metric(metric, str(v.get("reason") or ""))
    judged = v.get("verdict") in ("pass", "fail") and v.get("value") is not None
    if "unit" not in v and judged and not metric.endswith("_vs_baseline"):
        samples = f", {v['sample']:,} samples" if v.get("sample") else ""
        return figure(v["value"], unit) + samples  # the line names threshold and verdict
    return reason


def explain(v: Mapping[str, Any]) -> str:
    """Why a verdict is what it is, with the candidate's and the baseline's figures and the
    requests still needed, each said once; never empty."""
    metric, unit = str(v.get("metric", "")), unit_of(v)
    reason = _reason(v, metric, unit)
    said = reason.lower()
    parts = [reason] if reason else []
    if v.get("baseline") is not None and "baseline" not in said:
        parts.append(f"baseline {figure(v['baseline'], unit)}")
    if v.get("bound") is not None and "bound" not in said:
        parts.append(f"bound {figure(v['bound'], unit)}")
    threshold = str(v.get("threshold") or "")
    if metric.endswith("_vs_baseline") and threshold.split(" ")[-1] not in said:
        parts.append(f"fails at {threshold}")
    if v.get("needed") and "more" not in said:
        quality = any(k in metric for k in ("hallucination", "rating", "satisfaction"))
        parts.append(f"{v['needed']:,} more {'labels' if quality else 'requests'} needed")
    if v.get("eta_s") is not None:
        parts.append(f"~{span(max(1.0, v['eta_s']))} to go at the current rate")
    return ", ".join(parts) or f"against {threshold or 'its threshold'}"


def verdict_line(v: Mapping[str, Any]) -> str:
    """``error_rate < 2% pass: …``; a comparison reads ``error rate vs baseline …``."""
    metric = str(v.get("metric"))
    name = (
        metric.replace("_", " ")
        if metric.endswith("_vs_baseline")
        else f"{metric} {v.get('threshold') or ''}".rstrip()
    )
    return f"{name} {v.get('verdict')}: {explain(v)}"


def verdict_lines(verdicts: Sequence[Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """Rollback checks, then success criteria, each once."""
    out = []
    for role, title in (("rollback", "rollback checks"), ("success", "success criteria")):
        group = [v for v in distinct(verdicts) if v.get("role", "success") == role]
        if group:
            out.append(f"{indent}{title}:")
            out.extend(f"{indent}  {verdict_line(v)}" for v in group)
    return out


def look_lines(
    look: Mapping[str, Any],
    phases: Sequence[Mapping[str, Any]],
    now: float,
    tz: tzinfo | None = None,
) -> list[str]:
    """One look of ``splitgate rollout verdicts``: when, which phase, its verdicts."""
    head = f"{when(look['at'], now, tz)}, {phase_title(look.get('phase', 0), phases)}:"
    return [head, *verdict_lines(look.get("verdicts", []))]


# The rollout as a whole ---------------------------------------------------------------------


def _phases(record: Record) -> list[Mapping[str, Any]]:
    phases = record.get("plan", {}).get("phases")
    return list(phases) if isinstance(phases, list) else []


def _where(record: Record) -> str:
    """``phase 2 of 4, 25%`` for a canary, the split for an A/B test."""
    phases, state = _phases(record), record["state"]
    if phases:
        return phase_title(state["phase"], phases)
    split = record.get("plan", {}).get("split")
    if isinstance(split, Mapping):
        return "A/B test " + " / ".join(f"{t} {w:g} %" for t, w in split.items())
    return f"phase {state['phase'] + 1}"


def waiting(record: Record, acked: bool | None = None) -> str:
    """``waiting_for`` as a person should read it: without the acks once they are in."""
    text = str(record.get("waiting_for") or "")
    if acked or (acked is None and record.get("acked")):
        text = text.replace(_ACKS_FIRST, "")
        text = text.replace("acks from every proxy replica, then the next look", "the next look")
    return text


def action_needed(record: Record, why: bool = True) -> str:
    """The command a person must run for the rollout to go on (and, with ``why``, what it
    does), or nothing."""
    status, rid = record["state"]["status"], record["id"]
    phases, index = _phases(record), record["state"]["phase"]
    if status == "awaiting_approval":
        command, does = f"approve {rid}", f"to start {phase_title(index, phases)}"
    elif status == "awaiting_promotion":
        command, does = f"promote {rid}", f"to go on to {phase_title(index + 1, phases)}"
    elif status == "paused":
        command, does = f"resume {rid}", f"to go on, or: splitgate rollout abort {rid}"
    else:
        return ""
    return f"splitgate rollout {command}" + (f" ({does})" if why else "")


def headline(record: Record, acked: bool | None = None) -> str:
    """One line: id, status, where, the last event, and what it waits for."""
    state = record["state"]
    parts = [f"{record['id']}: {state['status'].replace('_', ' ')}", _where(record)]
    action = action_needed(record, why=False)
    last = state["history"][-1] if state["history"] else None
    # The phase just entered is named already, and so is an approval waited on.
    if last is not None and last["kind"] != "phase" and not (action and last["kind"] == "waiting"):
        parts.append(event_text(last))
    if action:
        parts.append(f"run: {action}")
    elif waiting(record, acked):
        parts.append(f"waiting for {waiting(record, acked)}")
    return " · ".join(parts)


def _phase_mark(status: str, index: int, current: int) -> str:
    if status == "pending":
        return "next" if index == current else "-"
    if status in ("promoted", "completed") or index < current:
        return "done"
    if index > current:
        return "next" if index == current + 1 and status not in FINAL else "-"
    return {
        "running": "current",
        "awaiting_approval": "approval",
        "awaiting_promotion": "baked",
        "paused": "paused",
        "rolled_back": "rolled back",
        "aborted": "aborted",
    }.get(status, status)


def _clock(record: Record, phase: Mapping[str, Any], now: float) -> str:
    """Time in the phase, bake time left and the latest it decides."""
    state = record["state"]
    elapsed = record.get("time_in_phase_s")
    if elapsed is None:
        elapsed = now - state["phase_started_at"]
    duration = phase.get("duration")
    most = phase.get("max_duration") or (DEFAULT_MAX_DURATION if duration is None else 3 * duration)
    out = [f"{span(elapsed)} in phase"]
    if duration is not None:
        left = duration - elapsed
        out.append(
            f"{span(left)} of {span(duration)} left" if left > 0 else f"{span(duration)} baked"
        )
    out.append(f"decides within {span(max(0.0, most - elapsed))}")
    return ", ".join(out)


def timeline(record: Record, now: float) -> list[str]:
    """Each phase with its traffic (and a shadow phase's mirrored share), marked done /
    current / next."""
    state, phases = record["state"], _phases(record)
    width = max((len(str(p["name"])) for p in phases), default=0)
    out = []
    for index, phase in enumerate(phases):
        mark = _phase_mark(state["status"], index, state["phase"])
        mirrored = (phase.get("shadow") or {}).get("percent")
        share = f"{phase['traffic']:>5g} %" + (f", shadow {mirrored:g} %" if mirrored else "")
        line = f"  {mark:<11} {index + 1}. {phase['name']!s:<{width}}  {share}"
        if mark in ("current", "paused"):
            line += f"   {_clock(record, phase, now)}"
        elif mark in ("next", "-") and phase.get("duration") is not None:
            line += f"   bake {span(phase['duration'])}"
        out.append(line.rstrip())
    return out


def _ab_lines(record: Record, now: float) -> list[str]:
    plan, state = record["plan"], record["state"]
    ends = []
    if plan.get("duration") is not None:
        left = plan["duration"] - (now - state["phase_started_at"])
        ends.append(f"after {span(plan['duration'])} ({span(left)} left)")
    if plan.get("sample_size") is not None:
        ends.append(f"after {plan['sample_size']:,} requests on each version")
    split = ", ".join(f"{t} {w:g} %" for t, w in plan.get("split", {}).items())
    out = [f"  split: {split}"] if split else []
    if ends and state["status"] not in FINAL:
        out.append(f"  ends {' or '.join(ends)}")
    served = record.get("served") or {}
    if served:
        out.append("  served: " + ", ".join(f"{t} {n:,} requests" for t, n in served.items()))
    return out


def _extras(record: Record) -> list[str]:
    """Checklist, warnings, the A/B report and the post-deploy checks."""
    out = []
    for group in ("required", "recommended"):
        for name, done in (record.get("checklist") or {}).get(group, {}).items():
            mark = f"done by {done['by']} ({done['how']})" if done else "open"
            out.append(f"  checklist {group} {name}: {mark}")
    out.extend(f"  warning: {w}" for w in record.get("warnings", []))
    report = record.get("report")
    if report:
        out.append(f"report ({without_repeats(str(report['ended']))}):")
        out.extend(f"  {s}" for s in report["summary"])
    post = record.get("post_deploy")
    if post and post.get("status") != "scheduled":
        out.append(f"post-deploy checks {post['status']}:")
        for c in post.get("checks", []):
            detail = after_metric(str(c["check"]), str(c.get("detail") or ""))
            out.append(f"  {c['check']} {c['verdict']}" + (f": {detail}" if detail else ""))
    return out


def status_lines(
    record: Record, now: float, acked: bool | None = None, tz: tzinfo | None = None
) -> list[str]:
    """Everything ``rollout status ID`` shows, and what ``--watch`` redraws."""
    state, plan = record["state"], record.get("plan", {})
    candidate = plan.get("candidate") or {}
    strategy = str(record.get("strategy", "rollout"))
    what = f"{_STRATEGIES.get(strategy, strategy)} on route {record.get('route')}"
    if candidate:
        what += f": {candidate.get('track')} {candidate.get('version')} over {plan.get('baseline')}"
    out = [f"{record['id']}  {state['status'].replace('_', ' ').upper()}  {what}"]
    if record.get("created_at"):
        by = f" by {record['created_by']}" if record.get("created_by") else ""
        out.append(f"started {when(record['created_at'], now, tz)}{by}")
    if record.get("weights"):
        out.append("weights: " + ", ".join(f"{t} {w:g} %" for t, w in record["weights"].items()))
    out.extend(timeline(record, now) or _ab_lines(record, now))
    if record.get("verdicts"):
        out.append("verdicts (candidate, against the baseline where compared):")
        out.extend(verdict_lines(record["verdicts"]))
    action = action_needed(record)
    if action:
        out.append(f"ACTION NEEDED: {action}")
    elif waiting(record, acked):
        out.append(f"waiting for {waiting(record, acked)}")
    if state["history"]:
        last = state["history"][-1]
        out.append(f"last event: {event_text(last)} ({ago(last['at'], now)})")
    return out + _extras(record)
