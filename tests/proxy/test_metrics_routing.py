"""``/metrics`` shows each track's weight and role, and each upstream's ejections."""

from __future__ import annotations

import aiohttp

from config.schema import SplitgateConfig
from tests.conftest import StartProxy, StartUpstream, refused_url
from tests.proxy.test_metrics import samples, value

SECRET = "routing-metrics-secret"


def three_tracks(stable: str, canary: str, refused: str) -> SplitgateConfig:
    def track(name: str, version: str, weight: float, *urls: str) -> dict[str, object]:
        return {"name": name, "version": version, "upstreams": list(urls), "weight": weight}

    return SplitgateConfig.model_validate(
        {
            "proxy": {"outlier_detection": {"consecutive_failures": 1}},
            "routes": [
                {
                    "name": "chat",
                    "baseline": "main",
                    "tracks": [
                        track("canary", "v2", 10, canary, refused),
                        track("main", "v1", 85, stable),
                        track("shadow", "v3", 5, stable),
                    ],
                }
            ],
        }
    )


async def test_weights_roles_and_ejections(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable = await start_upstream("v1")
    _, canary = await start_upstream("v2")
    refused = refused_url()
    proxy = await start_proxy(three_tracks(stable, canary, refused), secret=SECRET)
    async with aiohttp.ClientSession() as session:
        # Round robin over the canary's two upstreams: within two requests one goes to the
        # refused one, which is ejected at once (and the request retried on the other).
        for _ in range(2):
            forced = {"X-Splitgate-Track": "canary", "X-Splitgate-Internal": SECRET}
            async with session.get(f"{proxy}/v1/models", headers=forced) as r:
                assert r.status == 200
                assert r.headers["X-Splitgate-Track"] == "canary"
        async with session.get(f"{proxy}/metrics") as r:
            got = samples(await r.text())

    def weight(track: str, version: str, role: str) -> float:
        labels = {"route": "chat", "track": track, "version": version, "role": role}
        return value(got, "splitgate_track_weight", **labels)

    assert weight("main", "v1", "baseline") == 85
    assert weight("canary", "v2", "candidate") == 10
    assert weight("shadow", "v3", "other") == 5

    def ejections(track: str, upstream: str) -> float:
        labels = {"route": "chat", "track": track, "upstream": upstream}
        return value(got, "splitgate_upstream_ejections_total", **labels)

    def ejected(track: str, upstream: str) -> float:
        labels = {"route": "chat", "track": track, "upstream": upstream}
        return value(got, "splitgate_upstream_ejected", **labels)

    assert (ejections("canary", refused), ejected("canary", refused)) == (1, 1)
    assert (ejections("canary", canary), ejected("canary", canary)) == (0, 0)
    # An upstream shared by two tracks shows under each.
    assert (ejections("main", stable), ejected("shadow", stable)) == (0, 0)
