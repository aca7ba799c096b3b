"""The exact method and the single-level reference points on a persistent :class:`Solver`.

A :class:`Solver` keeps its HiGHS model between horizons: the first solve builds the model
and hands it over; a later horizon (the next day) rebuilds the arrays and pushes only the
changed bounds, costs and coefficients to HiGHS.

For ``exact`` every solve is followed by

1. *polishing*: the integers are fixed at their values and the LP re-solved, so that
   complementarity holds exactly rather than to HiGHS's integrality tolerance;
2. *dual big-M checks*: no dual at its bound, and (``dlmp``) the price the model chose equals
   the best price for the leader over the follower's whole dual-optimal face at the found
   exchanges (:func:`~mosaik_bilevel.methods.certificate.best_price_for_leader`); if not, the bounds
   concerned are enlarged tenfold and the problem re-solved, at most ``max_enlargements``
   times, every step logged in ``big_m_log``;
3. *the certificate*: the follower LP alone at the found exchanges has the same cost
   (relative ``certificate_tolerance``); a failure raises
   :class:`~mosaik_bilevel.errors.CertificateError`.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from ..cases import as_case
from ..data.case import Case
from ..errors import CertificateError
from ..model.big_m import SAFETY
from ..model.formulation import Formulation, build_formulation
from ..results.result import SolveResult, read_tables
from ..solvers.highs import HighsSolver, SolverOptions, SolverResult, SolveStatus, solve_model
from ..solvers.lazy import LazyBinaries
from .certificate import FollowerOracle, best_price_for_leader, certify

log = logging.getLogger(__name__)

#: A dual is "at its bound" when it reaches this fraction of its big-M.
AT_BOUND = 1.0 - 1e-6


class Solver:
    """Solves one case with one method, horizon after horizon, on persistent models.

    Parameters
    ----------
    case
        The case (or a built-in name / folder).
    method
        ``"exact"``, ``"hpr"``, ``"integrated"`` or ``"standalone"``.
    pricing
        ``"dlmp"`` or ``"tariff"`` (``hpr`` always settles at the tariff).
    options
        HiGHS options (MIP gap, time limit, threads).
    dual_big_m_safety
        Safety factor γ of the dual big-Ms (see :mod:`mosaik_bilevel.model.big_m`).
    max_enlargements
        How often the dual big-Ms may be enlarged tenfold before the solve is reported as
        unverified.
    certificate_tolerance
        Relative tolerance of the follower-cost certificate.
    tighten
        Drop complementarity rows that can never bind.
    lazy
        Solve with battery modes, shiftable-load states and complementarity binaries relaxed,
        restoring only those a solution needs (:mod:`mosaik_bilevel.solvers.lazy`); exact either
        way.
    """

    def __init__(self, case: Case | str, method: str = "exact", pricing: str = "dlmp", *,
                 options: SolverOptions | None = None, dual_big_m_safety: float = SAFETY,
                 max_enlargements: int = 3, certificate_tolerance: float = 1e-6,
                 tighten: bool = True, lazy: bool = True):
        self.case = as_case(case)
        self.method = method
        self.pricing = "tariff" if method == "hpr" else pricing
        self.options = options or SolverOptions()
        self.dual_big_m_safety = dual_big_m_safety
        self.max_enlargements = max_enlargements
        self.certificate_tolerance = certificate_tolerance
        self.tighten = tighten
        self.lazy = lazy
        self._highs: HighsSolver | None = None
        self._oracle = FollowerOracle(self.options)
        self.formulation: Formulation | None = None
        self.last_x: np.ndarray | None = None

    # -- building --------------------------------------------------------------------------
    def build(self, start=None, *, n_periods: int | None = None, initial_energy_mwh=None,
              shiftable_done=None, p_init_mw=None) -> Formulation:
        """Build the model of one horizon (does not hand it to HiGHS).

        ``n_periods`` (default the case's horizon) may be any length, ``start`` any period.
        """
        periods = self.case.periods(start, n_periods)
        return build_formulation(
            self.case, periods, self.method, self.pricing,
            dual_big_m_safety=self.dual_big_m_safety, tighten=self.tighten,
            initial_energy_mwh=initial_energy_mwh, shiftable_done=shiftable_done,
            p_init_mw=p_init_mw)

    def prepare(self, start=None, **state) -> dict[str, float]:
        """Build one horizon's model and hand it to HiGHS (or update the one it holds).

        Returns the seconds spent building and handing over.
        """
        t0 = time.perf_counter()
        form = self.build(start, **state)
        _ = form.model.arrays  # assemble the sparse arrays (part of building)
        t1 = time.perf_counter()
        first = self._highs is None
        if first:
            self._highs = HighsSolver(self.options)
            handover = self._highs.load(form.model)
        else:
            handover = self._highs.update(form.model)
        self.formulation = form
        return {"build": t1 - t0, "handover": handover, "first_model": float(first)}

    # -- solving ---------------------------------------------------------------------------
    def solve(self, start=None, *, n_periods: int | None = None, initial_energy_mwh=None,
              shiftable_done=None, p_init_mw=None) -> SolveResult:
        """Solve one horizon starting at ``start`` (default: the case's first).

        The measured state it starts from: battery energy and shiftable-load progress per
        community (``{community: Series}``), the units' output before it (``p_init_mw``).
        """
        t_all = time.perf_counter()
        times = self.prepare(start, n_periods=n_periods, initial_energy_mwh=initial_energy_mwh,
                             shiftable_done=shiftable_done, p_init_mw=p_init_mw)
        form = self.formulation
        big_m_log: list[str] = []
        times["solve"] = times["polish"] = times["checks"] = 0.0
        lazy = LazyBinaries.of(form.communities, form.kkt) if self.lazy else None
        integer = form.model.arrays.integer.copy()
        if lazy is not None:
            integer[lazy.columns] = False
        self._highs.set_integrality(integer)
        attempts = rounds = 0
        while True:
            t0 = time.perf_counter()
            res = self._highs.solve()
            times["solve"] += time.perf_counter() - t0
            rounds += 1
            if not res.has_solution:
                if (form.kkt is not None and res.status is SolveStatus.INFEASIBLE
                        and self._relaxation_feasible(form, big_m_log)):
                    reason = ("the single-level model is infeasible although its high-point "
                              "relaxation is not: dual bounds may be too small")
                    if attempts < self.max_enlargements:
                        attempts += 1
                        self._enlarge(form, None, big_m_log, reason)
                        continue
                    big_m_log.append(f"not verified after {attempts} enlargements: {reason}")
                    res.status, res.message = SolveStatus.ERROR, reason
                    return self._no_solution(form, res, times, big_m_log, t_all, rounds,
                                             status="big_m_unverified")
                return self._no_solution(form, res, times, big_m_log, t_all, rounds)
            t0 = time.perf_counter()
            x = self._polish(res, big_m_log)
            times["polish"] += time.perf_counter() - t0
            if lazy is not None:
                restore = lazy.violations(x, ~self._highs.integrality)
                if restore.size:  # the relaxation's answer breaks a relaxed logic
                    integer = self._highs.integrality.copy()
                    integer[restore] = True
                    self._highs.set_integrality(integer)
                    continue
                x = lazy.complete(x)
            if form.kkt is None:
                break
            t0 = time.perf_counter()
            verdict = self._check_dual_bounds(form, x)
            times["checks"] += time.perf_counter() - t0
            if verdict is None:
                break
            rows, reason = verdict
            if attempts >= self.max_enlargements:
                big_m_log.append(f"not verified after {attempts} enlargements: {reason}")
                return self._result(form, x, res, times, big_m_log, t_all, rounds,
                                    status="big_m_unverified", message=reason)
            attempts += 1
            self._enlarge(form, rows, big_m_log, reason)
        return self._result(form, x, res, times, big_m_log, t_all, rounds)

    def relaxation(self) -> SolverResult:
        """Solve the LP relaxation of the model last prepared (for benchmarks)."""
        return self._highs.solve_relaxation()

    # -- internals -------------------------------------------------------------------------
    def _polish(self, res: SolverResult, big_m_log: list[str]) -> np.ndarray:
        """Fix the integers at their values and re-solve the LP for exact complementarity."""
        ints = np.flatnonzero(self._highs.integrality)
        if not ints.size:
            return res.x
        polished = self._highs.solve_fixed(ints, np.round(res.x[ints]))
        if polished.has_solution and polished.status.ok:
            return polished.x
        big_m_log.append(f"polishing LP was {polished.status.value}; kept the MIP solution")
        return res.x

    def _relaxation_feasible(self, form: Formulation, big_m_log: list[str]) -> bool:
        """Whether the leader's and follower's constraints together admit a solution.

        If they do not, the bilevel problem is infeasible whatever the dual bounds.
        """
        hpr = build_formulation(self.case, form.periods, "hpr", "tariff", **form.state)
        feasible = solve_model(hpr.model, self.options).status is not SolveStatus.INFEASIBLE
        if not feasible:
            big_m_log.append("the high-point relaxation is infeasible: the bilevel problem "
                             "is infeasible whatever the dual bounds")
        return feasible

    def _check_dual_bounds(self, form: Formulation, x: np.ndarray):
        """None when the dual bounds are verified, else (rows to enlarge, reason)."""
        kkt = form.kkt
        mu = x[kkt.mu.ids]
        at_bound = np.flatnonzero((kkt.dual_big_m > 0) & (mu >= AT_BOUND * kkt.dual_big_m))
        if at_bound.size:
            blocks = sorted(set(kkt.form.g_block[kkt.kept[at_bound]]))
            return at_bound, (f"{at_bound.size} duals at their big-M bound "
                              f"(rows of {', '.join(map(str, blocks))})")
        if form.pricing != "dlmp":
            return None
        response = self._oracle.respond(form.follower, form.exchanges(x))
        if not response.ok:
            return None  # the certificate reports it
        best = best_price_for_leader(kkt.form, form.exchanges(x), response.cost,
                                     self.options)
        chosen = kkt.payment(x)
        if best.status is SolveStatus.UNBOUNDED:
            return np.arange(kkt.kept.size), (
                "the follower's dual-optimal face at the found exchanges is unbounded in the "
                "leader's favour: the optimistic price is not bounded")
        if best.status.ok and chosen - best.payment > 1e-6 * max(1.0, abs(chosen)):
            return np.arange(kkt.kept.size), (
                f"the big-M model chose payment {chosen:.9g} but the follower's dual-optimal "
                f"face allows {best.payment:.9g} at the same exchanges")
        return None

    def _enlarge(self, form: Formulation, rows, big_m_log: list[str], reason: str) -> None:
        kkt = form.kkt
        values = kkt.dual_big_m.copy()
        which = np.arange(values.size) if rows is None else rows
        values[which] *= 10.0
        kkt.set_dual_big_m(form.model, values)
        self._highs.update(form.model)
        message = f"{reason}; enlarged {which.size} dual big-Ms tenfold and re-solved"
        big_m_log.append(message)
        log.info(message)

    def _base(self, form: Formulation, status: str, message: str, times, big_m_log):
        return SolveResult(
            case=self.case.name, method=self.method, pricing=form.pricing,
            start=str(form.periods[0]), periods=len(form.periods), step_h=self.case.step_h,
            status=status, message=message, times_s=times, size=form.model.size(),
            big_m_log=big_m_log)

    def _no_solution(self, form, res: SolverResult, times, big_m_log, t_all, rounds,
                     status: str | None = None) -> SolveResult:
        times["total"] = time.perf_counter() - t_all
        result = self._base(form, status or res.status.value, res.message, times, big_m_log)
        result.extra["solver_rounds"] = rounds
        return result

    def _result(self, form: Formulation, x: np.ndarray, res: SolverResult, times: dict,
                big_m_log: list[str], t_all: float, rounds: int, *, status: str | None = None,
                message: str = "") -> SolveResult:
        t0 = time.perf_counter()
        self.last_x = x
        case = self.case
        response = self._oracle.respond(form.follower, form.exchanges(x))
        own = form.own_cost(x)
        prices = None
        if form.kkt is not None:
            lam, _mu = form.kkt.duals(x)
            eq_pos = np.searchsorted(form.kkt.form.eq_rows, form.follower.mv.p_balance.ids)
            prices = lam[eq_pos] / case.step_h
            follower_cost = form.kkt.follower_cost(x)
            certificate = certify(follower_cost, response, self.certificate_tolerance)
        else:
            certificate = None
            ids = form.primal.col_map if form.primal is not None else None
            if ids is not None:
                a = form.follower.model.arrays
                y = np.flatnonzero(~a.parameter)
                follower_cost = float(a.cost[y] @ x[ids[y]] + a.offset)
            else:
                follower_cost = response.cost if response.ok else math.nan
        status = status or res.status.value  # e.g. "time_limit" with an incumbent
        tables = read_tables(form, x, response, prices)
        payments = float(tables["exchanges"]["payment"].sum())
        result = self._base(form, status, message or res.message, times, big_m_log)
        result.mip_gap = res.mip_gap
        result.objective = res.objective
        result.own_cost = own
        result.payments = payments
        result.leader_cost = own + payments
        result.follower_cost = follower_cost
        result.system_cost = own + follower_cost
        result.certificate = certificate
        result.extra["follower_cost_at_best_response"] = (
            response.cost if response.ok else math.nan)
        result.extra["follower_status_at_exchanges"] = response.status.value
        result.extra["solver_rounds"] = rounds
        result.extra["binaries_restored"] = int(
            self._highs.integrality.sum()) if self.lazy else int(form.model.arrays.integer.sum())
        if form.kkt is not None:
            mu = x[form.kkt.mu.ids]
            ratio = mu / np.where(form.kkt.dual_big_m > 0, form.kkt.dual_big_m, np.inf)
            result.extra["max_dual_to_big_m"] = float(ratio.max()) if ratio.size else 0.0
            m = form.kkt.dual_big_m
            result.extra["dual_big_m_min"] = float(m.min()) if m.size else 0.0
            result.extra["dual_big_m_max"] = float(m.max()) if m.size else 0.0
            result.extra["complementarity_pairs"] = int(form.kkt.kept.size)
            result.extra["complementarity_rows_dropped"] = int(
                form.kkt.form.G.shape[0] - form.kkt.kept.size)
        if form.method == "standalone" and not response.ok:
            result.status = "follower_infeasible"
            result.message = (f"the follower cannot serve the standalone exchanges: "
                              f"{response.message}")
        result.exchanges = tables.get("exchanges")
        result.dlmp = tables.get("dlmp")
        result.mv_dispatch = tables.get("mv_dispatch")
        result.batteries = tables.get("batteries")
        result.rooftop_pv = tables.get("rooftop_pv")
        result.shiftable = tables.get("shiftable")
        result.mv_voltage = tables.get("mv_voltage")
        result.periods_table = tables.get("periods")
        times["results"] = time.perf_counter() - t0
        times["total"] = time.perf_counter() - t_all
        if certificate is not None and not certificate.passed and status == "optimal":
            result.status = "certificate_failed"
            result.message = certificate.message
            raise CertificateError(certificate.message, result)
        return result
