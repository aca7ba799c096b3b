"""Where the communities run: one interface, three backends.

- :class:`SequentialBackend`: every community in this process, one after the other.
- :class:`ProcessBackend`: a pool of persistent worker processes (Python's
  ``multiprocessing``); each worker owns some communities for the whole run, so their models
  are built once and only updated between iterations.
- :class:`DaskBackend`: Dask distributed actors, one per community, on a local cluster or
  on any running scheduler (``address=``): communities spread over machines. Optional extra
  ``pip install mosaik-bilevel[distributed]``.

A backend only carries :class:`~mosaik_bilevel.ldd_admm.community.CommunityAgent` method
calls; every argument and reply is a plain value. ``on_message`` (process backend) sees each
message that crosses a process boundary, so a test can check what leaves a community.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..case import Community, CommunitySettings
from ..highs import SolverOptions
from .community import CommunityAgent
from .step import PenaltySpec

#: The only methods a backend forwards to a community.
PROTOCOL = ("open", "propose", "report")


@dataclass(frozen=True)
class AgentSpec:
    """Everything needed to create one community agent where it will live."""

    community: Community
    settings: CommunitySettings
    pricing: str
    tariff: pd.DataFrame | None
    options: SolverOptions
    penalty: PenaltySpec

    @property
    def name(self) -> str:
        return self.community.name

    def build(self) -> CommunityAgent:
        return CommunityAgent(self.community, self.settings, pricing=self.pricing,
                              tariff=self.tariff, options=self.options, penalty=self.penalty)


class Backend(ABC):
    """Runs community agents and calls their protocol methods, in parallel where it can."""

    workers: int = 1

    @abstractmethod
    def start(self, specs: list[AgentSpec]) -> None:
        """Create the agents (once per run)."""

    @abstractmethod
    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        """Call ``method(*args)`` on every named agent; replies by name."""

    def close(self) -> None:
        """Stop the agents (nothing to stop by default)."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check(method: str) -> None:
    if method not in PROTOCOL:
        raise ValueError(f"{method!r} is not part of the community protocol {PROTOCOL}")


class SequentialBackend(Backend):
    """Every community in this process, one after the other."""

    def start(self, specs: list[AgentSpec]) -> None:
        self._agents = {s.name: s.build() for s in specs}

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        _check(method)
        return {name: getattr(self._agents[name], method)(*args)
                for name, args in requests.items()}


def _worker(conn, specs: list[AgentSpec]) -> None:  # pragma: no cover - runs in a child
    agents = {s.name: s.build() for s in specs}
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            break
        method, requests = message
        try:
            replies, seconds = {}, {}
            for name, args in requests.items():
                t0 = time.perf_counter()
                replies[name] = getattr(agents[name], method)(*args)
                seconds[name] = time.perf_counter() - t0
            conn.send(("ok", replies, seconds))
        except Exception as exc:  # reported to the caller, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}", {}))
    conn.close()


class ProcessBackend(Backend):
    """A pool of persistent worker processes; communities are dealt out round-robin.

    Parameters
    ----------
    workers
        Number of processes.
    on_message
        Called as ``on_message(direction, payload)`` for every message to ("send") and from
        ("receive") a worker, once the agents are created.
    """

    def __init__(self, workers: int = 2,
                 on_message: Callable[[str, Any], None] | None = None):
        self.workers = int(workers)
        self._on_message = on_message
        self._procs: list = []
        #: Seconds each community's calls took inside its worker (for load balance).
        self.busy_s: dict[str, float] = {}

    def start(self, specs: list[AgentSpec]) -> None:
        ctx = mp.get_context("spawn")
        self.busy_s = {}
        n = max(1, min(self.workers, len(specs)))
        self._home: dict[str, int] = {}
        self._conns, self._procs = [], []
        for w in range(n):
            mine = specs[w::n]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, mine), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)
            for s in mine:
                self._home[s.name] = w
        for conn in self._conns:
            if conn.recv() != "ready":
                raise RuntimeError("a community worker failed to start")

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        _check(method)
        batches: dict[int, dict] = {}
        for name, args in requests.items():
            batches.setdefault(self._home[name], {})[name] = args
        for w, batch in batches.items():
            if self._on_message:
                self._on_message("send", (method, batch))
            self._conns[w].send((method, batch))
        replies: dict[str, Any] = {}
        for w in batches:
            status, payload, seconds = self._conns[w].recv()
            for name, dt in seconds.items():
                self.busy_s[name] = self.busy_s.get(name, 0.0) + dt
            if self._on_message:
                self._on_message("receive", payload)
            if status != "ok":
                raise RuntimeError(f"community worker {w}: {payload}")
            replies.update(payload)
        return replies

    def close(self) -> None:
        for conn in getattr(self, "_conns", []):
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        self._procs = []


class DaskBackend(Backend):
    """Dask distributed actors, one per community.

    Parameters
    ----------
    workers
        Workers of the local cluster started when no ``address`` is given.
    address
        A running Dask scheduler to use instead (communities spread over its machines).
    """

    def __init__(self, workers: int = 2, address: str | None = None):
        self.workers = int(workers)
        self._address = address
        self._client = self._cluster = None

    def start(self, specs: list[AgentSpec]) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ImportError("the Dask backend needs the optional extra: "
                              "pip install mosaik-bilevel[distributed]") from None
        if self._address is None:
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            self._client = Client(self._cluster)
        else:
            self._client = Client(self._address)
        workers = list(self._client.scheduler_info()["workers"])
        futures = {s.name: self._client.submit(
            CommunityAgent, s.community, s.settings, pricing=s.pricing, tariff=s.tariff,
            options=s.options, penalty=s.penalty, actor=True,
            workers=[workers[i % len(workers)]], key=f"community-{s.name}")
            for i, s in enumerate(specs)}
        self._actors = {name: f.result() for name, f in futures.items()}

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        _check(method)
        pending = {name: getattr(self._actors[name], method)(*args)
                   for name, args in requests.items()}
        return {name: future.result() for name, future in pending.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


BACKENDS: tuple[str, ...] = ("sequential", "process", "dask")


def backend(name: str, workers: int = 1, **kwargs) -> Backend:
    """A backend by name: ``sequential``, ``process`` or ``dask``."""
    if name == "sequential":
        return SequentialBackend()
    if name == "process":
        return ProcessBackend(workers, **kwargs)
    if name == "dask":
        return DaskBackend(workers, **kwargs)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
