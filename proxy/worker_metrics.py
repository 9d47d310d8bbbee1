"""``--workers N``: one ``/metrics`` for the whole process group, whichever worker answers.

The workers share one port, so a scrape reaches one of them. Each worker keeps a snapshot of
its own exposition in a directory the supervisor made for this run
(``<dir>/w<index>-<pid>.prom``): rewritten every second by a background task, and at each
scrape it answers. A scrape reads every snapshot and answers with:

- **counters and histograms summed** over every worker that served in this run. A worker that
  died keeps its last snapshot, so a sum never goes back when it is replaced (its last second
  of counts may be missing, as they would be from a process that died anyway);
- **gauges of one process's state** (the routing generation it applied, how stale that is,
  whether it reaches Redis, an upstream its pool ejected, its sample-ratio check, its
  ``splitgate_worker_info``) once per live worker, with a ``worker`` label;
- **gauges that count** (flush failures, dropped requests, refused documents) summed like the
  counters, and the routing document's weights (the same in every worker) once.

Nothing here runs on the request path; a snapshot costs one exposition a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

log = logging.getLogger("splitgate.proxy")

SNAPSHOT_S = 1.0
SUMMED_GAUGES = frozenset(
    {
        "splitgate_metrics_flush_failures",
        "splitgate_metrics_dropped_requests",
        "splitgate_decisions_dropped",
        "splitgate_routing_documents_rejected",
    }
)
SHARED_GAUGES = frozenset({"splitgate_track_weight"})
"""The same in every worker (the routing document's): answered once."""


class WorkerShare:
    """This worker's part of the group's ``/metrics`` (see the module)."""

    def __init__(self, directory: str, index: int, registry: CollectorRegistry) -> None:
        self._directory = Path(directory)
        self._index = index
        self._registry = registry
        self._path = self._directory / f"w{index}-{os.getpid()}.prom"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.write()
        self._task = asyncio.get_running_loop().create_task(self._keep_writing())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.write()  # the last figures stay for the sums

    async def _keep_writing(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_S)
            try:
                self.write()
            except OSError as exc:
                log.warning("metrics snapshot not written: %s", exc)

    def write(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        temporary.write_bytes(generate_latest(self._registry))
        os.replace(temporary, self._path)

    def exposition(self) -> bytes:
        """The group's figures, this worker's own as of now."""
        self.write()
        snapshots = []
        for path in sorted(self._directory.glob("w*-*.prom")):
            with contextlib.suppress(OSError):  # a worker replacing its file meanwhile
                snapshots.append((path.stem, path.read_text(encoding="utf-8")))
        registry = CollectorRegistry()
        registry.register(_Merged(list(merge(snapshots))))
        return generate_latest(registry)


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(snapshots: Iterable[tuple[str, str]]) -> Iterator[Metric]:
    """The families of every snapshot (``("w<index>-<pid>", text)``) merged as the module
    says; a snapshot of a process that is gone counts in the sums of counters alone."""
    families: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for stem, text in snapshots:
        worker, _, pid = stem[1:].partition("-")
        live = _alive(int(pid)) if pid.isdigit() else False
        for family in text_string_to_metric_families(text):
            kind = family.type
            summed = kind in ("counter", "histogram", "summary") or family.name in SUMMED_GAUGES
            if not summed and not live:
                continue
            families.setdefault(
                family.name, Metric(family.name, family.documentation, kind, family.unit)
            )
            totals = sums.setdefault(family.name, {})
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a per-process start time: no meaning once summed
                labels = dict(sample.labels)
                if not summed and family.name not in SHARED_GAUGES:
                    labels.setdefault("worker", worker)
                key = (sample.name, tuple(sorted(labels.items())))
                if summed:
                    totals[key] = totals.get(key, 0.0) + sample.value
                else:
                    totals[key] = sample.value
    for name, family in families.items():
        for (sample_name, label_pairs), value in sums[name].items():
            family.samples.append(Sample(sample_name, dict(label_pairs), value))
        yield family


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
