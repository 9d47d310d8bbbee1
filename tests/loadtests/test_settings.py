"""Option parsing: defaults, every conversion, and errors that name the option."""

from __future__ import annotations

import pytest

from loadtests.settings import OPTIONS, Admin, Option, RolloutOptions, parse
from loadtests.verdict import Rules


def test_defaults() -> None:
    settings = parse({})
    assert settings.model == "demo"
    assert settings.stream_share == 0.7
    assert settings.user_pool == 10_000
    assert settings.prompt_mix == {"short": 60, "medium": 30, "long": 10}
    assert settings.turns == (1, 6)
    assert settings.think_time == (1.0, 5.0)
    assert settings.user_header == "x-user-id"
    assert settings.rules == Rules(max_error_share=0.01, split_tolerance=0.02, split_min_users=200)
    assert settings.expect_weights is None
    assert settings.admin is None
    assert settings.rollout is None
    assert settings.seed is None


def test_values_and_empty_ones_fall_back_to_defaults() -> None:
    settings = parse(
        {
            "stream_share": "1",
            "turns": "3",
            "think_time": "0.5 - 2",
            "max_error_pct": "5",
            "split_tolerance_pp": "1.5",
            "expect_weights": "stable=95,canary=5",
            "admin_url": "http://127.0.0.1:8081/",
            "admin_token": "t",
            "rollout_plan": "plan.yaml",
            "rollout_expect": "rolled_back",
            "seed": "7",
            "model": "",
            "user_pool": None,
        }
    )
    assert (settings.stream_share, settings.turns, settings.think_time) == (1.0, (3, 3), (0.5, 2.0))
    assert settings.rules.max_error_share == 0.05
    assert settings.rules.split_tolerance == pytest.approx(0.015)
    assert settings.expect_weights == {"stable": 95, "canary": 5}
    assert settings.admin == Admin("http://127.0.0.1:8081", "t", "chat", 1.0)
    assert settings.rollout == RolloutOptions("plan.yaml", 20.0, "rolled_back", 10.0)
    assert (settings.seed, settings.model, settings.user_pool) == (7, "demo", 10_000)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            {"stream_share": "1.5"},
            "--stream-share (LOADTEST_STREAM_SHARE): '1.5' is not between 0 and 1",
        ),
        ({"stream_share": "lots"}, "--stream-share (LOADTEST_STREAM_SHARE): could not convert"),
        ({"turns": "0-3"}, "--turns (LOADTEST_TURNS): '0-3': expected whole numbers of at least 1"),
        ({"turns": "2.5"}, "--turns (LOADTEST_TURNS)"),
        ({"think_time": "5-1"}, "--think-time (LOADTEST_THINK_TIME): '5-1': expected N or MIN-MAX"),
        (
            {"prompt_mix": "huge=1"},
            "--prompt-mix (LOADTEST_PROMPT_MIX): 'huge=1': expected SIZE=WEIGHT",
        ),
        ({"prompt_mix": "short=0"}, "--prompt-mix (LOADTEST_PROMPT_MIX): the weights add up to 0"),
        (
            {"expect_weights": "stable=90"},
            "--expect-weights (LOADTEST_EXPECT_WEIGHTS): weights must add up",
        ),
        (
            {"chat_path": "v1/chat"},
            "--chat-path (LOADTEST_CHAT_PATH): 'v1/chat': a path starts with '/'",
        ),
        (
            {"user_header": "x user"},
            "--user-header (LOADTEST_USER_HEADER): 'x user' is not a header name",
        ),
        ({"rollout_expect": "done"}, None),
        ({"rollout_plan": "p.yaml"}, "--rollout-plan (LOADTEST_ROLLOUT_PLAN) needs --admin-url"),
        (
            {"rollout_plan": "p.yaml", "admin_url": "http://a", "rollout_expect": "done"},
            "--rollout-expect (LOADTEST_ROLLOUT_EXPECT): 'done': one of promoted, rolled_back, any",
        ),
    ],
)
def test_errors_name_the_option(values: dict[str, str], problem: str | None) -> None:
    if problem is None:  # only read when a plan is given
        parse(values)
        return
    with pytest.raises(ValueError) as caught:
        parse(values)
    assert str(caught.value).startswith(problem)


def test_every_option_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "loadtests" / "README.md").read_text(
        encoding="utf-8"
    )
    missing = [o.env for o in OPTIONS if f"`{o.env}`" not in readme]
    assert not missing, f"loadtests/README.md does not document {missing}"


def test_a_token_without_the_admin_url_is_warned_about() -> None:
    # Without the URL the split is silently not judged against the live weights.
    assert "without SPLITGATE_ADMIN_URL" in parse({"admin_token": "t"}).warnings[0]
    assert parse({"admin_token": "t", "admin_url": "http://127.0.0.1:8081"}).warnings == ()
    assert parse({}).warnings == ()


BAD = {
    "stream_share": "lots",
    "user_pool": "0",
    "prompt_mix": "huge=1",
    "turns": "0-3",
    "think_time": "5-1",
    "max_tokens": "many",
    "chat_path": "v1/chat",
    "user_header": "x user",
    "conversation_header": "x:y",
    "request_timeout": "0",
    "max_error_pct": "101",
    "split_tolerance_pp": "0",
    "split_min_users": "-1",
    "expect_weights": "stable=90",
    "admin_poll": "0.01",
    "rollout_after": "-1",
    "rollout_settle": "soon",
    "seed": "random",
}
"""A bad value for every option whose format can be broken."""
ANY_STRING = {
    "model",
    "user_prefix",
    "api_key",
    "admin_url",
    "admin_token",
    "route",
    "rollout_plan",
}
CHECKED_WITH_A_PLAN = {"rollout_expect"}


def test_every_option_has_a_bad_value_below() -> None:
    assert set(BAD) | ANY_STRING | CHECKED_WITH_A_PLAN == {o.dest for o in OPTIONS}


@pytest.mark.parametrize("dest", sorted(BAD))
def test_a_bad_value_is_one_line_naming_the_option_and_its_variable(dest: str) -> None:
    option = next(o for o in OPTIONS if o.dest == dest)
    with pytest.raises(ValueError) as caught:
        parse({dest: BAD[dest]})
    assert str(caught.value).startswith(f"{option.flag} ({option.env}): ")
    assert "\n" not in str(caught.value)


def test_options_come_from_the_model_with_their_variables() -> None:
    by_dest = {o.dest: o for o in OPTIONS}
    assert by_dest["admin_url"].env == "SPLITGATE_ADMIN_URL"
    assert by_dest["stream_share"] == Option(
        "stream_share", "LOADTEST_STREAM_SHARE", "0.7", "share of turns that stream (0–1)"
    )
    assert {o.dest for o in OPTIONS if o.secret} == {"api_key", "admin_token"}
