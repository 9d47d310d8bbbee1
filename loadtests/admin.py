"""The few admin API calls the load test makes, over plain blocking HTTP.

Blocking is right here: under locust, gevent's monkey-patching makes these sockets
cooperative, and the calls run in a background greenlet, never in a simulated user.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

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
        request = urllib.request.Request(f"{self._base}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("X-Splitgate-Actor", "splitgate-loadtest")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} {path}: HTTP {exc.code}: {_message(exc)}") from None
        except (OSError, ValueError) as exc:
            raise AdminError(f"{method} {path}: {exc}") from None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return exc.reason if isinstance(exc.reason, str) else str(exc)
