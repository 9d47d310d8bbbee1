"""Passive health (ejection) and balancing inside a track, with an injected clock."""

from __future__ import annotations

from config.schema import OutlierDetection
from proxy.endpoints import Balancer, Endpoint, EndpointPool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(clock: Clock, **policy: object) -> EndpointPool:
    return EndpointPool(OutlierDetection.model_validate(policy), clock)


def test_endpoint_parses_origin_and_base_path() -> None:
    e = Endpoint("http://10.0.0.1:8000/openai/v1")
    assert (e.origin, e.base_path) == ("http://10.0.0.1:8000", "/openai/v1")
    assert Endpoint("https://api.example").base_path == ""


def test_ejected_after_consecutive_failures_and_back_after_the_ejection_time() -> None:
    clock = Clock()
    p = pool(clock, consecutive_failures=3, base_ejection=30, max_ejection_percent=100)
    a, b = p.get("http://a"), p.get("http://b")
    for _ in range(2):
        p.failed(a, [a, b])
    p.succeeded(a)  # a success resets the streak
    for _ in range(2):
        p.failed(a, [a, b])
    assert a.available(clock.now)
    p.failed(a, [a, b])
    assert not a.available(clock.now)
    clock.now += 30
    assert a.available(clock.now)


def test_ejection_time_grows_with_each_ejection_up_to_the_cap() -> None:
    clock = Clock()
    p = pool(
        clock, consecutive_failures=1, base_ejection=10, max_ejection=25, max_ejection_percent=100
    )
    a = p.get("http://a")
    lengths = []
    for _ in range(4):
        p.failed(a, [a])
        lengths.append(a.ejected_until - clock.now)
        clock.now = a.ejected_until
    assert lengths == [10, 20, 25, 25]


def test_no_more_than_the_allowed_share_is_ejected_but_always_one() -> None:
    clock = Clock()
    p = pool(clock, consecutive_failures=1, max_ejection_percent=50)
    four = [p.get(f"http://e{i}") for i in range(4)]
    for e in four:
        p.failed(e, four)
    assert sum(not e.available(clock.now) for e in four) == 2
    single = pool(clock, consecutive_failures=1, max_ejection_percent=0)
    only = single.get("http://only")
    single.failed(only, [only])
    assert not only.available(clock.now)


def test_round_robin_takes_turns_and_skips_ejected() -> None:
    a, b, c = Endpoint("http://a"), Endpoint("http://b"), Endpoint("http://c")
    balancer = Balancer([a, b, c], "round_robin")
    firsts = [balancer.order(0.0)[0] for _ in range(6)]
    assert firsts == [a, b, c, a, b, c]
    b.ejected_until = 10.0
    assert [balancer.order(5.0) for _ in range(4)] == [[a, c], [c, a], [a, c], [c, a]]
    assert b in balancer.order(10.0)


def test_least_request_prefers_the_idle_endpoint() -> None:
    a, b = Endpoint("http://a"), Endpoint("http://b")
    balancer = Balancer([a, b], "least_request")
    a.in_flight = 3
    assert [balancer.order(0.0)[0] for _ in range(4)] == [b, b, b, b]
    a.in_flight = 0
    assert {balancer.order(0.0)[0].url for _ in range(4)} == {"http://a", "http://b"}


def test_single_endpoint_ejected_means_no_healthy_upstream() -> None:
    a = Endpoint("http://a")
    balancer = Balancer([a], "round_robin")
    a.ejected_until = 10.0
    assert balancer.order(5.0) == []
    assert balancer.order(10.0) == [a]
