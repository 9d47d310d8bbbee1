"""Smoke tests: HTTP probes sent straight to a new version's upstreams before any user traffic.

Each probe checks the status, and optionally that the body matches a regular expression and
that the JSON answer has the named top-level keys ("verify output format" in the notes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import aiohttp

from config.plans import SmokeTest


@dataclass(frozen=True)
class SmokeResult:
    name: str
    upstream: str
    ok: bool
    detail: str


async def run_smoke_tests(
    tests: list[SmokeTest], upstreams: list[str], timeout_s: float = 30.0
) -> list[SmokeResult]:
    results = []
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(
        timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        for upstream in upstreams:
            for test in tests:
                results.append(await _probe(session, test, upstream))
    return results


async def _probe(session: aiohttp.ClientSession, test: SmokeTest, upstream: str) -> SmokeResult:
    try:
        async with session.request(
            test.method, upstream.rstrip("/") + test.path, json=test.body, allow_redirects=False
        ) as r:
            text = await r.text(errors="replace")
            status = r.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return SmokeResult(test.name, upstream, False, f"no answer: {exc!r}")
    if status != test.expect_status:
        return SmokeResult(
            test.name, upstream, False, f"status {status}, expected {test.expect_status}"
        )
    if test.expect_regex is not None and re.search(test.expect_regex, text) is None:
        return SmokeResult(
            test.name, upstream, False, f"the body does not match {test.expect_regex!r}"
        )
    if test.expect_json_keys:
        try:
            body = json.loads(text)
        except ValueError:
            return SmokeResult(test.name, upstream, False, "the body is not JSON")
        missing = [k for k in test.expect_json_keys if not isinstance(body, dict) or k not in body]
        if missing:
            return SmokeResult(test.name, upstream, False, f"missing keys: {', '.join(missing)}")
    return SmokeResult(test.name, upstream, True, "ok")
