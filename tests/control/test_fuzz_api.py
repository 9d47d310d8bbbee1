"""The admin API fuzzed from its own OpenAPI document (schemathesis), against a real control
plane process and a real Redis: every answer's status is one the document lists, none is a
500, every JSON body parses strictly, and a refused request leaves the routing document as
it was. Bounded: a few examples per operation, seeded, each request with a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from openapi_spec_validator import validate
from redis import Redis
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from config.keys import Keys
from control.openapi import OPENAPI
from splitgate.redis_server import RedisServer, free_port

TOKEN = "fuzz-admin-token-0123456789"
SIGNING_KEY = "fuzz-signing-key"
SEED = """
routes:
  - name: chat
    match: {path_prefix: /v1/}
    tracks:
      - {name: stable, version: v1, upstreams: ["http://127.0.0.1:9"], weight: 90}
      - {name: canary, version: v2, upstreams: ["http://127.0.0.1:9"], weight: 10}
"""

schema = schemathesis.openapi.from_dict(OPENAPI)

EXCLUDED = [
    # A schema cannot state every rule of a write (weights that add up to 100, a track that
    # must exist, a plan's content): a schema-valid body may rightly get 404, 409 or 422.
    positive_data_acceptance,
    # /v1/flags/explain and /v1/flags/{name} share a path's shape, as do
    # /v1/rollouts/{id}/verdicts and /v1/rollouts/{id}/{command}: a 405's Allow names the
    # methods of every path the request matches, which is what the server does take.
    allow_header_conformance,
]


def test_the_openapi_document_is_valid() -> None:
    validate(OPENAPI)  # raises, naming the part of the document that is wrong


SEEN: Counter[int | str] = Counter()
"""Answers to writes by class (2, 4, 5) and how many changed the routing document."""


class Plane:
    def __init__(self, url: str, redis: Redis) -> None:
        self.url = url
        self.redis = redis

    def generation(self) -> str | None:
        value = self.redis.get(Keys().generation)
        return None if value is None else str(value)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    server = RedisServer()
    server.start()
    seed = Path(tmp_path_factory.mktemp("fuzz")) / "routes.yaml"
    seed.write_text(SEED)
    port = free_port()
    env = {
        **os.environ,
        "SPLITGATE_ADMIN_TOKEN": TOKEN,
        "SPLITGATE_SIGNING_KEY": SIGNING_KEY,
        "SPLITGATE_LOG_LEVEL": "error",
        "SPLITGATE_ROLLOUT_INTERVAL": "1h",  # the runner stays out of the way
    }
    args = ["--config", str(seed), "--redis-url", server.url, "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "control", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    redis = Redis.from_url(server.url, decode_responses=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield Plane(url, redis)
    finally:
        process.terminate()
        process.wait(timeout=20)
        redis.close()
        server.stop()


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@schema.parametrize()
@hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_the_admin_api_keeps_its_document(case: Any, plane: Plane) -> None:
    before = plane.generation()
    response = case.call(
        base_url=plane.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    case.validate_response(response, excluded_checks=EXCLUDED)
    if "json" in response.headers.get("Content-Type", ""):
        _strict(response.text)
    if case.method.upper() != "GET":
        SEEN[response.status_code // 100] += 1
        SEEN["wrote"] += plane.generation() != before
    if response.status_code >= 400 and case.method.upper() != "GET":
        assert plane.generation() == before, "a refused request changed the routing document"


def test_the_fuzzing_reached_the_store() -> None:
    """Runs after the fuzzing (pytest keeps a module's order): its writes were both taken and
    refused, so the check above was put to the test."""
    assert SEEN[2] > 0 and SEEN["wrote"] > 0, SEEN
    assert SEEN[4] > SEEN[2], SEEN
