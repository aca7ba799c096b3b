"""Where the communities run: one interface, three backends.

- :class:`SequentialBackend`: every community in this process, one after the other.
- :class:`ProcessBackend`: a pool of persistent worker processes (Python's
  ``multiprocessing``); each worker owns some communities for the whole run, so their models
  are built once and only updated between iterations.
- :class:`DaskBackend`: Dask distributed actors, one per community, on a local cluster or
  on any running scheduler (``address=``): communities spread over machines. Optional extra
  ``pip install mosaik-bilevel[distributed]``.

A backend only carries :class:`~mosaik_bilevel.methods.ldd_admm.agent.CommunityAgent` method
calls; every argument and reply is a plain value. ``on_message`` (process backend) sees each
message that crosses a process boundary, so a test can check what leaves a community.
"""

from __future__ import annotations

import multiprocessing as mp
import numbers
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import pandas as pd

from ...data.case import Community, CommunitySettings
from ...errors import OptionsError
from ...solvers.highs import SolverOptions
from .agent import CommunityAgent
from .coupling import VoltageCoupling
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
    coupling: VoltageCoupling | None = None  # the MV voltage's consensus (fixed model)

    @property
    def name(self) -> str:
        return self.community.name

    def build(self) -> CommunityAgent:
        return CommunityAgent(self.community, self.settings, pricing=self.pricing,
                              tariff=self.tariff, options=self.options, penalty=self.penalty,
                              coupling=self.coupling)


class Backend(ABC):
    """Runs community agents and calls their protocol methods, in parallel where it can."""

    workers: int = 1
    #: The agents run in processes of their own: their HiGHS is pinned to one thread so that
    #: one worker and several compare like for like.
    agents_single_threaded: bool = True

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


def check_method(method: str) -> None:
    """Raise for a method that is not part of the community protocol."""
    if method not in PROTOCOL:
        raise ValueError(f"{method!r} is not part of the community protocol {PROTOCOL}")


class SequentialBackend(Backend):
    """Every community in this process, one after the other."""

    agents_single_threaded = False

    def start(self, specs: list[AgentSpec]) -> None:
        self._agents = {s.name: s.build() for s in specs}

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        check_method(method)
        return {name: getattr(self._agents[name], method)(*args)
                for name, args in requests.items()}


def _worker(conn) -> None:  # pragma: no cover - runs in a child
    try:
        agents = {s.name: s.build() for s in conn.recv()}
    except Exception as exc:  # reported to the caller, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}", {}))
        return
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            break
        method, requests = message
        try:
            replies, seconds = {}, {}
            for key, args in requests.items():
                t0 = time.perf_counter()
                if method == "adopt":  # a community moved here: create it, open its horizon
                    spec, open_args = args
                    agents[key] = spec.build()
                    replies[key] = agents[key].open(*open_args) if open_args else None
                elif method == "drop":
                    replies[key] = agents.pop(key, None) is not None
                else:
                    replies[key] = getattr(agents[key], method)(*args)
                seconds[key] = time.perf_counter() - t0
            conn.send(("ok", replies, seconds))
        except Exception as exc:  # reported to the caller, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}", {}))
    conn.close()


def lpt_assignment(cost: dict[str, float], workers: int,
                   fixed: dict[str, int] | None = None) -> list[list[str]]:
    """Longest processing time first: each community to the least loaded worker.

    ``fixed``: communities that stay on the given worker (placed first).
    """
    bins: list[list[str]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for name, w in (fixed or {}).items():
        bins[w].append(name)
        load[w] += cost[name]
    for name in sorted((n for n in cost if n not in (fixed or {})),
                       key=lambda n: (-cost[n], n)):
        w = min(range(workers), key=lambda k: (load[k], k))
        bins[w].append(name)
        load[w] += cost[name]
    return bins


def bins_to_workers(bins: list[list[str]], cost: dict[str, float], home: dict[str, int],
                    pinned: dict[str, int]) -> list[tuple[int, list[str]]]:
    """Which worker takes which bin of :func:`lpt_assignment`: as few moves as possible.

    A bin holding pinned communities stays on their worker (``lpt_assignment`` put it at
    that index); the others go, heaviest first, to the free worker already holding most of
    their load.
    """
    order, free = [], set(range(len(bins)))
    for w, b in enumerate(bins):
        if any(name in pinned for name in b):
            order.append((w, b))
            free.discard(w)
    for b in sorted((b for w, b in enumerate(bins) if w in free),
                    key=lambda b: -sum(cost[m] for m in b)):
        w = max(free, key=lambda k: (sum(cost[m] for m in b if home[m] == k), -k))
        free.discard(w)
        order.append((w, b))
    return order


class ProcessBackend(Backend):
    """A pool of persistent worker processes, each owning some communities.

    Communities are dealt out round-robin, then balanced: the time each community's steps
    take is measured in its worker, and when moving communities (longest processing time
    first) would shorten the slowest worker's share by ``balance_gain`` or more, they move.
    A moved community is created anew in its new worker and its horizon opened there; its
    old agent stays, idle, until the horizon's :meth:`report` (which joins the two). A
    community moves at most once per horizon: a new agent starts cold (its step re-learns
    which binaries it needs), so its first steps are slow and would otherwise trigger moves
    back and forth (seen on the paper case at 15 min: communities moved three times in 40
    iterations, a step taking 100 s after each move).

    Parameters
    ----------
    workers
        Number of processes.
    on_message
        Called as ``on_message(direction, payload)`` for every protocol message to ("send")
        and from ("receive") a worker, once the agents are created.
    balance
        Move communities between workers to balance the load.
    """

    def __init__(self, workers: int = 2,
                 on_message: Callable[[str, Any], None] | None = None, *,
                 balance: bool = True, balance_gain: float = 0.1, balance_every: int = 3):
        self.workers = int(workers)
        self._on_message = on_message
        self._balance = balance
        self._balance_gain = balance_gain
        self._balance_every = balance_every
        self._procs: list = []
        #: Seconds each community's calls took inside its worker.
        self.busy_s: dict[str, float] = {}
        #: Communities moved to balance the load, as (round, name, from, to).
        self.moves: list[tuple[int, str, int, int]] = []

    def start(self, specs: list[AgentSpec]) -> None:
        ctx = mp.get_context("spawn")
        self.busy_s, self.moves = {}, []
        self._specs = {s.name: s for s in specs}
        n = max(1, min(self.workers, len(specs)))
        self._home: dict[str, int] = {}
        self._key: dict[str, str] = {}  # the live agent's key in its worker
        self._retired: dict[str, list[tuple[int, str]]] = {}  # earlier agents this horizon
        self._open_args: dict[str, tuple] = {}
        self._recent: dict[str, float] = {}  # smoothed seconds per step
        self._rounds = self._last_balance = 0
        self._conns, self._procs = [], []
        shares = [specs[w::n] for w in range(n)]
        for w, mine in enumerate(shares):
            parent, child = ctx.Pipe()
            # the communities' data go over the pipe, not as the process's arguments: those
            # are written before the worker runs, and a worker that dies first (a script
            # without a main guard) would leave that write, and us, waiting for ever
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            child.close()  # the worker's end: a worker that dies then reads as end of file
            self._conns.append(parent)
            self._procs.append(proc)
            for s in mine:
                self._home[s.name] = w
                self._key[s.name] = s.name
        for w, mine in enumerate(shares):
            self._send(w, mine, starting=True)
        for w in range(n):
            reply = self._receive(w, starting=True)
            if reply != "ready":
                raise RuntimeError(f"community worker {w} failed to start: {reply[1]}")

    def _send(self, w: int, message, starting: bool = False) -> None:
        try:
            self._conns[w].send(message)
        except OSError:  # BrokenPipeError: the worker is gone
            self._gone(w, starting)

    def _receive(self, w: int, starting: bool = False):
        """The next message from worker ``w``; raises if the worker is gone."""
        conn, proc = self._conns[w], self._procs[w]
        try:
            while not conn.poll(1.0):
                if not proc.is_alive() and not conn.poll(0):
                    self._gone(w, starting)
            return conn.recv()
        except (EOFError, OSError):
            self._gone(w, starting)

    def _gone(self, w: int, starting: bool) -> NoReturn:
        proc = self._procs[w]
        proc.join(timeout=5)
        hint = (" Python starts each worker by importing the main module (spawn): a script "
                "using backend='process' must run under `if __name__ == '__main__':`"
                if starting else "")
        raise RuntimeError(f"community worker {w} exited (exit code {proc.exitcode}) "
                           f"{'before it was ready' if starting else 'during a step'}; its "
                           f"error, if any, is on standard error.{hint}")

    def _exchange(self, method: str, batches: dict[int, dict], watch: bool = True):
        """Send one batch per worker and collect the replies (by key) and seconds."""
        for w, batch in batches.items():
            if watch and self._on_message:
                self._on_message("send", (method, batch))
            self._send(w, (method, batch))
        replies: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        for w in batches:
            status, payload, secs = self._receive(w)
            if watch and self._on_message:
                self._on_message("receive", payload)
            if status != "ok":
                raise RuntimeError(f"community worker {w}: {payload}")
            replies.update(payload)
            seconds.update(secs)
        return replies, seconds

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        check_method(method)
        if method == "open":
            self._drop_retired()
            self._open_args.update(requests)
        batches: dict[int, dict] = {}
        for name, args in requests.items():
            batches.setdefault(self._home[name], {})[self._key[name]] = args
        if method == "report":  # idle agents of moved communities report their share too
            for name in requests:
                for w, key in self._retired.get(name, []):
                    batches.setdefault(w, {})[key] = ()
        by_key, seconds = self._exchange(method, batches)
        names = {self._key[n]: n for n in requests}
        for key, dt in seconds.items():
            name = names.get(key, key.split("@")[0])
            self.busy_s[name] = self.busy_s.get(name, 0.0) + dt
        replies = {name: by_key[self._key[name]] for name in requests}
        if method == "report":
            for name in requests:
                parts = [by_key[key] for _w, key in self._retired.get(name, [])]
                if parts:
                    replies[name] = _join_reports([*parts, replies[name]])
        if method == "propose":
            self._rounds += 1
            for key, dt in seconds.items():
                name = names[key]
                old = self._recent.get(name)
                self._recent[name] = dt if old is None else 0.5 * old + 0.5 * dt
            if self._balance and len(self._conns) > 1:
                self._rebalance()
        return replies

    def _rebalance(self) -> None:
        if self._rounds - self._last_balance < self._balance_every:
            return
        cost = self._recent
        n = len(self._conns)
        load = [0.0] * n
        for name, c in cost.items():
            load[self._home[name]] += c
        pinned = {name: self._home[name] for name in self._retired if name in cost}
        bins = lpt_assignment(cost, n, fixed=pinned)
        if max(sum(cost[m] for m in b) for b in bins) > (1 - self._balance_gain) * max(load):
            return
        order = bins_to_workers(bins, cost, self._home, pinned)
        adopt: dict[int, dict] = {}
        for w, b in order:
            for name in b:
                if self._home[name] != w:
                    old = self._home[name]
                    self._retired.setdefault(name, []).append((old, self._key[name]))
                    key = f"{name}@{len(self._retired[name])}"
                    adopt.setdefault(w, {})[key] = (self._specs[name],
                                                    self._open_args.get(name, ()))
                    self._home[name], self._key[name] = w, key
                    self.moves.append((self._rounds, name, old, w))
        if adopt:
            self._exchange("adopt", adopt, watch=False)
            self._last_balance = self._rounds

    def _drop_retired(self) -> None:
        drop: dict[int, dict] = {}
        for items in self._retired.values():
            for w, key in items:
                drop.setdefault(w, {})[key] = ()
        if drop:
            self._exchange("drop", drop, watch=False)
        self._retired = {}

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


def _join_reports(parts: list[dict]) -> dict:
    """One community's reports from its successive agents, in order (lists concatenated)."""
    out = dict(parts[-1])
    for key, value in out.items():
        if isinstance(value, list):
            out[key] = [item for part in parts for item in part[key]]
    return out


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
            options=s.options, penalty=s.penalty, coupling=s.coupling, actor=True,
            workers=[workers[i % len(workers)]], key=f"community-{s.name}")
            for i, s in enumerate(specs)}
        self._actors = {name: f.result() for name, f in futures.items()}

    def call(self, method: str, requests: dict[str, tuple]) -> dict[str, Any]:
        check_method(method)
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


def default_backend(workers: int) -> str:
    """The backend for a number of workers: ``sequential`` for one, ``process`` for more."""
    return "sequential" if workers <= 1 else "process"


def backend(name: str, workers: int = 1, **kwargs) -> Backend:
    """A backend by name: ``sequential``, ``process`` or ``dask``, with ``workers`` >= 1."""
    if not isinstance(workers, numbers.Integral) or isinstance(workers, bool) or workers < 1:
        raise OptionsError("workers", f"must be a whole number >= 1, got {workers!r}")
    if name == "sequential":
        return SequentialBackend()
    if name == "process":
        return ProcessBackend(workers, **kwargs)
    if name == "dask":
        return DaskBackend(workers, **kwargs)
    raise OptionsError("backend", f"unknown backend {name!r}; choose one of {BACKENDS}")
