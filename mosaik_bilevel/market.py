"""The local market operator in operation: rolling-horizon clearings from measured state.

:class:`MarketOperator` clears one horizon at a time with the exact method or LDD-ADMM,
starting from the state measured when it clears: the communities' battery energy, and the
conventional units' output at the end of the previous horizon (their first ramp). Each
:class:`Clearing` keeps, per period, what the operator sends: every community's exchange
schedule and settlement price, the follower's dispatch and the DLMPs. A failed clearing is a
reported outcome (its status and message; no schedule), never an exception; every finished
clearing can be written to disk as soon as it is done.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .case import Case
from .errors import MosaikBilevelError
from .highs import SolverOptions
from .results import SolveResult

log = logging.getLogger(__name__)


@dataclass
class Clearing:
    """One clearing: the result and per-period lookups of what is sent."""

    start: pd.Timestamp
    status: str
    message: str = ""
    result: SolveResult | None = None
    wall_s: float = math.nan
    schedules: pd.DataFrame | None = None  # time × community, MW
    prices: pd.DataFrame | None = None  # time × community, per MWh
    dlmp: pd.DataFrame | None = None  # time × MV bus, per MWh
    p_gen: pd.DataFrame | None = None  # time × unit, MW
    q_gen: pd.DataFrame | None = None
    p_pv_plant: pd.DataFrame | None = None
    p_sub: pd.Series | None = None

    @property
    def ok(self) -> bool:
        return self.schedules is not None

    @property
    def iterations(self) -> int:
        if self.result is None:
            return 0
        return int(self.result.extra.get("iterations", 0) or 0)

    def covers(self, ts: pd.Timestamp) -> bool:
        return self.ok and ts in self.schedules.index


class MarketOperator:
    """Clears horizons of a case from measured state (see the module docstring).

    Parameters
    ----------
    case
        The case (the operator holds its MV side; ``exact`` also needs the communities'
        data, LDD-ADMM hands each community's data to its own agent only).
    method
        ``exact`` or ``ldd_admm``.
    pricing
        ``dlmp`` or ``tariff``.
    options
        HiGHS options.
    admm
        Keyword arguments of LDD-ADMM: ``backend``, ``workers``, ``options``
        (:class:`~mosaik_bilevel.ldd_admm.ADMMOptions`).
    out
        Folder to write every clearing's result to as soon as it is done
        (``out/<start>/``), or None.
    """

    def __init__(self, case: Case, method: str = "exact", pricing: str = "dlmp", *,
                 options: SolverOptions | None = None, admm: dict | None = None,
                 out: str | Path | None = None):
        method = method.replace("-", "_")
        if method not in ("exact", "ldd_admm"):
            raise ValueError(f"the market operator clears with 'exact' or 'ldd_admm', not "
                             f"{method!r}")
        self.case, self.method, self.pricing = case, method, pricing
        self.options = options or SolverOptions()
        self.admm = dict(admm or {})
        self.out = Path(out) if out is not None else None
        self.clearings: list[Clearing] = []
        self._solver = None
        self._starts = set(case.days)

    def clears_at(self, ts: pd.Timestamp) -> bool:
        """Whether a horizon starts at ``ts`` (one per ``horizon_h``, within the case)."""
        return pd.Timestamp(ts) in self._starts

    def current(self, ts: pd.Timestamp) -> Clearing | None:
        """The latest clearing whose horizon covers ``ts``."""
        for c in reversed(self.clearings):
            if c.covers(ts):
                return c
        return None

    def clear(self, start, initial_energy_mwh: dict[str, dict] | None = None, *,
              backend=None) -> Clearing:
        """Clear the horizon from ``start`` given the measured battery energy per community.

        ``backend`` overrides LDD-ADMM's backend for this clearing (e.g. a relay to the
        community simulators).
        """
        start = pd.Timestamp(start)
        initial = None
        if initial_energy_mwh:
            initial = {name: pd.Series(values, dtype=float)
                       for name, values in initial_energy_mwh.items() if values}
        p_init = self._last_units_output()
        t0 = time.perf_counter()
        try:
            result = self._solve(start, initial, p_init, backend)
        except MosaikBilevelError as err:  # a failed clearing is reported, not raised
            clearing = Clearing(start, "error", f"{type(err).__name__}: {err}",
                                getattr(err, "result", None), time.perf_counter() - t0)
            log.warning("clearing from %s failed: %s", start, clearing.message)
            self.clearings.append(clearing)
            return clearing
        clearing = self._lookups(start, result, time.perf_counter() - t0)
        self.clearings.append(clearing)
        if self.out is not None:
            folder = self.out / start.strftime("%Y-%m-%dT%H%M")
            if result is not None:
                result.write(folder)
        return clearing

    # -- internals --------------------------------------------------------------------------
    def _solve(self, start, initial, p_init, backend=None) -> SolveResult:
        if self.method == "exact":
            from .solve import Solver

            if self._solver is None:
                self._solver = Solver(self.case, "exact", self.pricing, options=self.options)
            return self._solver.solve(start, initial_energy_mwh=initial, p_init_mw=p_init)
        from .ldd_admm import solve_ldd_admm

        admm = dict(self.admm) if backend is None else {**self.admm, "backend": backend}
        return solve_ldd_admm(self.case, self.pricing, start=start, solver_options=self.options,
                              initial_energy_mwh=initial, p_init_mw=p_init, **admm)

    def _last_units_output(self) -> pd.Series | None:
        """The conventional units' output in the last period before the next horizon."""
        for c in reversed(self.clearings):
            if c.ok and c.p_gen is not None and len(c.p_gen):
                return c.p_gen.iloc[-1]
        return None

    def _lookups(self, start, result: SolveResult, wall: float) -> Clearing:
        status = result.status
        if result.exchanges is None or status not in ("optimal", "not_converged",
                                                      "time_limit", "big_m_unverified"):
            return Clearing(start, status, result.message, result, wall)
        ex = result.exchanges
        clearing = Clearing(
            start, status, result.message, result, wall,
            schedules=ex.pivot(index="time", columns="community", values="p_mw"),
            prices=ex.pivot(index="time", columns="community", values="price_per_mwh"))
        if result.dlmp is not None:
            clearing.dlmp = result.dlmp.pivot(index="time", columns="bus",
                                              values="dlmp_per_mwh")
        d = result.mv_dispatch
        if d is not None:
            conv = d[d.kind == "conventional"]
            if len(conv):
                clearing.p_gen = conv.pivot(index="time", columns="unit", values="p_mw")
                clearing.q_gen = conv.pivot(index="time", columns="unit", values="q_mvar")
            pv = d[d.kind == "pv"]
            if len(pv):
                clearing.p_pv_plant = pv.pivot(index="time", columns="unit", values="p_mw")
            clearing.p_sub = d[d.kind == "upstream"].set_index("time")["p_mw"]
        return clearing

