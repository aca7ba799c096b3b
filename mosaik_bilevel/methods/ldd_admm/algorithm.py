"""The LDD-ADMM iterations (model.md §6) and their result.

With community exchanges ``x_c``, coordinator targets ``z_c``, multipliers ``ν_c`` and penalty
``ρ``, one iteration is

1. community step, in parallel and in private: ``x_c = argmin L_c(x) + ν_c'x + ρ/2 ‖x − z_c‖²``;
2. coordinator step: ``z = argmin payments(z) − ν'z + ρ/2 ‖x − z‖²`` over the follower's KKT
   system;
3. multiplier step: ``ν ← ν + ρ (x − z)``;
4. residuals ``r = ‖x − z‖`` and ``s = ρ ‖z − z_prev‖`` (changes of z below the penalty's
   tangent spacing ``h`` discounted: the piecewise-linear penalty cannot resolve them) against
   ``ε_pri = √n ε_abs + ε_rel max(‖x‖, ‖z‖)`` and ``ε_dual = √n ε_abs + ε_rel ‖ν‖``
   (Boyd et al. 2011, §3.3); ρ adapted by residual balancing (×τ when r > μ s, ÷τ when
   s > μ r) and, because integer steps can cycle, raised by ``stall_factor`` whenever r has
   not fallen by ``stall_decrease`` over the last ``stall_window`` iterations (at most once
   per window; after the first stall ρ is never lowered again, so consensus is forced: a
   jump of the price regime is worth Δ to the coordinator, so ρ must reach ~2Δ/r² before the
   last gap r closes; ×3 reached the exact leader cost within 2e-5 on the paper day, where
   ×10 settled 0.09 above it after fewer iterations).

A community behind a ``fixed``-model transformer couples through its exchanges *and* the
MV voltage its LV feeder follows: its vectors ``x_c``, ``z_c``, ``ν_c`` hold the exchange
profile (MW) and then ``σ (w_mv − w_ref)`` (σ in MW per pu², w in pu²;
:mod:`~mosaik_bilevel.methods.ldd_admm.coupling`), and the residuals, tolerances and ρ cover
all coordinates alike.

Every iteration also *clears the market* at the communities' exchanges ``x``: the follower's
exact response (its LP), in ``dlmp`` pricing the optimistic leader's price and, with
fixed-model communities, the follower's optimal dispatch whose MV voltages lie in the ranges
the communities' schedules tolerate (an iterate without one is not consistent, and neither
chosen nor accepted as converged). That gives a consistent solution each iteration; the
result is the one with the lowest leader cost, with the status ``optimal`` when the residuals
met their tolerances (at a consistent iterate) and ``not_converged`` otherwise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...data.case import Case
from ...errors import ModelError, OptionsError
from ...model.tariff import tariff_payments
from ...results.assembly import fill_solution
from ...results.result import AdmmDiagnostics, ResultStatus, SolveResult
from ...solvers.highs import SolverOptions
from ...solvers.miqp import check_miqp_solver
from ..certificate import FEASIBILITY_TOLERANCE
from .backends import AgentSpec, Backend
from .backends import backend as make_backend
from .coordinator import Coordinator, Settlement
from .coupling import VOLTAGE_SCALE, WINDOW_PU2
from .step import PenaltySpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ADMMOptions:
    """Settings of LDD-ADMM (units: MW for exchanges, cost per MW² and period for ρ).

    ``step_sub_mip_heuristics`` is off: a step's MILP holds only the few binaries its lazy
    rounds restore, and HiGHS's sub-MIP heuristics cost far more than its branching there
    (docs/ldd_admm.md).

    Inexact steps while far from consensus: iteration k's steps may stop within an absolute
    gap of ``step_gap_factor · ρ · r²`` (r the primal residual of iteration k − 1), never
    below ``step_mip_abs_gap``. In a ρ-strongly convex step an objective within ε of the
    optimum is within √(2ε/ρ) of the minimiser, so with the default 1e-3 a step is placed
    within 4.5 % of the last residual; near convergence the gap is the tight one. A step
    also stops after ``step_time_limit_s`` (all its lazy rounds together) with its
    incumbent. Either way the gap left is part of the step's reported bound.

    Fixed-model communities (their MV voltage in the coupling vector): ``voltage_scale`` σ
    (MW per pu², see :mod:`~mosaik_bilevel.methods.ldd_admm.coupling`),
    ``voltage_window_pu2`` (how much of its voltage margin a community reveals at most) and
    ``voltage_tolerance_pu2`` (the largest violation of a community's tolerated MV-voltage
    range a consistent iterate may have; the exact method's certificate's feasibility
    tolerance).
    """

    rho: float = 100.0
    eps_abs: float = 1e-5
    eps_rel: float = 1e-4
    max_iterations: int = 100
    adapt_rho: bool = True
    balance_mu: float = 10.0
    balance_tau: float = 2.0
    stall_window: int = 5
    stall_decrease: float = 0.1
    stall_factor: float = 3.0
    step_mip_rel_gap: float = 1e-9
    step_mip_abs_gap: float = 1e-10
    step_sub_mip_heuristics: bool = False
    step_time_limit_s: float = 30.0
    step_gap_factor: float = 1e-3
    penalty: PenaltySpec = field(default_factory=PenaltySpec)
    voltage_scale: float = VOLTAGE_SCALE
    voltage_window_pu2: float = WINDOW_PU2
    voltage_tolerance_pu2: float = FEASIBILITY_TOLERANCE

    def __post_init__(self):
        """At least one iteration, a positive finite ρ (else no iterate is ever judged), and
        positive finite voltage settings."""
        it = self.max_iterations
        if not isinstance(it, (int, np.integer)) or isinstance(it, bool) or it < 1:
            raise OptionsError("max_iterations", f"must be a whole number >= 1, got {it!r}")
        if not (isinstance(self.rho, (int, float)) and math.isfinite(self.rho)
                and self.rho > 0):
            raise OptionsError("rho", f"must be a finite number > 0, got {self.rho!r}")
        for name in ("voltage_scale", "voltage_window_pu2", "voltage_tolerance_pu2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value > 0):
                raise OptionsError(name, f"must be a finite number > 0, got {value!r}")


@dataclass
class Iterate:
    """A consistent solution: exchanges, the market cleared at them, the communities' costs.

    ``x``: the exchange profiles (MW); ``w_mv``: the MV squared voltages the fixed-model
    communities assumed (pu²). ``own_cost`` (community × period) is filled in at the end,
    from the communities' report.
    """

    iteration: int
    x: dict[str, list]
    settlement: Settlement
    own_cost: np.ndarray | None = None
    w_mv: dict[str, list] = field(default_factory=dict)

    @property
    def payments(self) -> float:
        p = self.settlement.payments
        return 0.0 if p is None else float(p.sum())

    @property
    def leader_cost(self) -> float:
        return float(self.own_cost.sum()) + self.payments


def leader_cost_by_period(own: np.ndarray, payments: np.ndarray | None) -> np.ndarray:
    """The leader's cost per period: communities' own costs plus (dlmp) payments."""
    cost = own.sum(axis=0)
    return cost if payments is None else cost + payments.sum(axis=0)


@dataclass
class FinishedRun:
    """A finished LDD-ADMM run as a comparison sees it (``compare`` of
    :func:`solve_ldd_admm`): the horizon and its measured state, the chosen iterate, the
    coordinator that settles exchanges like the method did, and the result to add to."""

    case: Case
    pricing: str
    periods: pd.DatetimeIndex
    chosen: Iterate
    coordinator: Coordinator
    solver_options: SolverOptions
    result: SolveResult
    state: dict


def solve_ldd_admm(
    case: Case,
    pricing: str = "dlmp",
    *,
    start=None,
    backend: Backend | str = "sequential",
    workers: int = 1,
    options: ADMMOptions | None = None,
    solver_options: SolverOptions | None = None,
    compare: Callable[[FinishedRun], None] | None = None,
    initial_energy_mwh: dict | None = None,
    shiftable_done: dict | None = None,
    p_init_mw=None,
    n_periods: int | None = None,
) -> SolveResult:
    """Solve one horizon of ``case`` with LDD-ADMM (see the module docstring).

    Parameters
    ----------
    backend
        Where the communities run: a :class:`~mosaik_bilevel.methods.ldd_admm.backends.Backend`, or
        its name (``sequential``, ``process``, ``dask``) with ``workers``. The method starts
        the communities on it and stops them when it returns.
    compare
        Called with the finished run (:class:`FinishedRun`) before the communities stop, to
        compare it with another method and record that on the result (the API passes
        :func:`mosaik_bilevel.analysis.deviation.compare_with_exact` for
        ``compare_exact=True``).
    initial_energy_mwh
        Measured battery energy per community at the horizon start (``{community: {battery:
        MWh}}``; default the case's); each community receives only its own.
    shiftable_done
        Measured shiftable-load progress per community (``{community: {load: periods}}``)
        in the cycle the horizon starts in; each community receives only its own.
    p_init_mw
        The units' output before the horizon (their first ramp; default the case's).
    n_periods
        Length of the horizon (default the case's ``horizon_h``).
    """
    opts = options or ADMMOptions()
    _check(opts)
    solver_options = solver_options or SolverOptions()
    if isinstance(backend, str):
        backend = make_backend(backend, workers)
    periods = case.periods(start, n_periods)
    state = {"initial_energy_mwh": initial_energy_mwh, "shiftable_done": shiftable_done,
             "p_init_mw": p_init_mw}
    run = _Iterations(case.community_names.tolist(), len(periods), opts.rho)
    step_options, agent_options = _step_options(opts, solver_options, backend)
    try:
        t0 = time.perf_counter()
        coordinator = _open(case, pricing, periods, backend, state, step_options,
                            agent_options, opts)
        run.times["startup"] = time.perf_counter() - t0
        try:
            run.start(backend, coordinator.sizes())
            for k in range(1, opts.max_iterations + 1):
                if _iterate(k, run, backend, coordinator, opts):
                    run.converged = True
                    break
                if opts.adapt_rho:
                    _adapt_rho(k, run, opts)
            chosen = _choose(run, backend)
        except CommunityInfeasible as err:  # a reported outcome, as for the exact method
            run.failure, chosen = str(err), None
        result = _result(case, pricing, periods, backend, coordinator, chosen, run)
        if compare is not None and chosen is not None:
            t0 = time.perf_counter()
            compare(FinishedRun(case, pricing, periods, chosen, coordinator, solver_options,
                                result, state))
            result.times_s["compare_exact"] = time.perf_counter() - t0
    finally:
        backend.close()
    result.times_s["total"] = time.perf_counter() - run.t_all
    return result


def _check(opts: ADMMOptions) -> None:
    """Options the method cannot honour raise here, before any community starts."""
    if not opts.penalty.miqp_solver and opts.penalty.step_mw > opts.eps_abs / 2:
        raise ValueError(f"the penalty's tangent step ({opts.penalty.step_mw:g} MW) must not "
                         f"exceed half the absolute tolerance ({opts.eps_abs:g} MW)")
    if opts.penalty.miqp_solver:
        check_miqp_solver(opts.penalty.miqp_solver)


def _step_options(opts: ADMMOptions, solver_options: SolverOptions,
                  backend: Backend) -> tuple[SolverOptions, SolverOptions]:
    """HiGHS options of the coordinator's steps and of the communities' steps."""
    # steps must resolve penalties of ρ ε² (~1e-8): tight gaps, cheap with lazy binaries
    step = SolverOptions(**{**solver_options.__dict__,
                            "mip_rel_gap": opts.step_mip_rel_gap,
                            "mip_abs_gap": opts.step_mip_abs_gap,
                            "mip_sub_mip_heuristics": opts.step_sub_mip_heuristics,
                            "time_limit_s": min(opts.step_time_limit_s,
                                                solver_options.time_limit_s)})
    # parallelism is across communities: outside this process each community's HiGHS runs
    # single-threaded (so one worker and two compare like for like)
    agents = (SolverOptions(**{**step.__dict__, "threads": 1})
              if backend.agents_single_threaded else step)
    return step, agents


def _open(case: Case, pricing: str, periods: pd.DatetimeIndex, backend: Backend,
          state: dict, step_options: SolverOptions, agent_options: SolverOptions,
          opts: ADMMOptions) -> Coordinator:
    """Start the communities, open their horizon and the coordinator's.

    Each community's agent gets the public terms of the voltage coupling (used only behind
    a fixed-model transformer, which the community discloses when it opens its horizon).
    """
    tariff = case.prices[["tariff_buy_per_mwh", "tariff_sell_per_mwh"]]
    coordinator = Coordinator(case.mv_side(),
                              {c.name: int(c.mv_bus) for c in case.communities},
                              pricing=pricing, options=step_options, penalty=opts.penalty,
                              voltage_scale=opts.voltage_scale,
                              voltage_window_pu2=opts.voltage_window_pu2,
                              voltage_tolerance_pu2=opts.voltage_tolerance_pu2)
    backend.start([AgentSpec(c, case.community_settings, pricing,
                             tariff if pricing == "tariff" else None, agent_options,
                             opts.penalty, coordinator.coupling(c.name))
                   for c in case.communities])
    names = list(case.community_names)
    initial, done = state["initial_energy_mwh"], state["shiftable_done"]
    initial = {n: _plain(initial.get(n)) if initial else None for n in names}
    done = {n: _plain(done.get(n)) if done else None for n in names}
    disclosed = backend.call("open", {n: (str(periods[0]), len(periods), initial[n],
                                          done[n]) for n in names})
    coordinator.open(periods, disclosed, p_init_mw=state["p_init_mw"])
    return coordinator


@dataclass
class _Iterations:
    """The state of the iterations: exchanges x, targets z, multipliers ν, penalty ρ."""

    names: list[str]
    n_periods: int
    rho: float
    x: dict = field(default_factory=dict)
    z: dict = field(default_factory=dict)
    nu: dict = field(default_factory=dict)
    r: float = math.inf  # the last primal residual (sets how exact the steps must be)
    hold: int = 0  # no forced increase of ρ before this iteration (one per stall window)
    monotone: bool = False  # after the first stall ρ never decreases again
    converged: bool = False
    failure: str = ""  # why no iterate exists (a community without a feasible dispatch)
    history: list[dict] = field(default_factory=list)
    iterates: list[Iterate] = field(default_factory=list)
    times: dict = field(default_factory=lambda: {
        "startup": 0.0, "community": 0.0, "coordinator": 0.0, "clearing": 0.0})
    t_all: float = field(default_factory=time.perf_counter)

    def start(self, backend: Backend, sizes: dict[str, int]) -> None:
        """The communities' first proposal (no multiplier, no target) starts x and z.

        ``sizes``: the length of each community's coupling vector.
        """
        replies = backend.call("propose", {n: ([0.0] * sizes[n], None, 0.0, None)
                                           for n in self.names})
        _check_replies(replies)
        self.x = {n: replies[n]["x"] for n in self.names}
        self.z = {n: list(v) for n, v in self.x.items()}
        self.nu = {n: np.zeros(sizes[n]) for n in self.names}


def _iterate(k: int, run: _Iterations, backend: Backend, coordinator: Coordinator,
             opts: ADMMOptions) -> bool:
    """Iteration ``k``: both steps, the multipliers, the market cleared at the communities'
    exchanges; returns whether the residuals met their tolerances."""
    names, rho = run.names, run.rho
    gap = max(opts.step_mip_abs_gap, opts.step_gap_factor * rho * run.r * run.r)
    gap = None if not math.isfinite(gap) else gap
    t0 = time.perf_counter()
    replies = backend.call("propose", {n: (run.nu[n].tolist(), run.z[n], rho, gap)
                                       for n in names})
    t_community = time.perf_counter() - t0
    run.times["community"] += t_community
    _check_replies(replies)
    run.x = x = {n: replies[n]["x"] for n in names}
    t0 = time.perf_counter()
    step = coordinator.step(x, {n: run.nu[n].tolist() for n in names}, rho, gap)
    t_coordinator = time.perf_counter() - t0
    run.times["coordinator"] += t_coordinator
    z_prev, run.z = run.z, step["z"]
    r, s, eps_pri, eps_dual = _residuals(run, z_prev, opts)
    t0 = time.perf_counter()
    w_range = {n: replies[n]["w_range_pu2"] for n in names if "w_range_pu2" in replies[n]}
    settlement = coordinator.settle(x, w_range)
    if settlement.feasible:
        run.iterates.append(Iterate(k, coordinator.exchanges(x), settlement,
                                    w_mv=coordinator.assumed_voltages(x)))
    run.times["clearing"] += time.perf_counter() - t0
    voltage = settlement.voltage
    row = {
        "iteration": k, "primal_residual": r, "dual_residual": s, "eps_primal": eps_pri,
        "eps_dual": eps_dual, "rho": rho,
        "community_bound": max(float(replies[n]["bound"]) for n in names),
        "coordinator_bound": float(step["bound"]),
        "community_step_s": t_community, "coordinator_step_s": t_coordinator,
        "steps_at_time_limit": sum(replies[n].get("status") == "time_limit"
                                   for n in names) + (step["status"] == "time_limit"),
    }
    if coordinator.voltage_coupled:  # how far the settled dispatch is from the ranges
        row["voltage_violation_pu2"] = math.nan if voltage is None else voltage.violation_pu2
        row["consistent"] = settlement.feasible
    run.history.append(row)
    log.info("LDD-ADMM iteration %d: r=%.3g (eps %.3g) s=%.3g (eps %.3g) rho=%g", k, r,
             eps_pri, s, eps_dual, rho)
    # converged only at a consistent iterate: residuals within tolerance whose market
    # clearing fails a community's voltage range go on
    voltage_ok = voltage is None or voltage.ok
    return r <= eps_pri and s <= eps_dual and voltage_ok


def _residuals(run: _Iterations, z_prev: dict, opts: ADMMOptions):
    """Update ν; the primal and dual residuals and their tolerances (module docstring)."""
    names, rho = run.names, run.rho
    for n in names:
        run.nu[n] = run.nu[n] + rho * (np.asarray(run.x[n]) - np.asarray(run.z[n]))
    xa = np.concatenate([run.x[n] for n in names])  # every coordinate, MW or scaled pu²
    za = np.concatenate([run.z[n] for n in names])
    zp = np.concatenate([z_prev[n] for n in names])
    r = run.r = float(np.linalg.norm(xa - za))
    # the penalty's tangents cannot place z finer than their spacing h: changes of z below h
    # are the approximation's jitter, not a lack of convergence
    h = opts.penalty.resolution_mw
    dz = za - zp
    s = float(rho * np.linalg.norm(np.sign(dz) * np.maximum(np.abs(dz) - h, 0.0)))
    nua = np.concatenate([run.nu[n] for n in names])
    n_coords = xa.size
    eps_pri = math.sqrt(n_coords) * opts.eps_abs + opts.eps_rel * max(
        np.linalg.norm(xa), np.linalg.norm(za))
    eps_dual = math.sqrt(n_coords) * opts.eps_abs + opts.eps_rel * np.linalg.norm(nua)
    return r, s, eps_pri, eps_dual


def _adapt_rho(k: int, run: _Iterations, opts: ADMMOptions) -> None:
    """Residual balancing, and a forced increase when the primal residual stalls."""
    last = run.history[-1]
    r, s, eps_pri = last["primal_residual"], last["dual_residual"], last["eps_primal"]
    stalled = (r > eps_pri and k > opts.stall_window and r > (
        1 - opts.stall_decrease) * run.history[-1 - opts.stall_window]["primal_residual"])
    if stalled and k >= run.hold:  # integer steps can cycle: force consensus
        run.rho *= opts.stall_factor
        run.hold = k + opts.stall_window
        run.monotone = True
    elif r > opts.balance_mu * s:
        run.rho *= opts.balance_tau
    elif s > opts.balance_mu * r and not run.monotone:
        run.rho /= opts.balance_tau


def _choose(run: _Iterations, backend: Backend) -> Iterate | None:
    """The iterate with the lowest leader cost (the communities' own costs cross now)."""
    names = run.names
    reports = backend.call("report", {n: () for n in names})
    for it in run.iterates:
        it.own_cost = np.array([reports[n]["own_cost"][it.iteration] for n in names])
    costs = {it.iteration: it.leader_cost for it in run.iterates}
    for row in run.history:
        row["leader_cost"] = costs.get(row["iteration"], math.nan)
    # every iterate is consistent (bilevel feasible): report the one with the lowest leader
    # cost, converged or not (nonconvex steps can pass better points on the way)
    return min(run.iterates, key=lambda it: it.leader_cost, default=None)


def _plain(values) -> dict | None:
    """Measured state as a plain dict (what crosses to a community's process)."""
    if values is None:
        return None
    return {str(k): float(v) for k, v in dict(values).items()}


class CommunityInfeasible(ModelError):
    """A community's step found no dispatch (e.g. from its measured battery state)."""


def _check_replies(replies: dict) -> None:
    failed = [n for n, r in replies.items() if r.get("x") is None]
    if failed:
        raise CommunityInfeasible(
            "no feasible dispatch for community " + ", ".join(
                f"{n} ({replies[n].get('status')})" for n in failed)
            + " in this horizon: the bilevel problem is infeasible from this state")


def _result(case: Case, pricing: str, periods, backend: Backend, coordinator: Coordinator,
            chosen: Iterate | None, run: _Iterations) -> SolveResult:
    status = (ResultStatus.OPTIMAL if run.converged and chosen is not None else
              ResultStatus.NOT_CONVERGED if chosen is not None else ResultStatus.INFEASIBLE)
    message = {"optimal": "converged",
               "not_converged": f"not converged within {len(run.history)} iterations; the "
                                f"best consistent solution found is reported",
               "infeasible": run.failure or _no_iterate(run)}[status]
    result = SolveResult(case=case.name, method="ldd_admm", pricing=pricing,
                         start=str(periods[0]), periods=len(periods), step_h=case.step_h,
                         status=status, message=message, times_s=dict(run.times))
    busy = getattr(backend, "busy_s", None)
    result.admm = AdmmDiagnostics(
        iterations=len(run.history), converged=bool(run.converged),
        backend=type(backend).__name__, workers=backend.workers,
        coordinator_log=list(coordinator.log) + _voltage_log(coordinator, run, chosen),
        community_busy_s=dict(busy) if busy else None)
    result.residuals = pd.DataFrame(run.history)
    if chosen is not None:
        _settle(result, case, pricing, periods, coordinator, chosen)
    return result


def _no_iterate(run: _Iterations) -> str:
    """Why no iterate is consistent."""
    voltage = sum(1 for row in run.history if row.get("voltage_violation_pu2", 0.0) > 0.0
                  and not row.get("consistent", True))
    if voltage:
        rest = len(run.history) - voltage
        return (f"no iterate was consistent within {len(run.history)} iterations: at "
                f"{voltage} of them the follower had no optimal dispatch meeting the "
                f"fixed-model communities' MV-voltage ranges"
                + (f", at {rest} no feasible dispatch at all" if rest else ""))
    return "no iterate's exchanges were feasible for the follower"


def _voltage_log(coordinator: Coordinator, run: _Iterations, chosen: Iterate | None
                 ) -> list[str]:
    """What the settlement did for the fixed-model communities (their MV voltage)."""
    fixed = coordinator.voltage_coupled
    if not fixed:
        return []
    scale = coordinator.coupling(fixed[0]).scale
    failed = [row for row in run.history if not row.get("consistent", True)]
    worst = max((row["voltage_violation_pu2"] for row in run.history
                 if math.isfinite(row.get("voltage_violation_pu2", math.nan))), default=0.0)
    lines = [f"voltage coupling: {', '.join(fixed)} (fixed-model transformers) agree on "
             f"their MV-voltage profile too, as σ (w − w_ref) with σ = {scale:g} MW per "
             f"pu²",
             f"settlement: every iteration the follower's optimal dispatch was chosen (LP) "
             f"to put the MV voltage at each of their buses into the range their schedule "
             f"tolerates; {len(failed)} of {len(run.history)} iterates had none (not "
             f"consistent, not choosable; largest violation {worst:.3g} pu²)"]
    if chosen is not None and chosen.settlement.voltage is not None:
        lines.append(f"chosen iterate {chosen.iteration}: "
                     f"{chosen.settlement.voltage.message}")
    return lines


def _settle(result: SolveResult, case: Case, pricing: str, periods, coordinator: Coordinator,
            chosen: Iterate) -> None:
    """Costs and frames of the chosen iterate, as the market cleared it."""
    names = list(coordinator.names)
    settlement = chosen.settlement
    response = settlement.response
    xa = np.array([chosen.x[n] for n in names])
    own, payments = chosen.own_cost, settlement.payments
    result.own_cost = float(own.sum())
    result.payments = float(0.0 if payments is None else payments.sum())
    if pricing == "tariff":  # the communities paid the tariff in their own cost
        result.payments = float(tariff_payments(case.prices, periods, xa, case.step_h).sum())
        result.own_cost -= result.payments
    result.leader_cost = chosen.leader_cost
    result.follower_cost = response.cost
    result.system_cost = result.own_cost + response.cost
    result.objective = chosen.leader_cost
    # no single-level model to certify: the follower's dispatch is its own LP's solution at
    # the communities' exchanges (``Coordinator.settle``)
    result.certificate = None
    result.admm.chosen_iteration = chosen.iteration
    result.admm.leader_cost_by_period = leader_cost_by_period(own, payments).tolist()
    fill_solution(
        result, case, periods, names=names, mv_buses=coordinator.mv_buses.tolist(), p_ex=xa,
        q_ex=coordinator.q_exchange, follower=settlement.follower,
        follower_values=lambda block: response.x[block.ids], dlmp=settlement.dlmp,
        lp_dlmp=None if response.dlmp is None else response.dlmp.to_numpy())
