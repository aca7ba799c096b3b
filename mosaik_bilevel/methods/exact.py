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
3. *the certificate* (:func:`~mosaik_bilevel.methods.certificate.certify`): the follower
   dispatch is feasible, the follower LP alone at the found exchanges has the same cost
   (relative ``certificate_tolerance``) and, in ``dlmp``, the prices are follower duals at
   that optimum; a failure raises :class:`~mosaik_bilevel.errors.CertificateError`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..cases import as_case
from ..data.case import Case
from ..errors import CertificateError
from ..model.big_m import SAFETY
from ..model.formulation import Formulation, build_formulation
from ..results.assembly import fill_solution
from ..results.result import ResultStatus, SolverDiagnostics, SolveResult
from ..solvers.highs import HighsResult, HighsSolver, SolverOptions, SolveStatus, solve_model
from ..solvers.lazy import LazyBinaries, LazyOutcome, solve_lazily
from .certificate import (
    FollowerClaim,
    FollowerOracle,
    FollowerResponse,
    best_price_for_leader,
    certify,
    duals_at_bound,
    enlarge_dual_big_m,
)

log = logging.getLogger(__name__)


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
              shiftable_done=None, p_init_mw=None, ac_bounds=None) -> Formulation:
        """Build the model of one horizon (does not hand it to HiGHS).

        ``n_periods`` (default the case's horizon) may be any length, ``start`` any period;
        ``ac_bounds``: bounds tightened by an AC correction
        (:class:`~mosaik_bilevel.model.correction.ACBounds`).
        """
        periods = self.case.periods(start, n_periods)
        return build_formulation(
            self.case, periods, self.method, self.pricing,
            dual_big_m_safety=self.dual_big_m_safety, tighten=self.tighten,
            initial_energy_mwh=initial_energy_mwh, shiftable_done=shiftable_done,
            p_init_mw=p_init_mw, ac_bounds=ac_bounds)

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
              shiftable_done=None, p_init_mw=None, ac_bounds=None) -> SolveResult:
        """Solve one horizon starting at ``start`` (default: the case's first).

        The measured state it starts from: battery energy and shiftable-load progress per
        community (``{community: Series}``), the units' output before it (``p_init_mw``);
        ``ac_bounds`` as for :meth:`build`.
        """
        run = _Run(time.perf_counter(), self.prepare(
            start, n_periods=n_periods, initial_energy_mwh=initial_energy_mwh,
            shiftable_done=shiftable_done, p_init_mw=p_init_mw, ac_bounds=ac_bounds))
        form = self.formulation
        lazy = LazyBinaries.of(form.communities, form.kkt) if self.lazy else None
        attempts = 0
        while True:
            outcome = self._solve_lazily(lazy, run)
            res, x = outcome.result, outcome.x
            if x is None:
                reason = self._infeasible_for_dual_bounds(form, res, run)
                if reason is None:
                    return self._no_solution(form, res, run)
                if attempts >= self.max_enlargements:
                    run.big_m_log.append(f"not verified after {attempts} enlargements: "
                                         f"{reason}")
                    return self._no_solution(form, res, run, ResultStatus.BIG_M_UNVERIFIED,
                                             reason)
            else:
                if form.kkt is None:
                    break
                t0 = time.perf_counter()
                verdict = self._check_dual_bounds(form, x)
                run.times["checks"] += time.perf_counter() - t0
                if verdict is None:
                    break
                pairs, reason = verdict
                if attempts >= self.max_enlargements:
                    run.big_m_log.append(f"not verified after {attempts} enlargements: "
                                         f"{reason}")
                    return self._result(form, x, res, run,
                                        status=ResultStatus.BIG_M_UNVERIFIED, message=reason)
            attempts += 1
            self._enlarge(form, None if x is None else pairs, run.big_m_log, reason)
        return self._result(form, x, res, run)

    def relaxation(self) -> HighsResult:
        """Solve the LP relaxation of the model last prepared (for benchmarks)."""
        return self._highs.solve_relaxation()

    # -- internals -------------------------------------------------------------------------
    def _solve_lazily(self, lazy: LazyBinaries | None, run: _Run) -> LazyOutcome:
        """Solve (relaxed binaries restored as needed, polished) from the binaries already
        restored in this horizon."""
        restored = run.restored
        outcome = solve_lazily(self._highs, lazy, self.formulation.model.arrays.integer,
                               polish=True, restored=restored)
        run.restored = np.flatnonzero(self._highs.integrality)
        run.times["solve"] += outcome.solve_s
        run.times["polish"] += outcome.polish_s
        run.rounds += outcome.rounds
        run.big_m_log.extend(outcome.notes)
        return outcome

    def _infeasible_for_dual_bounds(self, form: Formulation, res: HighsResult,
                                    run: _Run) -> str | None:
        """Why an infeasible single-level model may owe it to its dual bounds, or None.

        If the leader's and follower's constraints together admit no solution (the
        high-point relaxation), the bilevel problem is infeasible whatever the dual bounds.
        """
        if form.kkt is None or res.status is not SolveStatus.INFEASIBLE:
            return None
        hpr = build_formulation(self.case, form.periods, "hpr", "tariff", **form.state)
        if solve_model(hpr.model, self.options).status is SolveStatus.INFEASIBLE:
            run.big_m_log.append("the high-point relaxation is infeasible: the bilevel "
                                 "problem is infeasible whatever the dual bounds")
            return None
        return ("the single-level model is infeasible although its high-point relaxation "
                "is not: dual bounds may be too small")

    def _check_dual_bounds(self, form: Formulation, x: np.ndarray):
        """None when the dual bounds are verified, else (pairs to enlarge, reason)."""
        kkt = form.kkt
        at_bound = duals_at_bound(kkt, x)
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

    def _enlarge(self, form: Formulation, pairs, big_m_log: list[str], reason: str) -> None:
        n = enlarge_dual_big_m(form.kkt, form.model, pairs)
        self._highs.update(form.model)
        message = f"{reason}; enlarged {n} dual big-Ms tenfold and re-solved"
        big_m_log.append(message)
        log.info(message)

    def _base(self, form: Formulation, status, message: str, run: _Run) -> SolveResult:
        return SolveResult(
            case=self.case.name, method=self.method, pricing=form.pricing,
            start=str(form.periods[0]), periods=len(form.periods), step_h=self.case.step_h,
            status=status, message=message, times_s=run.times, size=form.model.size(),
            big_m_log=run.big_m_log)

    def _no_solution(self, form: Formulation, res: HighsResult, run: _Run,
                     status: ResultStatus | None = None, message: str = "") -> SolveResult:
        run.times["total"] = time.perf_counter() - run.t_all
        result = self._base(form, status or res.status.value, message or res.message, run)
        result.solver = SolverDiagnostics(solver_rounds=run.rounds)
        return result

    def _result(self, form: Formulation, x: np.ndarray, res: HighsResult, run: _Run, *,
                status: ResultStatus | None = None, message: str = "") -> SolveResult:
        t0 = time.perf_counter()
        self.last_x = x
        response = self._oracle.respond(form.follower, form.exchanges(x))
        result = self._base(form, status or res.status.value, message or res.message, run)
        prices, certificate, follower_cost = self._follower_side(form, x, response)
        self._fill(result, form, x, response, prices)
        own = form.own_cost(x)
        result.mip_gap, result.objective = res.mip_gap, res.objective
        result.own_cost, result.payments = own, float(result.exchanges["payment"].sum())
        result.leader_cost = own + result.payments
        result.follower_cost, result.system_cost = follower_cost, own + follower_cost
        result.certificate = certificate
        result.solver = self._diagnostics(form, x, response, run.rounds)
        if form.method == "standalone" and not response.ok:
            result.status = ResultStatus.FOLLOWER_INFEASIBLE
            result.message = (f"the follower cannot serve the standalone exchanges: "
                              f"{response.message}")
        run.times["results"] = time.perf_counter() - t0
        run.times["total"] = time.perf_counter() - run.t_all
        if (certificate is not None and not certificate.passed
                and result.status is ResultStatus.OPTIMAL):
            result.status = ResultStatus.CERTIFICATE_FAILED
            result.message = certificate.message
            raise CertificateError(certificate.message, result)
        return result

    def _follower_side(self, form: Formulation, x: np.ndarray, response: FollowerResponse):
        """(bilevel DLMPs or None, certificate or None, follower cost) of a solution."""
        if form.kkt is not None:
            lam, _mu = form.kkt.duals(x)
            certificate = certify(form.follower, FollowerClaim.of(form, x), response,
                                  tolerance=self.certificate_tolerance, options=self.options)
            return (form.follower.dlmp_from_kkt(form.kkt.form, lam), certificate,
                    form.kkt.follower_cost(x))
        if form.primal is not None:
            a = form.follower.model.arrays
            y = np.flatnonzero(~a.parameter)
            return None, None, float(a.cost[y] @ x[form.primal.col_map[y]] + a.offset)
        return None, None, (response.cost if response.ok else math.nan)

    def _fill(self, result: SolveResult, form: Formulation, x: np.ndarray,
              response: FollowerResponse, prices: np.ndarray | None) -> None:
        def follower_values(block):
            ids = form.follower_ids(block)
            if ids is not None:
                return x[ids]
            return None if response.x is None else response.x[block.ids]

        lp_dlmp = None if response.dlmp is None else response.dlmp.to_numpy()
        periods = form.periods
        fill_solution(
            result, self.case, periods,
            names=[c.community.name for c in form.communities],
            mv_buses=[c.community.mv_bus for c in form.communities],
            p_ex=form.exchanges(x),
            q_ex=np.vstack([c.community.q_exchange_mvar.loc[periods].to_numpy()
                            for c in form.communities]),
            follower=form.follower, follower_values=follower_values,
            dlmp=prices if prices is not None else lp_dlmp, lp_dlmp=lp_dlmp,
            communities=form.communities, x=x)

    def _diagnostics(self, form: Formulation, x: np.ndarray, response: FollowerResponse,
                     rounds: int) -> SolverDiagnostics:
        d = SolverDiagnostics(
            solver_rounds=rounds,
            binaries_restored=int(self._highs.integrality.sum()) if self.lazy
            else int(form.model.arrays.integer.sum()),
            follower_cost_at_best_response=response.cost if response.ok else math.nan,
            follower_status_at_exchanges=response.status.value)
        kkt = form.kkt
        if kkt is not None:
            m = kkt.dual_big_m
            ratio = x[kkt.mu.ids] / np.where(m > 0, m, np.inf)
            d.max_dual_to_big_m = float(ratio.max()) if ratio.size else 0.0
            d.dual_big_m_min = float(m.min()) if m.size else 0.0
            d.dual_big_m_max = float(m.max()) if m.size else 0.0
            d.complementarity_pairs = int(kkt.kept.size)
            d.complementarity_rows_dropped = kkt.dropped_rows
            d.rows_always_tight = kkt.always_tight_rows
        return d


@dataclass
class _Run:
    """One horizon's solve in progress: its clock, times, log and rounds."""

    t_all: float
    times: dict
    big_m_log: list[str] = field(default_factory=list)
    rounds: int = 0
    restored: np.ndarray | None = None

    def __post_init__(self):
        self.times.update(solve=0.0, polish=0.0, checks=0.0)
