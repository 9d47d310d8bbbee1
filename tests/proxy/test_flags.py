"""Feature flags in the data plane: the compiled table agrees with ``explain``, bucketing is
monotonic and per flag, and the proxy routes, stamps and counts flag decisions."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from config.schema import OutlierDetection, RoutingDocument, SplitgateConfig
from config.stickiness import bucket, salt_prefix
from config.targeting import explain
from proxy.endpoints import EndpointPool
from proxy.table import CompiledRoute, RoutingTable
from tests.conftest import StartProxy, StartUpstream, two_track_config

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "flag_buckets.json").read_text(encoding="utf-8")
)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "flags-secret"
NO_HEADERS: dict[str, str] = {}


def track(name: str, weight: float) -> dict[str, Any]:
    return {
        "name": name,
        "version": f"{name}.0",
        "upstreams": ["http://127.0.0.1:1"],
        "weight": weight,
    }


def compiled(document: RoutingDocument) -> CompiledRoute:
    return RoutingTable.build(document, EndpointPool(OutlierDetection())).routes[0]


def one_flag(name: str, percentage: float, **fields: Any) -> RoutingDocument:
    return RoutingDocument.model_validate(
        {
            "routes": [{"name": "chat", "tracks": [track("stable", 90), track("v2", 10)]}],
            "feature_flags": {
                name: {
                    "route": "chat",
                    "track": "v2",
                    "rollout_percentage": percentage,
                    "target_groups": ["all_users"],
                    **fields,
                }
            },
        }
    )


# Every operator, segments, the flag's own conditions, overrides, user_id conditions,
# a 0 % flag of overrides alone, a disabled flag and a custom attribute header.
RICH = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "tracks": [track("stable", 80), track("v2", 10), track("v3", 10), track("v4", 0)],
            }
        ],
        "attributes": {"region": "x-geo"},
        "segments": {
            "beta": {"conditions": [{"type": "user_group", "values": ["beta", "qa"]}]},
            "jp_paid": {
                "conditions": [
                    {"type": "region", "values": ["jp"]},
                    {"type": "user_segment", "operator": "not_in", "values": ["free"]},
                ]
            },
            "staff": {
                "conditions": [{"type": "user_id", "operator": "prefix", "values": ["staff-"]}]
            },
        },
        "feature_flags": {
            "off": {
                "route": "chat",
                "track": "v4",
                "enabled": False,
                "target_groups": ["all_users"],
            },
            "testers": {
                "route": "chat",
                "track": "v4",
                "rollout_percentage": 0,
                "override": {"enabled_for": ["u1", "u7"], "disabled_for": ["u7"]},
            },
            "new-prompt": {
                "route": "chat",
                "track": "v2",
                "rollout_percentage": 40,
                "target_groups": ["beta", "jp_paid", "staff"],
                "conditions": [
                    {"type": "app_version", "operator": "semver_gte", "value": "2.3.0"},
                    {"type": "tier", "operator": "gt", "value": 2},
                    {"type": "tenant", "operator": "not_equals", "value": "acme"},
                ],
                "override": {"enabled_for": ["u2", "u3"], "disabled_for": ["u3", "u4"]},
            },
            "big-tenants": {
                "route": "chat",
                "track": "v3",
                "rollout_percentage": 75.5,
                "conditions": [
                    {"type": "tenant", "operator": "in", "values": ["acme", "globex"]},
                    {"type": "tier", "operator": "lte", "value": 3.5},
                    {"type": "app_version", "operator": "semver_lt", "value": "3.0.0-rc.1"},
                ],
                "override": {"enabled_for": ["u4"]},
            },
            "eu": {
                "route": "chat",
                "track": "v3",
                "conditions": [
                    {"type": "region", "operator": "equals", "value": "eu"},
                    {"type": "tier", "operator": "gte", "value": 1},
                    {"type": "tier", "operator": "lt", "value": 10},
                    {"type": "app_version", "operator": "semver_gt", "value": "1.0.0"},
                    {"type": "app_version", "operator": "semver_lte", "value": "9.0.0"},
                    {"type": "app_version", "operator": "semver_eq", "value": "2.0.0"},
                ],
            },
        },
    }
)
POOLS: dict[str, list[str | None]] = {
    "x-user-group": [None, "", "beta", "qa", "free", "Beta"],
    "x-geo": [None, "jp", "eu", "us"],
    "x-region": [None, "eu"],  # not the region's header here: ignored
    "x-user-segment": [None, "free", "premium", ""],
    "x-app-version": [None, "2.3.0", "2.2.9", "v2.0.0", "3.0.0-beta", "3.0.0", "2.x", "2.0.0+b1"],
    "x-tier": [None, "1", "2", "3", "3.5", "12", "lots", "nan"],
    "x-tenant": [None, "acme", "globex", "initech"],
}
USERS = ["u1", "u2", "u3", "u4", "u7", "staff-9", None, *(f"user-{i}" for i in range(40))]


def test_compiled_flags_agree_with_explain() -> None:
    route = compiled(RICH)
    flags = route.flags
    assert flags is not None
    assert [f.name for f in flags.flags] == ["testers", "new-prompt", "big-tenants", "eu"]
    rng = random.Random(20261201)
    decided = set()
    for _ in range(4000):
        headers = {h: v for h, pool in POOLS.items() if (v := rng.choice(pool)) is not None}
        user = rng.choice(USERS)
        want = explain(RICH, "chat", user, _attributes(headers))
        if want.rule == "random":
            continue
        got = flags.decide(headers.get, user)
        assert (got.name if got else None) == want.flag, (headers, user, want.reason)
        track = got.track.name if got else route.pick(user).name
        assert track == want.track
        decided.add(want.flag)
    assert decided == {None, "testers", "new-prompt", "big-tenants", "eu"}


def _attributes(headers: dict[str, str]) -> dict[str, str]:
    names = {"x-user-group": "user_group", "x-geo": "region", "x-user-segment": "user_segment"}
    names |= {"x-app-version": "app_version", "x-tier": "tier", "x-tenant": "tenant"}
    return {names[h]: v for h, v in headers.items() if h in names and v}


def test_overrides_deny_before_allow_and_keep_flag_order() -> None:
    flags = compiled(RICH).flags
    assert flags is not None

    def name(user: str, **headers: str) -> str | None:
        got = flags.decide({k.replace("_", "-"): v for k, v in headers.items()}.get, user)
        return got.name if got else None

    assert name("u1") == "testers"  # a 0 % flag still releases its enabled_for
    assert name("u7") is None  # listed in both: denied
    assert name("u2") == "new-prompt"
    assert name("u3", x_user_group="beta") != "new-prompt"  # denied whatever the audience
    assert name("u4") == "big-tenants"  # denied by new-prompt, allowed by the next flag


def test_routes_without_live_flags_compile_to_nothing() -> None:
    plain = RoutingDocument.model_validate(
        {"routes": [{"name": "chat", "tracks": [track("stable", 100)]}]}
    )
    assert compiled(plain).flags is None
    assert compiled(one_flag("f", 50, enabled=False)).flags is None
    assert compiled(one_flag("f", 0)).flags is None  # 0 % and no overrides: releases nobody


def test_golden_flag_buckets_in_the_proxy() -> None:
    for vector in GOLDEN["vectors"]:
        assert bucket(salt_prefix(vector["salt"]), vector["key"]) == vector["bucket"], vector


def released(document: RoutingDocument, users: list[str]) -> set[str]:
    flags = compiled(document).flags
    assert flags is not None
    return {u for u in users if flags.decide(NO_HEADERS.get, u) is not None}


def test_raising_the_percentage_only_adds_users() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    steps = [0.01, 1, 5, 10, 25, 50, 99.99, 100]
    sets = [released(one_flag("new-prompt-v2", p), users) for p in steps]
    for smaller, larger in pairwise(sets):
        assert smaller <= larger
    for percentage, chosen in zip(steps, sets, strict=True):
        assert abs(len(chosen) - percentage * 100) <= max(5, percentage * 100 * 0.1)
    assert len(sets[-1]) == 10_000


def test_two_flags_at_the_same_percentage_choose_different_users() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    a = released(one_flag("new-prompt-v2", 20), users)
    b = released(one_flag("summary-tone", 20), users)
    assert 1800 < len(a) < 2200 and 1800 < len(b) < 2200
    assert len(a & b) < 600  # independent: about 400; the same salt would give 2,000
    salted = released(one_flag("summary-tone", 20, salt="flag:new-prompt-v2"), users)
    assert salted == a  # the salt, not the name, places the users


def test_no_sticky_key_draws_by_percentage() -> None:
    flags = compiled(one_flag("f", 30)).flags
    assert flags is not None
    hits = sum(flags.decide(NO_HEADERS.get, None) is not None for _ in range(4000))
    assert 1000 < hits < 1400


# --- through real sockets ----------------------------------------------------------------------


def flagged_config(stable: str, canary: str) -> SplitgateConfig:
    base = two_track_config(stable, canary, canary_weight=0)
    return SplitgateConfig.model_validate(
        {
            **base.model_dump(),
            "segments": {"paid": {"conditions": [{"type": "user_segment", "values": ["premium"]}]}},
            "feature_flags": {
                "new-prompt-v2": {"route": "chat", "track": "canary", "target_groups": ["paid"]},
                "nobody": {
                    "route": "chat",
                    "track": "canary",
                    "rollout_percentage": 0,
                    "target_groups": ["all_users"],
                    "override": {"enabled_for": ["vip"]},
                },
            },
        }
    )


async def post(
    session: aiohttp.ClientSession, proxy: str, **headers: str
) -> tuple[int, str, str | None]:
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT, headers=headers) as r:
        await r.read()
        return r.status, r.headers["X-Splitgate-Track"], r.headers.get("X-Splitgate-Flag")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_targeting_headers_pick_the_flags_track(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    stable, stable_url = await start_upstream("v1.0.0")
    canary, canary_url = await start_upstream("v1.1.0")
    proxy = await start_proxy(flagged_config(stable_url, canary_url), secret=SECRET)
    async with aiohttp.ClientSession() as s:
        for i in range(60):
            got = await post(s, proxy, **{"x-user-id": f"u{i}", "x-user-segment": "premium"})
            assert got == (200, "canary", "new-prompt-v2")
        for i in range(100):  # the sample-ratio check judges from 100 requests on
            got = await post(s, proxy, **{"x-user-id": f"u{i}", "x-user-segment": "free"})
            assert got == (200, "stable", None)
        assert await post(s, proxy, **{"x-user-id": "vip"}) == (200, "canary", "nobody")
        forced = {"x-splitgate-track": "stable", "x-splitgate-internal": SECRET}
        assert await post(
            s, proxy, **{"x-user-id": "u1", "x-user-segment": "premium", **forced}
        ) == (
            200,
            "stable",
            None,
        )
        async with s.get(f"{proxy}/metrics") as r:
            metrics = samples(await r.text())
    assert len(canary.received) == 61 and len(stable.received) == 101
    labels = {"route": "chat", "track": "canary", "version": "v1.1.0"}
    flag = frozenset({**labels, "flag": "new-prompt-v2"}.items())
    assert metrics["splitgate_flag_requests_total", flag] == 60
    assert (
        metrics["splitgate_flag_requests_total", frozenset({**labels, "flag": "nobody"}.items())]
        == 1
    )
    assert metrics["splitgate_flag_request_duration_seconds_count", flag] == 60
    assert metrics["splitgate_flag_tokens_total", flag | {("kind", "completion")}] > 0
    live = frozenset({**labels, "mode": "live"}.items())
    assert metrics["splitgate_requests_total", live] == 61  # totals include them
    stable_labels = frozenset(
        {"route": "chat", "track": "stable", "version": "v1.0.0", "mode": "live"}.items()
    )
    assert metrics["splitgate_requests_total", stable_labels] == 101
    flagged_tracks = {
        dict(key)["track"] for name, key in metrics if name.startswith("splitgate_flag_")
    }
    assert flagged_tracks == {"canary"}
    # Flag releases are not the weighted split's: a 0 % track with traffic is no mismatch.
    assert metrics["splitgate_sample_ratio_mismatch", frozenset({("route", "chat")})] == 0


async def test_two_replicas_give_a_user_the_same_answer(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable_url = await start_upstream("v1.0.0")
    _, canary_url = await start_upstream("v1.1.0")
    config = SplitgateConfig.model_validate(
        {
            **two_track_config(stable_url, canary_url, canary_weight=0).model_dump(),
            "feature_flags": {
                "half": {
                    "route": "chat",
                    "track": "canary",
                    "rollout_percentage": 50,
                    "target_groups": ["all_users"],
                }
            },
        }
    )
    first, second = await start_proxy(config), await start_proxy(config)
    async with aiohttp.ClientSession() as s:
        answers = []
        for i in range(40):
            user = {"x-user-id": f"user-{i}"}
            answers.append((await post(s, first, **user), await post(s, second, **user)))
    assert all(a == b for a, b in answers)
    assert {a[1] for a, _ in answers} == {"stable", "canary"}
    assert all(
        explain(config, "chat", f"user-{i}", {}).track == a[1] for i, (a, _) in enumerate(answers)
    )
