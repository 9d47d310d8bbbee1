"""Redis URLs: splitgate's own parameters (Sentinel password, WAIT) and their settings."""

from __future__ import annotations

import re

import pytest

from config.redis_url import parse_redis_url, with_settings


def test_the_password_before_the_at_is_the_servers_and_the_sentinels_is_a_parameter() -> None:
    target = parse_redis_url(
        "redis+sentinel://:server%40pw@s1:26379,s2:26380/mymaster/2?sentinel_password=s%20pw"
    )
    assert (target.password, target.sentinel_password) == ("server@pw", "s pw")
    assert (target.service, target.db, target.nodes) == (
        "mymaster",
        2,
        (("s1", 26379), ("s2", 26380)),
    )


def test_wait_replicas_is_taken_out_of_a_plain_url() -> None:
    target = parse_redis_url("redis://h:6379/0?wait_replicas=1/250ms&socket_keepalive=true")
    assert (target.wait_replicas, target.wait_timeout_s) == (1, 0.25)
    assert target.url == "redis://h:6379/0?socket_keepalive=true"  # what redis-py sees
    assert parse_redis_url("unix:///run/redis.sock").url == "unix:///run/redis.sock"
    assert parse_redis_url("redis://h/0?wait_replicas=2").wait_timeout_s == 1.0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://s:1/m?sentinel_password=x&bogus=1", "unknown parameter bogus"),
        ("redis+cluster://a:1?wait_replicas=1", "a Cluster URL takes no wait_replicas"),
        ("redis://h?wait_replicas=many", "wait_replicas 'many': expected a number of replicas"),
        ("redis://h?wait_replicas=1/1h", "the timeout must be between 1ms and 1.5s"),
        ("redis://h?sentinel_password=x", "sentinel_password is for redis+sentinel:// URLs"),
    ],
)
def test_bad_parameters_are_named(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as error:
        parse_redis_url(url)
    assert "\n" not in str(error.value)


def test_a_sentinel_password_in_an_error_is_masked() -> None:
    with pytest.raises(ValueError) as error:
        parse_redis_url("redis+sentinel://:top@s:1/m?sentinel_password=secret&x=1")
    assert "secret" not in str(error.value) and "top" not in str(error.value)


def test_settings_fold_into_the_url_and_the_url_wins() -> None:
    url = with_settings("redis+sentinel://s:1/m", "p&w/", "1/500ms")
    target = parse_redis_url(url)
    assert (target.sentinel_password, target.wait_replicas, target.wait_timeout_s) == (
        "p&w/",
        1,
        0.5,
    )
    kept = with_settings("redis+sentinel://s:1/m?sentinel_password=mine", "env", None)
    assert parse_redis_url(kept).sentinel_password == "mine"
    with pytest.raises(ValueError, match=r"^SPLITGATE_REDIS_SENTINEL_PASSWORD: "):
        with_settings("redis://h/0", "pw", None)
    with pytest.raises(ValueError, match=r"^SPLITGATE_REDIS_WAIT_REPLICAS '-1': "):
        with_settings("redis://h/0", None, "-1")
