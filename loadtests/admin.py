"""The few admin API calls the load test makes, over plain blocking HTTP (httpx).

Blocking is right here: under locust, gevent's monkey-patching makes these sockets
cooperative, and the calls run in a background greenlet, never in a simulated user. Each call
opens and closes its own connection: a few calls a run, and no pool left open at exit.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from loadtests.expectations import route_weights


class AdminError(Exception):
    """The admin API refused a call or could not be reached."""


class AdminClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def weights(self, route: str) -> tuple[int, dict[str, float]]:
        """The route's weights now, and the routing generation they belong to."""
        body = self._call("GET", f"/v1/routes/{route}")
        return int(body["generation"]), route_weights(body["route"])

    def start_rollout(self, plan_yaml: str) -> dict[str, Any]:
        return self._call("POST", "/v1/rollouts", plan_yaml.encode(), "application/yaml")

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/rollouts/{rollout_id}")

    def _call(
        self, method: str, path: str, data: bytes | None = None, content_type: str = ""
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "X-Splitgate-Actor": "splitgate-loadtest",
        }
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = httpx.request(
                method,
                f"{self._base}{path}",
                content=data,
                headers=headers,
                timeout=self._timeout_s,
                follow_redirects=True,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise AdminError(f"{method} {path}: {exc}") from None
        if response.is_error:
            raise AdminError(f"{method} {path}: HTTP {response.status_code}: {_message(response)}")
        try:
            body: dict[str, Any] = json.loads(response.content)
        except ValueError as exc:
            raise AdminError(f"{method} {path}: {exc}") from None
        return body


def _message(response: httpx.Response) -> str:
    try:
        return str(json.loads(response.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
