"""Which track a request gets from the routing document, explained: its sticky key and
attributes read from its headers as the proxy reads them, and each flag of its route judged in
turn (``explain``). The readable reference that the proxy's compiled form (``proxy.table``)
must agree with; ``POST /v1/flags/explain`` and ``splitgate flags explain`` answer with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from config.base import HASH_BUCKETS, USER_ID
from config.flags import (
    Explanation,
    Flag,
    FlagStep,
    Outcome,
    Rule,
    Segment,
    bucket_of,
    default_header,
    flag_salt,
    threshold,
)
from config.schema import RoutingDocument
from config.stickiness import ClientAddress, compile_sources, sticky_key

_AS_GIVEN = ClientAddress(())
"""No trusted proxies: the client address is the one given."""


def request_facts(
    document: RoutingDocument,
    route_name: str,
    headers: Mapping[str, str],
    client_ip: str | None = None,
    body: bytes | None = None,
) -> tuple[str | None, dict[str, str]]:
    """The sticky key and the attributes the proxy would read from these (lower-case) headers.

    ``client_ip`` is taken as given (the proxy's ``X-Forwarded-For`` rules for its trusted
    peers are its settings'). The key is ``config.stickiness.sticky_key``, as in the proxy.
    A ``conversation`` source reads its id header; its body digest only from ``body`` (the
    request body as the proxy would buffer it, as ``POST /v1/flags/explain`` takes it):
    without it the source is absent unless the header is given.
    """
    route = document.route(route_name)
    if route is None:
        raise ValueError(f"no route named {route_name!r}")
    key = sticky_key(compile_sources(route.stickiness), headers, client_ip, _AS_GIVEN, body)
    attributes = {}
    for attribute in sorted(attributes_used(document, route_name) - {USER_ID}):
        value = headers.get(document.attributes.get(attribute, default_header(attribute)))
        if value:
            attributes[attribute] = value
    return key, attributes


def flags_of(document: RoutingDocument, route_name: str) -> list[tuple[str, Flag]]:
    """The route's flags in evaluation order (``document`` is a ``RoutingDocument``)."""
    flags: dict[str, Flag] = document.feature_flags
    return [(name, flag) for name, flag in flags.items() if flag.route == route_name]


def attributes_used(document: RoutingDocument, route_name: str) -> set[str]:
    """Attributes that some enabled flag of the route tests."""
    used: set[str] = set()
    for _, flag in flags_of(document, route_name):
        if flag.enabled:
            for _, conditions in flag.condition_sets(document.segments):
                used.update(c.attribute for c in conditions)
    return used


def explain(
    document: RoutingDocument, route_name: str, user_id: str | None, attributes: Mapping[str, str]
) -> Explanation:
    """The track a request with this sticky key and these attributes gets, and why.

    ``attributes`` maps attribute names to values (``request_facts`` reads them from
    headers). The trusted override header, which wins over everything, is not considered.
    """
    route = document.route(route_name)
    if route is None:
        raise ValueError(f"no route named {route_name!r}")
    values = {**attributes, USER_ID: user_id} if user_id else dict(attributes)
    steps: list[FlagStep] = []
    for name, flag in flags_of(document, route_name):
        steps.append(_evaluate(name, flag, document.segments, user_id, values))
        if steps[-1].outcome in ("allowed", "released"):
            break

    def answer(track: str | None, flag: str | None, rule: Rule, reason: str) -> Explanation:
        bucket = steps[-1].bucket if rule == "rollout" else None
        if rule == "weights" and user_id is not None:
            bucket = bucket_of(route.hash_salt(), user_id)
        return Explanation(
            route=route_name,
            user_id=user_id,
            attributes=dict(attributes),
            track=track,
            flag=flag,
            rule=rule,
            reason=reason,
            flags=steps,
            bucket=bucket,
        )

    last = steps[-1] if steps else None
    if last is not None and last.outcome == "allowed":
        return answer(
            document.feature_flags[last.flag].track, last.flag, "enabled_for", last.reason
        )
    if last is not None and last.outcome == "released":
        flag = document.feature_flags[last.flag]
        if user_id is None and threshold(flag) < HASH_BUCKETS:
            return answer(None, None, "random", last.reason)
        return answer(flag.track, last.flag, "rollout", last.reason)
    passed = "; ".join(s.reason for s in steps) + ("; " if steps else "")
    if user_id is None:
        return answer(None, None, "random", passed + "no sticky key: the split draws at random")
    bucket = bucket_of(route.hash_salt(), user_id)
    track = next(name for name, upper in route.bucket_layout() if bucket < upper)
    return answer(
        track, None, "weights", f"{passed}bucket {bucket} of the weighted split: {track!r}"
    )


def _evaluate(
    name: str,
    flag: Flag,
    segments: Mapping[str, Segment],
    user_id: str | None,
    values: Mapping[str, str],
) -> FlagStep:
    def step(outcome: Outcome, reason: str, bucket: int | None = None) -> FlagStep:
        return FlagStep(flag=name, outcome=outcome, reason=reason, bucket=bucket)

    if not flag.enabled:
        return step("disabled", f"flag {name!r} is disabled")
    if user_id is not None and user_id in flag.override.disabled_for:
        return step("denied", f"{user_id!r} is in {name}.override.disabled_for")
    if user_id is not None and user_id in flag.override.enabled_for:
        return step("allowed", f"{user_id!r} is in {name}.override.enabled_for")
    matched = _matched_set(flag, segments, values)
    if matched is None:
        return step("not_in_audience", f"no condition set of flag {name!r} holds")
    share = threshold(flag)
    where = f"{matched} matched"
    if share >= HASH_BUCKETS:
        return step("released", f"{where} and the flag is at 100 %")
    if share == 0:
        return step("held_out", f"{where} but the flag is at 0 %")
    if user_id is None:
        return step(
            "released",
            f"{where}; with no sticky key {flag.rollout_percentage:g} % of such requests "
            "get the flag at random",
        )
    bucket = bucket_of(flag_salt(name, flag), user_id)
    if bucket < share:
        return step("released", f"{where} and bucket {bucket} < {share}", bucket)
    return step("held_out", f"{where} but bucket {bucket} ≥ {share}", bucket)


def _matched_set(
    flag: Flag, segments: Mapping[str, Segment], values: Mapping[str, str]
) -> str | None:
    for label, conditions in flag.condition_sets(segments):
        if all(c.holds(values.get(c.attribute)) for c in conditions):
            return "conditions" if label == "conditions" else f"segment {label!r}"
    return None
