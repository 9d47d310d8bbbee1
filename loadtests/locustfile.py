"""Load-test a splitgate proxy with users that behave like LLM chat clients.

``locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 1m --host http://127.0.0.1:8080``
(run from the repository root, or with splitgate installed). Every option is listed in
``loadtests/settings.py`` and ``loadtests/README.md``; each reads an environment variable.

Each turn is reported to locust per track (``chat [canary]``, ``stream [stable]``, and the time
to first token of streams as ``TTFT stream [canary]``) and tallied for the exit rules
(``loadtests/verdict.py``): at the end the report is printed and the exit code set. A thin
layer: the logic lives in modules that import neither locust nor gevent.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from locust import User, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

from loadtests.admin import AdminClient, AdminError
from loadtests.expectations import WeightBook
from loadtests.report import render
from loadtests.scenario_rollout import RolloutScenario
from loadtests.settings import OPTIONS, Settings, parse
from loadtests.sse import StreamReader
from loadtests.tally import Outcome, Tally
from loadtests.verdict import judge
from loadtests.workload import Conversation, Turn, Workload

log = logging.getLogger("splitgate.loadtest")

WHOLE_RUN = "whole run"


class TurnFailed(Exception):
    """A failed turn, as locust's error table shows it."""


class Run:
    """One test run: settings, tallies, expected weights, the rollout scenario if any."""

    def __init__(self, settings: Settings, environment: Environment) -> None:
        self.settings = settings
        self.environment = environment
        self.tally = Tally()
        self.book = WeightBook(None if settings.admin else settings.expect_weights)
        self.admin = (
            AdminClient(settings.admin.url, settings.admin.token) if settings.admin else None
        )
        self.scenario: RolloutScenario | None = None
        self.settle_s = 0.0
        if settings.rollout is not None:
            self.settle_s = settings.rollout.settle_s
            assert self.admin is not None
            self.scenario = RolloutScenario(
                self.admin,
                Path(settings.rollout.plan_path).read_text(encoding="utf-8"),
                start_after_s=settings.rollout.after_s,
                expect=settings.rollout.expect,
            )
        self.started = time.monotonic()
        self.stopped = threading.Event()
        self.seeds = itertools.count()

    @property
    def phase(self) -> str:
        return self.scenario.label if self.scenario is not None else WHOLE_RUN

    def follow(self, poll_s: float) -> None:
        """Background loop: weight snapshots from the admin API, and the rollout scenario."""
        over_at: float | None = None
        while not self.stopped.is_set():
            now = time.monotonic()
            self._snapshot()
            if self.scenario is not None:
                if over_at is None and self.scenario.step(now):
                    over_at = now
                    log.info("rollout over: %s %s", self.scenario.status, self.scenario.detail)
                if over_at is not None and now >= over_at + self.settle_s:
                    self._stop_runner()
                    return
            self.stopped.wait(poll_s)

    def _snapshot(self) -> None:
        assert self.admin is not None and self.settings.admin is not None
        try:
            generation, weights = self.admin.weights(self.settings.admin.route)
        except (AdminError, KeyError, ValueError) as exc:
            log.warning("cannot read the weights from the admin API: %s", exc)
            return
        self.book.note(generation, weights)

    def _stop_runner(self) -> None:
        runner = self.environment.runner
        if runner is None:
            return
        if self.environment.parsed_options is not None and self.environment.parsed_options.headless:
            runner.quit()
        else:
            runner.stop()

    def report(self) -> tuple[int, str]:
        runner = self.environment.runner
        exceptions = sum(row["count"] for row in runner.exceptions.values()) if runner else 0
        rules = self.settings.rules
        rollout = self.scenario.result() if self.scenario is not None else None
        verdict = judge(self.tally, self.book.expected, rules, rollout, exceptions)
        timeline = (
            [(at - self.started, what) for at, what in self.scenario.timeline]
            if self.scenario is not None
            else []
        )
        return verdict.exit_code, render(self.tally, verdict, rules, timeline)


_run: Run | None = None
_initial: Settings | None = None
_final_report = ""


def current_run() -> Run:
    if _run is None:
        raise RuntimeError("no test is running")
    return _run


def _settings(environment: Environment) -> Settings:
    options = environment.parsed_options
    return parse(vars(options) if options is not None else {})


def _options(parser: LocustArgumentParser) -> None:
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.dest,
            env_var=option.env,
            default=option.default,
            help=f"{option.help} [{option.env}, default {option.default or 'none'}]",
            is_secret=option.secret,
        )


def _init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner | WorkerRunner):
        sys.exit(
            "splitgate locustfile: distributed runs are not supported (the stickiness check "
            "needs every sighting in one process); run one locust process"
        )
    global _initial
    try:
        _initial = _settings(environment)
        if _initial.rollout is not None:
            Path(_initial.rollout.plan_path).read_text(encoding="utf-8")
    except ValueError as exc:
        sys.exit("\n".join(f"splitgate locustfile: {line}" for line in str(exc).splitlines()))
    except OSError as exc:
        sys.exit(f"splitgate locustfile: the rollout plan: {exc}")
    options = environment.parsed_options
    if options is not None and options.headless and not environment.host:
        sys.exit("splitgate locustfile: give the proxy's URL with --host")


def _test_start(environment: Environment, **_: Any) -> None:
    global _run
    try:
        settings = _settings(environment)  # the web UI's start form may have changed them
    except ValueError as exc:
        assert _initial is not None
        log.error("%s: this run keeps the settings locust started with", exc)
        settings = _initial
    _run = Run(settings, environment)
    for warning in _run.settings.warnings:
        log.warning("%s", warning)
    if _run.settings.admin is not None and _run.settings.expect_weights is not None:
        log.warning("the admin API is given: LOADTEST_EXPECT_WEIGHTS is ignored")
    admin = _run.settings.admin
    if admin is not None:
        # A greenlet under locust (threading is monkey-patched), so it never blocks the users.
        threading.Thread(
            target=_run.follow, args=(admin.poll_s,), name="splitgate-admin", daemon=True
        ).start()


def _spawned(user_count: int, **_: Any) -> None:
    if _run is not None and _run.scenario is not None:
        _run.scenario.steady(time.monotonic())
        log.info("%d users running: the rollout starts after the warm-up", user_count)


def _test_stop(environment: Environment, **_: Any) -> None:
    if _run is not None:
        _run.stopped.set()


def _quitting(environment: Environment, **_: Any) -> None:
    global _final_report
    if _run is None:
        return
    environment.process_exit_code, _final_report = _run.report()


def _quit(exit_code: int, **_: Any) -> None:
    if _final_report:
        print(_final_report, flush=True)


def _listen(hook: EventHook, handler: Callable[..., None]) -> None:
    add: Callable[[Callable[..., None]], object] = hook.add_listener  # untyped in locust
    add(handler)


_listen(events.init_command_line_parser, _options)
_listen(events.init, _init)
_listen(events.test_start, _test_start)
_listen(events.spawning_complete, _spawned)
_listen(events.test_stop, _test_stop)
_listen(events.quitting, _quitting)
_listen(events.quit, _quit)


class ChatUser(User):
    """An LLM chat client: conversations of several turns, with think time between turns."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        run = current_run()
        settings = run.settings
        self._run = run
        self._settings = settings
        seed = next(run.seeds)
        self._rng = random.Random(None if settings.seed is None else f"{settings.seed}:{seed}")
        self._workload = Workload(
            self._rng,
            model=settings.model,
            stream_share=settings.stream_share,
            user_pool=settings.user_pool,
            user_prefix=settings.user_prefix,
            prompt_mix=settings.prompt_mix,
            turns=settings.turns,
            max_tokens=settings.max_tokens,
        )
        self._session = requests.Session()
        self._conversation: Conversation | None = None

    def wait_time(self) -> float:
        low, high = self._settings.think_time
        return self._rng.uniform(low, high)

    @task
    def chat(self) -> None:
        conversation = self._conversation
        if conversation is None or conversation.turns_left <= 0:
            conversation = self._conversation = self._workload.conversation()
        turn = self._workload.turn(conversation)
        outcome, answer = self._send(conversation, turn)
        self._run.tally.record(outcome)
        if answer is None:
            conversation.messages.pop()  # the client will ask again in its next turn
        else:
            conversation.answered(answer)
        self._report(outcome, turn)

    def _send(self, conversation: Conversation, turn: Turn) -> tuple[Outcome, str | None]:
        settings = self._settings
        headers = {
            settings.user_header: conversation.user,
            settings.conversation_header: conversation.id,
        }
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        phase = self._run.phase
        track: str | None = None
        generation: str | None = None
        ttft_ms: float | None = None
        answer: str | None = None
        error: str | None = None
        head_seen = False
        started = time.perf_counter()
        try:
            with self._session.post(
                f"{(self.host or '').rstrip('/')}{settings.chat_path}",
                json=turn.body,
                headers=headers,
                stream=True,
                timeout=settings.request_timeout,
            ) as response:
                head_seen = True
                track = response.headers.get("X-Splitgate-Track")
                generation = response.headers.get("X-Splitgate-Generation")
                if response.status_code != 200:
                    error = f"HTTP {response.status_code}"
                elif turn.stream:
                    reader = StreamReader()
                    for chunk in response.iter_content(chunk_size=None):
                        if reader.feed(chunk) and ttft_ms is None:
                            ttft_ms = 1000 * (time.perf_counter() - started)
                    answer = "".join(reader.text) if reader.complete else None
                    error = None if reader.complete else "truncated"
                else:
                    answer = _answer(response.content)
                    error = None if answer is not None else "bad_body"
        except requests.RequestException as exc:
            error = _failure(exc, head_seen=head_seen)
        latency_ms = 1000 * (time.perf_counter() - started)
        epoch = self._run.book.epoch(generation)
        outcome = Outcome(
            conversation.user, track, epoch, phase, turn.stream, latency_ms, ttft_ms, error
        )
        return outcome, answer

    def _report(self, outcome: Outcome, turn: Turn) -> None:
        name = f"{'stream' if turn.stream else 'chat'} [{outcome.track or '-'}]"
        fire = self.environment.events.request.fire
        fire(
            request_type="POST",
            name=name,
            response_time=outcome.latency_ms,
            response_length=0,
            exception=TurnFailed(outcome.error) if outcome.error else None,
            context={"user": outcome.user, "size": turn.size},
        )
        if outcome.ttft_ms is not None:
            fire(
                request_type="TTFT",
                name=name,
                response_time=outcome.ttft_ms,
                response_length=0,
                exception=None,
                context={"user": outcome.user, "size": turn.size},
            )


def _answer(body: bytes) -> str | None:
    """The assistant's text of a non-streamed chat completion, or ``None`` if malformed."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _failure(exc: requests.RequestException, *, head_seen: bool) -> str:
    if head_seen:
        return "cut"
    return "timeout" if isinstance(exc, requests.Timeout) else "connect"
