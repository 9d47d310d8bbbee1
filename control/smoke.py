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
    async with _session(timeout_s) as session:
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


async def reachable(upstreams: list[str], path: str, timeout_s: float = 10.0) -> list[SmokeResult]:
    """Is each upstream up? Any HTTP answer below 500 on ``path`` counts."""
    results = []
    async with _session(timeout_s) as session:
        for upstream in upstreams:
            try:
                async with session.get(upstream.rstrip("/") + path, allow_redirects=False) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                results.append(SmokeResult("up", upstream, False, f"no answer: {exc!r}"))
                continue
            ok = status < 500
            results.append(SmokeResult("up", upstream, ok, f"status {status}"))
    return results


async def probe(
    url: str,
    method: str,
    expect_status: int,
    expect_regex: str | None,
    timeout_s: float = 10.0,
) -> tuple[bool, str]:
    """A checklist item's probe: (satisfied, what was seen)."""
    try:
        async with (
            _session(timeout_s) as session,
            session.request(method, url, allow_redirects=False) as r,
        ):
            text = await r.text(errors="replace")
            status = r.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return False, f"no answer: {exc!r}"
    if status != expect_status:
        return False, f"status {status}, expected {expect_status}"
    if expect_regex is not None and re.search(expect_regex, text) is None:
        return False, f"the body does not match {expect_regex!r}"
    return True, f"status {status}"


def _session(timeout_s: float) -> aiohttp.ClientSession:
    """A session of its own for one batch of checks: no cookies, one total deadline."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s), cookie_jar=aiohttp.DummyCookieJar()
    )
