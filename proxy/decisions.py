"""The routing decision log's in-memory side: which decisions to keep, held until a flush.

``note`` runs once per routed request, after it ends (its error class is known then). It
keeps a decision that is sampled (every n-th, ``sample_percent``) or, with ``keep_unusual``,
one that is not the plain weighted split or that failed. A kept decision costs one tuple
appended to a list; nothing is formatted, hashed or sent here. ``proxy.decision_writer``
drains the list with the metrics flusher, which also renews the budget: at most
``max_per_second`` entries wait, and any beyond are dropped and counted, so memory stays
bounded when Redis is slow or gone.

The log is inactive (keeps nothing) until ``activate``: a proxy that does not follow Redis
has nowhere to send it.
"""

from __future__ import annotations

from typing import TypeAlias

from config.decisions import DecisionLogSettings
from proxy.exchange import Exchange
from proxy.shadow import Ticket
from proxy.table import CompiledFlag, CompiledRoute, CompiledTrack

Entry: TypeAlias = tuple[
    str,  # nonce (the signed id's first part)
    str | None,  # the client's own X-Request-Id, if it sent one
    CompiledRoute,
    CompiledTrack,  # chosen by the rule
    CompiledTrack | None,  # answered (None: failed before any upstream was tried)
    CompiledFlag | None,  # the deciding flag
    bool,  # forced by the override
    str | None,  # sticky key: its bucket is computed when written, the key itself never is
    int,  # routing generation
    float,  # arrival, on the event loop's clock
    str | None,  # error class
    Ticket | None,  # the request's shadow copy, if the route mirrored it
]


_WHOLE = 10_000
"""100 % in the sample's steps of 0.01 %."""


class DecisionLog:
    __slots__ = (
        "_always",
        "_budget",
        "_cap",
        "_credit",
        "_entries",
        "_settings",
        "_share",
        "dropped",
    )

    def __init__(self, settings: DecisionLogSettings | None = None) -> None:
        self._settings = settings or DecisionLogSettings()
        self._share = 0
        self._always = False
        self._cap = 0
        self._credit = 0
        self._budget = 0
        self._entries: list[Entry] = []
        self.dropped = 0
        """Decisions that were to be kept but found the budget spent, or failed to write."""

    @property
    def active(self) -> bool:
        return self._cap > 0

    def activate(self) -> None:
        """Start keeping decisions (as the settings say): something now drains the log."""
        settings = self._settings
        if not settings.enabled:
            return
        self._share = round(settings.sample_percent * 100)  # of _WHOLE: exact, no float drift
        self._always = settings.keep_unusual
        self._cap = self._budget = settings.max_per_second

    def note(self, exchange: Exchange, route: CompiledRoute, forced: bool, key: str | None) -> None:
        """Keep this finished request's decision if it is sampled or unusual, within budget."""
        credit = self._credit + self._share
        if credit >= _WHOLE:
            credit -= _WHOLE
        elif not (
            self._always
            and (
                forced
                or exchange.flag is not None
                or exchange.error is not None
                or exchange.track is not exchange.chosen
                or exchange.shadow is not None
            )
        ):
            self._credit = credit
            return
        self._credit = credit
        if self._budget <= 0:
            self.dropped += 1
            return
        self._budget -= 1
        self._entries.append(
            (
                exchange.nonce,
                exchange.request_id if exchange.client_id else None,
                route,
                exchange.chosen,
                exchange.track,
                exchange.flag,
                forced,
                key,
                exchange.generation,
                exchange.started,
                exchange.error,
                exchange.shadow,
            )
        )

    def drain(self) -> list[Entry]:
        """Everything kept since the last drain; the budget starts again."""
        entries, self._entries = self._entries, []
        self._budget = self._cap
        return entries
