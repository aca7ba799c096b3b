"""The local market operator in operation: rolling-horizon clearings from measured state.

:class:`MarketOperator` clears one horizon at a time with the exact method or LDD-ADMM, when
its :class:`ClearingRule` says: once per day at the day's start (the default), once per day
at a gate before the day (day-ahead), or every hour (or any interval) over a look-ahead
(rolling). A clearing starts from the communities' measured state (battery energy,
shiftable-load progress) — for a day-ahead gate, their plan's state at the delivery start —
and the conventional units' scheduled output just before the delivery start (their first
ramp). Each
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

from ..data.case import Case
from ..data.state import state_series
from ..errors import MosaikBilevelError, OptionsError
from ..methods.exact import Solver
from ..methods.ldd_admm import solve_ldd_admm
from ..methods.registry import CLEARING_METHODS, method_name
from ..results.files import CLEARING_FOLDER_FORMAT, SUMMARY_FILE
from ..results.result import SolveResult
from ..results.run_folder import atomic_folder, write_json
from ..solvers.highs import SolverOptions

log = logging.getLogger(__name__)

#: What runs in the periods of a failed clearing (either method): no new schedule is sent;
#: each community keeps the latest schedule that covers the period (a rolling clearing's
#: earlier look-ahead), else runs on its own forecast with batteries idle, rooftop PV
#: uncurtailed and shiftable loads off; the MV units and plants keep the covering dispatch,
#: else get no set-point, and the upstream grid balances.
FALLBACK = ("no new schedule: the latest schedule covering a period stays in force; without "
            "one, communities run on their own forecast (batteries idle, shiftable loads off), "
            "MV units get no set-point and the upstream grid balances")


@dataclass(frozen=True)
class ClearingRule:
    """When the market operator clears, and which periods.

    Parameters
    ----------
    interval_h
        Time between delivery starts (None: the case's ``horizon_h``, one clearing a day).
    lookahead_h
        Length of each cleared horizon (None: the case's ``horizon_h``). Horizons that would
        run past the case's last period are shortened to it (a shrinking horizon).
    lead_h
        How long before its delivery start a horizon is cleared: a day-ahead gate (12 for
        12:00 the day before a midnight start). The first horizon is cleared at the
        simulation's start. A lead needs horizons that do not overlap (``interval_h ==
        lookahead_h == horizon_h``): the state at the delivery start is then the end state
        of the running schedule, which each community predicts from its own plan.
    """

    interval_h: float | None = None
    lookahead_h: float | None = None
    lead_h: float = 0.0

    @classmethod
    def daily(cls, lead_h: float = 0.0) -> ClearingRule:
        """One horizon a day, cleared at its start or ``lead_h`` before it."""
        return cls(None, None, float(lead_h))

    @classmethod
    def rolling(cls, interval_h: float = 1.0, lookahead_h: float | None = None) -> ClearingRule:
        """Every ``interval_h``, the next ``lookahead_h`` (default the case's horizon)."""
        return cls(float(interval_h), lookahead_h, 0.0)

    def periods(self, case: Case) -> tuple[int, int, int]:
        """(interval, look-ahead, lead) in periods of ``case``; raises ``ValueError``."""
        values = []
        for name, hours in (("interval_h", self.interval_h), ("lookahead_h", self.lookahead_h),
                            ("lead_h", self.lead_h)):
            hours = case.horizon_h if hours is None else float(hours)
            n = hours / case.step_h
            if abs(n - round(n)) > 1e-9 or n < (0 if name == "lead_h" else 1):
                raise ValueError(f"clearing rule: {name} = {hours:g} h is not a whole, "
                                 f"positive number of the case's {case.step_h * 60:g}-minute "
                                 f"periods")
            values.append(round(n))
        interval, lookahead, lead = values
        if lookahead < interval:
            raise ValueError(f"clearing rule: the look-ahead ({lookahead} periods) is shorter "
                             f"than the interval ({interval}): some periods would never be "
                             f"cleared")
        if lead and not interval == lookahead == case.horizon_periods:
            raise ValueError("clearing rule: a gate before the delivery start (lead_h > 0) "
                             "needs one non-overlapping horizon per day (interval_h == "
                             "lookahead_h == the case's horizon_h)")
        if lead >= interval:
            raise ValueError(f"clearing rule: lead_h must be shorter than the interval "
                             f"({interval * case.step_h:g} h)")
        return interval, lookahead, lead


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
        if self.result is None or self.result.admm is None:
            return 0
        return self.result.admm.iterations

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
        (:class:`~mosaik_bilevel.methods.ldd_admm.ADMMOptions`).
    out
        Folder to write every clearing's result to as soon as it is done
        (``out/<start>/``), or None.
    rule
        When to clear (:class:`ClearingRule`; default daily at the day's start).
    start
        The first delivery start (default the case's first period): where the simulation
        starts.
    units_output_before_mw
        The conventional units' output in the period before ``start`` (``{unit: MW}``), for
        the first clearing's ramps: what a resumed simulation recorded (default: the case's
        initial output).
    ac_correction
        Correct each clearing in AC at most this many rounds (``exact``;
        :func:`~mosaik_bilevel.operation.ac_correction.clear_ac_corrected`); 0: off.
    """

    def __init__(self, case: Case, method: str = "exact", pricing: str = "dlmp", *,
                 options: SolverOptions | None = None, admm: dict | None = None,
                 out: str | Path | None = None, rule: ClearingRule | None = None,
                 start=None, units_output_before_mw: dict | None = None,
                 ac_correction: int = 0):
        method = method_name(method, CLEARING_METHODS)
        if ac_correction and method != "exact":
            raise OptionsError("ac_correction", "goes with the exact method in a simulation")
        self.ac_correction = int(ac_correction)
        self.case, self.method, self.pricing = case, method, pricing
        self.options = options or SolverOptions()
        self.admm = dict(admm or {})
        self.out = Path(out) if out is not None else None
        self.rule = rule or ClearingRule()
        self.clearings: list[Clearing] = []
        self._solver = None
        self._units_before = (None if units_output_before_mw is None else
                              pd.Series(units_output_before_mw, dtype=float))
        interval, self._lookahead, lead = self.rule.periods(case)
        timeline = case.timeline
        first = 0 if start is None else timeline.get_indexer([pd.Timestamp(start)])[0]
        if first < 0:
            raise ValueError(f"start {start} is not a period of the case")
        #: clearing time -> delivery start
        self._due = {timeline[max(k - lead, first)]: timeline[k]
                     for k in range(first, len(timeline), interval)}

    def clears_at(self, ts: pd.Timestamp) -> bool:
        """Whether the operator clears a horizon at ``ts``."""
        return pd.Timestamp(ts) in self._due

    def delivery_start(self, ts: pd.Timestamp) -> pd.Timestamp | None:
        """The start of the horizon cleared at ``ts`` (None if none is)."""
        return self._due.get(pd.Timestamp(ts))

    def n_periods(self, start: pd.Timestamp) -> int:
        """Length of the horizon from ``start``: the look-ahead, or up to the case's end."""
        timeline = self.case.timeline
        return min(self._lookahead, len(timeline) - timeline.get_loc(pd.Timestamp(start)))

    def current(self, ts: pd.Timestamp) -> Clearing | None:
        """The latest clearing whose horizon covers ``ts``."""
        for c in reversed(self.clearings):
            if c.covers(ts):
                return c
        return None

    def clear(self, start, initial_energy_mwh: dict[str, dict] | None = None,
              shiftable_done: dict[str, dict] | None = None, *, backend=None) -> Clearing:
        """Clear the horizon from ``start`` given the communities' state at ``start``.

        ``initial_energy_mwh``: battery energy per community and battery;
        ``shiftable_done``: periods each shiftable load has run in the current cycle.
        ``backend`` overrides LDD-ADMM's backend for this clearing (e.g. a relay to the
        community simulators).
        """
        start = pd.Timestamp(start)
        state = {"initial_energy_mwh": state_series(initial_energy_mwh),
                 "shiftable_done": state_series(shiftable_done),
                 "p_init_mw": self._units_output_before(start),
                 "n_periods": self.n_periods(start)}
        t0 = time.perf_counter()
        try:
            result = self._solve(start, state, backend)
        except MosaikBilevelError as err:  # a failed clearing is reported, not raised
            clearing = Clearing(start, "error", f"{type(err).__name__}: {err}",
                                getattr(err, "result", None), time.perf_counter() - t0)
        else:
            clearing = self._lookups(start, result, time.perf_counter() - t0)
        if not clearing.ok:
            log.warning("clearing from %s failed (%s): %s; %s", start, clearing.status,
                        clearing.message, FALLBACK)
        self.clearings.append(clearing)
        if self.out is not None:
            self._write(clearing)
        return clearing

    def _write(self, clearing: Clearing) -> None:
        """The clearing's folder, all of it or nothing; a failed clearing with its status,
        reason and the fallback that ran instead."""
        folder = self.out / clearing.start.strftime(CLEARING_FOLDER_FORMAT)
        with atomic_folder(folder) as tmp:
            if clearing.result is not None:
                clearing.result.write(tmp)
                summary = clearing.result.summary()
            else:
                summary = {"case": self.case.name, "method": self.method,
                           "pricing": self.pricing, "start": clearing.start.isoformat(),
                           "times_s": {"total": clearing.wall_s}}
            summary.update(status=str(clearing.status), message=clearing.message,
                           scheduled=clearing.ok,
                           fallback=None if clearing.ok else FALLBACK)
            write_json(tmp / SUMMARY_FILE, summary)

    # -- internals --------------------------------------------------------------------------
    def _solve(self, start, state: dict, backend=None) -> SolveResult:
        if self.method == "exact":
            if self._solver is None:
                self._solver = Solver(self.case, "exact", self.pricing, options=self.options)
            if self.ac_correction:  # imported here: it loads pandapower
                from .ac_correction import clear_ac_corrected

                return clear_ac_corrected(
                    self.case, lambda bounds: self._solver.solve(start, **state,
                                                                 ac_bounds=bounds),
                    max_rounds=self.ac_correction, options=self.options)
            return self._solver.solve(start, **state)
        admm = dict(self.admm) if backend is None else {**self.admm, "backend": backend}
        return solve_ldd_admm(self.case, self.pricing, start=start, solver_options=self.options,
                              **state, **admm)

    def _units_output_before(self, start: pd.Timestamp) -> pd.Series | None:
        """The conventional units' scheduled output in the period before ``start``."""
        before = start - pd.Timedelta(hours=self.case.step_h)
        for c in reversed(self.clearings):
            if c.ok and c.p_gen is not None and before in c.p_gen.index:
                return c.p_gen.loc[before]
        if self._units_before is not None and not self.clearings:
            return self._units_before
        return None

    def _lookups(self, start, result: SolveResult, wall: float) -> Clearing:
        if result.exchange_p_mw is None or not result.status.has_dispatch:
            return Clearing(start, result.status, result.message, result, wall)
        clearing = Clearing(start, result.status, result.message, result, wall,
                            schedules=result.exchange_p_mw, prices=result.price_per_mwh,
                            dlmp=result.dlmp_per_mwh)
        mv = result.mv
        if mv is not None:
            if len(mv.p_gen_mw.columns):
                clearing.p_gen, clearing.q_gen = mv.p_gen_mw, mv.q_gen_mvar
            if len(mv.p_pv_mw.columns):
                clearing.p_pv_plant = mv.p_pv_mw
            clearing.p_sub = mv.p_sub_mw
        return clearing
