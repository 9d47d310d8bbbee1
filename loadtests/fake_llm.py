"""A scriptable fake of an OpenAI-compatible LLM backend, for tests, demos and load tests.

``python -m loadtests.fake_llm --port 9001 --version v1.0.0`` serves:

- ``POST /v1/chat/completions`` and ``POST /v1/completions``: OpenAI-shaped JSON, or SSE
  chunks then ``data: [DONE]`` when the body asks for ``"stream": true``; ``usage`` is
  included in JSON and in the last chunk when ``stream_options.include_usage`` is set;
- ``GET /v1/models``; ``/echo`` (any method): what arrived, as JSON; ``GET /__stats``.

Behaviour per instance (flags) or per request (an ``X-Fake`` header of ``key=value`` pairs,
which passes through any proxy): ``ttfb`` seconds before the response head, ``chunks`` and
``tps`` (chunks per second) of a stream, ``status`` (e.g. 503 or 429, with ``retry_after``),
``reset_after`` (abort the connection after N stream events), ``truncate`` (end the stream
cleanly after the tokens, with neither a ``finish_reason`` nor ``[DONE]``), ``hang`` (never
answer), ``bad_headers`` (a malformed head),
``error_rate`` (share of requests answered 500), ``health_ok`` (``GET /v1/models`` never
fails by ``error_rate``: a health check sees the backend up while its completions fail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Behaviour:
    ttfb: float = 0.0
    chunks: int = 8
    tps: float = 0.0
    status: int = 200
    retry_after: int = 0
    reset_after: int = -1
    truncate: bool = False
    hang: bool = False
    bad_headers: bool = False
    error_rate: float = 0.0
    health_ok: bool = False

    def merged(self, header: str | None) -> Behaviour:
        if not header:
            return self
        changes: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(self)}
        for pair in header.split():
            key, _, value = pair.partition("=")
            kind = types.get(key)
            if kind is None:
                continue
            if kind == "bool":
                changes[key] = value not in ("0", "false", "")
            elif kind == "int":
                changes[key] = int(value)
            else:
                changes[key] = float(value)
        return replace(self, **changes)


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


class FakeLLM:
    """The fake's state: how it behaves by default and what it has received."""

    def __init__(
        self, version: str = "v1.0.0", name: str = "fake", behaviour: Behaviour | None = None
    ) -> None:
        self.version = version
        self.name = name
        self.behaviour = behaviour or Behaviour()
        self.received: list[Received] = []
        self.user_ids: Counter[str] = Counter()
        self.open_streams = 0
        self.completed_streams = 0
        self.cancelled = 0
        """Requests whose handler was cancelled because the client (the proxy) went away."""
        self._rng = random.Random(0)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._count_cancelled])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/__stats", self._stats)
        app.router.add_route("*", "/echo{tail:.*}", self._echo)
        return app

    @web.middleware
    async def _count_cancelled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def _record(self, request: web.Request) -> tuple[bytes, Behaviour]:
        body = await request.read()
        self.received.append(
            Received(request.method, request.path_qs, CIMultiDict(request.headers), body)
        )
        user = request.headers.get("x-user-id")
        if user:
            self.user_ids[user] += 1
        return body, self.behaviour.merged(request.headers.get("x-fake"))

    async def _prelude(self, request: web.Request, how: Behaviour) -> web.StreamResponse | None:
        """Apply the failure knobs that act before a normal answer; a response ends it."""
        if how.hang:
            await asyncio.sleep(3600)
        if how.ttfb:
            await asyncio.sleep(how.ttfb)
        if how.bad_headers:
            transport = request.transport
            assert transport is not None
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad\x00Header: x\r\n\r\nok")
            transport.close()
            return web.Response()
        status = how.status
        if how.error_rate and self._rng.random() < how.error_rate:
            status = 500
        if status != 200:
            headers = {"Retry-After": str(how.retry_after)} if how.retry_after else None
            error = {
                "error": {
                    "message": f"fake {status}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            return web.json_response(error, status=status, headers=headers)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        failed = await self._prelude(request, how)
        if failed is not None:
            return failed
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return web.json_response(
                {"error": {"message": "body is not JSON", "type": "invalid_request_error"}},
                status=400,
            )
        model = str(payload.get("model", "fake-model"))
        headers = {"X-Fake-Version": self.version}
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, how, model, include_usage, headers)
        text = self._text(how.chunks)
        answer = {
            "id": f"chatcmpl-{self.name}-{len(self.received)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": how.chunks,
                "total_tokens": 10 + how.chunks,
            },
        }
        return web.json_response(answer, headers=headers)

    def _text(self, n: int) -> str:
        return " ".join(f"{self.version}-token{i}" for i in range(n))

    async def _stream(
        self,
        request: web.Request,
        how: Behaviour,
        model: str,
        include_usage: bool,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.open_streams += 1
        try:
            base = {
                "id": f"chatcmpl-{self.name}-{len(self.received)}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
            gap = 1.0 / how.tps if how.tps else 0.0
            # A truncated stream ends cleanly after the tokens: no finish chunk, no [DONE].
            for i in range(how.chunks if how.truncate else how.chunks + 1):
                if i == how.reset_after:
                    transport = request.transport
                    assert transport is not None
                    transport.abort()
                    return response
                last = i == how.chunks
                delta = {} if last else {"content": f"{self.version}-token{i} "}
                event: dict[str, Any] = {
                    **base,
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                    ],
                }
                if last and include_usage:
                    event["usage"] = {
                        "prompt_tokens": 10,
                        "completion_tokens": how.chunks,
                        "total_tokens": 10 + how.chunks,
                    }
                await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                if gap and not last:
                    await asyncio.sleep(gap)
            if not how.truncate:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.completed_streams += 1
            return response
        finally:
            self.open_streams -= 1

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, how = await self._record(request)
        if how.health_ok:
            how = replace(how, error_rate=0.0)
        failed = await self._prelude(request, how)
        if failed is not None:
            return failed
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "owned_by": self.name}],
            }
        )

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        body, how = await self._record(request)
        failed = await self._prelude(request, how)
        if failed is not None:
            return failed
        seen = {
            "method": request.method,
            "path": request.path_qs,
            "headers": list(request.headers.items()),
            "body_bytes": len(body),
            "version": self.version,
        }
        return web.json_response(seen, headers={"X-Fake-Version": self.version})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "version": self.version,
                "requests": len(self.received),
                "users": len(self.user_ids),
                "open_streams": self.open_streams,
                "completed_streams": self.completed_streams,
            }
        )


async def serve(fake: FakeLLM, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(fake.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.fake_llm", description="Fake OpenAI-compatible backend"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--version", default="v1.0.0", help="the version this instance claims to serve")
    p.add_argument("--ttfb", type=float, default=0.0, help="seconds before the response head")
    p.add_argument(
        "--tps", type=float, default=20.0, help="stream chunks per second (0 = as fast as possible)"
    )
    p.add_argument("--chunks", type=int, default=8, help="tokens per answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    args = p.parse_args()
    fake = FakeLLM(
        args.version,
        f"fake-{args.port}",
        Behaviour(ttfb=args.ttfb, tps=args.tps, chunks=args.chunks, error_rate=args.error_rate),
    )

    async def run() -> None:
        runner = await serve(fake, args.host, args.port)
        print(f"fake LLM {args.version} on http://{args.host}:{args.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
