"""The admin API's client for the command-line tools, on httpx.

One ``AdminClient`` per command: one connection, reused by every call (``top`` and
``--watch`` poll). Every call either returns the decoded JSON answer or raises one of three
``AdminError``: ``ApiError`` (the API answered 4xx/5xx; its message names each field and
reason), ``Unreachable`` (no answer: refused, timed out, reset) or ``BadAnswer`` (an answer
that is not JSON: the URL is not the admin API). The token is sent, never shown.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import httpx

from config import jsonsafe

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_ERRNO = re.compile(r"^\[Errno -?\d+\] ")


class AdminError(Exception):
    """A call to the admin API that has no answer to use."""


class ApiError(AdminError):
    """The API refused the call: its status and its JSON error (or the reason phrase)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(describe(status, body))


class Unreachable(AdminError):
    """The HTTP exchange failed: no answer (and not our own stdout's broken pipe)."""


class BadAnswer(AdminError):
    """Something answered, but not with JSON."""


def describe(status: int, body: Any) -> str:
    """One line: ``422 weights.blue: route 'chat' has no track 'blue'`` per field error, or
    the API's message, or the body as it came."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(f"{status} {e.get('field')}: {e.get('reason')}" for e in body["errors"])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"{status} {body['error'].get('message')}"
    return f"{status} {body}"


class AdminApi(Protocol):
    """What the commands need of the admin API; tests pass a scripted one."""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any: ...

    def send_text(
        self,
        method: str,
        path: str,
        text: str,
        source: str,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any: ...


class AdminClient:
    """``AdminApi`` over HTTP: the bearer token and the actor (``user@cli``) on every call."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"admin URL {base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"admin URL {base_url!r}: expected http://HOST:PORT or https://…")
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "X-Splitgate-Actor": _actor()},
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send ``body`` as JSON (none when ``None``); the decoded answer."""
        content = None if body is None else jsonsafe.dumps(body).encode()
        kind = {} if content is None else {"Content-Type": "application/json"}
        return self._send(method, path, content, params, {**kind, **(headers or {})})

    def send_text(
        self,
        method: str,
        path: str,
        text: str,
        source: str,
        *,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a YAML document (a plan, a flag); a 422 names ``source`` in its field errors."""
        kind = {"Content-Type": "application/yaml"}
        try:
            return self._send(method, path, text.encode(), params, kind)
        except ApiError as exc:
            if isinstance(exc.body, dict) and isinstance(exc.body.get("errors"), list):
                for e in exc.body["errors"]:
                    e["field"] = f"{source}: {e.get('field')}"
            raise ApiError(exc.status, exc.body) from None

    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> Any:
        try:
            response = self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unreachable(self._why(exc)) from None
        except httpx.InvalidURL as exc:  # a name given on the command line that no URL can hold
            raise ValueError(f"{path}: {exc}") from None
        if response.is_error:
            raise ApiError(response.status_code, _error_body(response))
        try:
            return json.loads(response.content or b"null")
        except ValueError:
            kind = response.headers.get("Content-Type") or "no content type"
            raise BadAnswer(
                f"{response.url} answered {response.status_code} with something other than "
                f"JSON ({kind}): is it the admin API?"
            ) from None

    def _why(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {self._timeout.connect:g} s"
        if isinstance(exc, httpx.ReadTimeout):
            return f"no answer within {self._timeout.read:g} s"
        cause: BaseException | None = exc
        for _ in range(8):  # httpx wraps httpcore's error, which wraps the OSError
            if cause is None:
                break
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return _ERRNO.sub("", str(exc)) or type(exc).__name__


def _error_body(response: httpx.Response) -> Any:
    """The API's JSON error; from something else (a gateway's page), its reason phrase."""
    try:
        return json.loads(response.content)
    except ValueError:
        return response.reason_phrase


def _actor() -> str:
    """``user@cli``, in ASCII: a header value must be."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name: a container's uid without a passwd entry
        return "cli"
    return f"{user.encode('ascii', 'replace').decode()}@cli"
