"""Cost of choosing a track with feature flags, per request, against the same route without.

    python bench/flags.py [--requests 200000] [--repeat 5]
    SPLITGATE_BENCH_CONTENDERS="splitgate-file splitgate-flags" bench/run.sh   # end to end

Times what the forwarder does to choose a track (``Forwarder._choose`` without the override):
the sticky key, the flags' decision, the weighted split, on real ``CIMultiDictProxy`` request
headers. The route carries 20 flags of 10 conditions each (every operator kind, ten
attributes) in four cases: a user no flag targets (the common case), a user who meets nine
of the ten conditions of every flag, a user the last flag releases, and a user in an
override list. Prints the microseconds per request, the best of ``--repeat`` runs, and the
difference as a share of the CPU a proxied request costs (``--request-us``, from
docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from config.schema import OutlierDetection, RoutingDocument
from config.stickiness import ClientAddress, sticky_key
from proxy.endpoints import EndpointPool
from proxy.table import CompiledRoute, RoutingTable

FLAGS = 20

COMMON = {
    "host": "api.example",
    "user-agent": "OpenAI/Python 1.40.0",
    "content-type": "application/json",
    "content-length": "182",
    "accept": "application/json",
    "authorization": "Bearer sk-xxxxxxxxxxxxxxxxxxxxxxxx",
    "x-user-id": "user-4711",
}
NEAR = {
    "x-region": "jp",
    "x-tenant": "globex",
    "x-plan": "team",
    "x-app-version": "2.4.1",
    "x-tier": "4",
    "x-client": "ios-17",
    "x-country": "JP",
    "x-device": "phone",
    "x-locale": "ja-JP",
}


def conditions(i: int) -> list[dict[str, Any]]:
    """Ten conditions: ``NEAR`` meets the middle eight, segment ``premium`` or ``s<i>`` the
    first, locale ``ja``/``en`` the last."""
    return [
        {"type": "user_segment", "values": [f"s{i}", "premium"]},
        {"type": "region", "values": ["jp", "us"]},
        {"type": "tenant", "operator": "not_in", "values": ["acme", f"banned-{i}"]},
        {"type": "plan", "operator": "equals", "value": "team"},
        {"type": "app_version", "operator": "semver_gte", "value": f"2.{i % 4}.0"},
        {"type": "tier", "operator": "gt", "value": 2},
        {"type": "client", "operator": "prefix", "values": ["ios-", "android-"]},
        {"type": "country", "values": ["JP", "US", "DE"]},
        {"type": "device", "operator": "not_equals", "value": f"tv-{i}"},
        {"type": "locale", "operator": "prefix", "values": ["ja", "en"]},
    ]


def route(flags: int) -> CompiledRoute:
    tracks = [
        {"name": "stable", "version": "1", "upstreams": ["http://127.0.0.1:1"], "weight": 90},
        {"name": "canary", "version": "2", "upstreams": ["http://127.0.0.1:2"], "weight": 10},
        {"name": "v2", "version": "3", "upstreams": ["http://127.0.0.1:3"], "weight": 0},
    ]
    document = RoutingDocument.model_validate(
        {
            "routes": [{"name": "chat", "tracks": tracks}],
            "feature_flags": {
                f"flag-{i}": {
                    "route": "chat",
                    "track": "v2",
                    "rollout_percentage": 100,
                    "conditions": conditions(i),
                    "override": {"enabled_for": [f"tester-{i}-{j}" for j in range(50)]},
                }
                for i in range(flags)
            },
        }
    )
    return RoutingTable.build(document, EndpointPool(OutlierDetection())).routes[0]


def per_request(compiled: CompiledRoute, headers: dict[str, str], n: int, repeat: int) -> float:
    request = CIMultiDictProxy(CIMultiDict(headers))
    client = ClientAddress(())
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            key = sticky_key(compiled.stickiness, request, "127.0.0.1", client)
            flags = compiled.flags
            if flags is not None and (flag := flags.decide(request.get, key)) is not None:
                track = flag.track
            else:
                track = compiled.pick(key)
        best = min(best, (time.perf_counter() - started) / n)
        assert track is not None
    return best * 1e6


def harness_route(blue: str, green: str, green_pct: float) -> dict[str, Any]:
    """The shared harness's route as a routing document's: blue and green, green at
    ``green_pct``."""
    return {
        "name": "chat",
        "tracks": [
            {"name": "blue", "version": "1", "upstreams": [blue], "weight": 100 - green_pct},
            {"name": "green", "version": "2", "upstreams": [green], "weight": green_pct},
        ],
    }


def write_config(path: str, blue: str, green: str, green_pct: float, flags: int = FLAGS) -> None:
    """A routing file for the shared harness's ``splitgate-flags`` contender: its blue/green
    route with the same 20 flags (releasing green), which the harness's requests do not meet."""
    document = {
        "routes": [harness_route(blue, green, green_pct)],
        "feature_flags": {
            f"flag-{i}": {
                "route": "chat",
                "track": "green",
                "conditions": conditions(i),
                "override": {"enabled_for": [f"tester-{i}-{j}" for j in range(50)]},
            }
            for i in range(flags)
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)  # JSON is YAML


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--request-us", type=float, default=260.0)
    p.add_argument("--write-config", metavar="PATH", help="write the contender's routing file")
    p.add_argument("--blue", default="http://127.0.0.1:1")
    p.add_argument("--green", default="http://127.0.0.1:2")
    p.add_argument("--green-pct", type=float, default=10)
    p.add_argument("--flags", type=int, default=FLAGS, help="flags in the written file")
    args = p.parse_args()
    if args.write_config:
        write_config(args.write_config, args.blue, args.green, args.green_pct, args.flags)
        return
    plain, flagged = route(0), route(FLAGS)
    cases = {
        "no flag targets the user": {**COMMON, "x-user-segment": "free", "x-region": "br"},
        "9 of 10 conditions of every flag": {
            **COMMON,
            **NEAR,
            "x-user-segment": "premium",
            "x-locale": "fr-FR",
        },
        "released by the last flag": {**COMMON, "x-user-segment": f"s{FLAGS - 1}", **NEAR},
        "in an override list": {**COMMON, "x-user-id": f"tester-{FLAGS - 1}-0", **NEAR},
    }
    base = per_request(plain, cases["no flag targets the user"], args.requests, args.repeat)
    print(
        f"| case ({FLAGS} flags × 10 conditions) | µs per request | added µs | of a {args.request_us:g} µs request |"
    )
    print("|---|---|---|---|")
    print(f"| no flags on the route | {base:.2f} | — | — |")
    for name, headers in cases.items():
        cost = per_request(flagged, headers, args.requests, args.repeat)
        added = cost - base
        print(f"| {name} | {cost:.2f} | {added:.2f} | {added / args.request_us:.1%} |")


if __name__ == "__main__":
    main()
