"""How far an LDD-ADMM solution is from the exact method's (definitions: docs/ldd_admm.md).

Per period t, with the leader's cost L_t (communities' own costs plus their payments) and the
exchanges x_{c,t}::

    d^L_t = |L^A_t − L^E_t| / max(|L^E_t|, mean_t |L^E_t|)
    d^x_t = Σ_c |x^A_{c,t} − x^E_{c,t}| / max(Σ_c |x^E_{c,t}|, mean_t Σ_c |x^E_{c,t}|)

and their averages over the periods. The floor (the mean over the horizon) keeps a period whose
exact value is near zero from dividing by it.

The exact problem often has many optimal solutions (a battery can charge in any of several
hours at the same price), and an exact solver returns one of them arbitrarily. So the
deviation is reported twice: against the exact solver's own solution, and against the exact
optimum *nearest* to the LDD-ADMM solution — the solution of the exact model closest to it
in exchanges (and then in each community's own cost per period) among those whose leader
cost is within ``optimality_tolerance`` of the exact optimum. The second is the deviation
that measures the method; the first measures ties too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.state import state_series
from ..methods.exact import Solver
from ..methods.ldd_admm.algorithm import FinishedRun, leader_cost_by_period
from ..model.tariff import tariff_payments
from ..results.result import DeviationSummary
from ..solvers.highs import HighsSolver
from ..solvers.lazy import LazyBinaries, solve_lazily


def relative_deviation(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|approx − exact| / max(|exact|, mean |exact|), per period (summed over rows if 2-D)."""
    diff = np.abs(np.asarray(approx) - np.asarray(exact))
    size = np.abs(np.asarray(exact))
    if diff.ndim == 2:
        diff, size = diff.sum(axis=0), size.sum(axis=0)
    floor = max(float(size.mean()), 1e-12)
    return diff / np.maximum(size, floor)


def _leader_cost(form, coordinator, x_full: np.ndarray) -> np.ndarray:
    """Leader's cost per period of a solution of the exact model, settled as LDD-ADMM's."""
    own = np.array([c.own_cost_by_period(x_full) for c in form.communities])
    ex = form.exchanges(x_full)
    if form.pricing == "tariff":
        return leader_cost_by_period(
            own + tariff_payments(form.case.prices, form.periods, ex, form.case.step_h), None)
    settlement = coordinator.settle({n: ex[i].tolist() for i, n in enumerate(coordinator.names)})
    return leader_cost_by_period(own, settlement.payments)


#: Weight of a MW of exchange distance against one unit of own-cost distance.
EXCHANGE_WEIGHT = 100.0


def nearest_exact_optimum(exact_solver, x_admm: np.ndarray, own_admm: np.ndarray,
                          objective: float,
                          optimality_tolerance: float = 1e-6) -> np.ndarray | None:
    """The exact model's solution nearest to LDD-ADMM's among those within
    ``optimality_tolerance`` (relative) of the optimal ``objective``.

    Nearest: least ``EXCHANGE_WEIGHT · Σ|x − x_admm| + Σ|own − own_admm|`` over communities
    and periods (exchanges first, then each community's own cost per period, which ties
    inside a community, e.g. when to curtail, can move between periods). Changes the solver's
    model: use a solver made for this comparison.
    """
    form = exact_solver.formulation
    model = form.model
    a = model.arrays
    cols = np.flatnonzero(a.cost)
    coefs = a.cost[cols]
    limit = objective + optimality_tolerance * max(1.0, abs(objective)) - a.offset
    row = model.add_constraints("optimality", (pd.RangeIndex(1, name="row"),), "<=", limit)
    model.add_terms(row.ids[0], cols, coefs)
    ids = form.exchange_ids
    index = (pd.RangeIndex(ids.shape[0], name="community"), form.periods)
    dist = model.add_variables("distance_mw", index, 0.0)
    above = model.add_constraints("distance_above", index, ">=", -x_admm)
    model.add_terms(above.ids, dist.ids, 1.0)
    model.add_terms(above.ids, ids, -1.0)
    below = model.add_constraints("distance_below", index, ">=", x_admm)
    model.add_terms(below.ids, dist.ids, 1.0)
    model.add_terms(below.ids, ids, 1.0)
    own_dist = model.add_variables("own_cost_distance", index, 0.0)
    for i, blocks in enumerate(form.communities):
        cols, coefs, offset = blocks.own_cost_terms()
        up = model.add_constraints(f"own_above[{i}]", (form.periods,), ">=",
                                   offset - own_admm[i])
        model.add_terms(up.ids, own_dist.ids[i], 1.0)
        model.add_terms(up.ids[None, :], cols, -coefs)
        down = model.add_constraints(f"own_below[{i}]", (form.periods,), ">=",
                                     own_admm[i] - offset)
        model.add_terms(down.ids, own_dist.ids[i], 1.0)
        model.add_terms(down.ids[None, :], cols, coefs)
    model.replace_objective(np.concatenate([dist.ids.ravel(), own_dist.ids.ravel()]),
                            np.concatenate([np.full(dist.ids.size, EXCHANGE_WEIGHT),
                                            np.ones(own_dist.ids.size)]))
    highs = HighsSolver(exact_solver.options)
    highs.load(model)
    lazy = LazyBinaries.of(form.communities, form.kkt)
    return solve_lazily(highs, lazy, model.arrays.integer, polish=True).x


def deviation_from_exact(exact_solver, exact, x_admm: dict, own_admm: np.ndarray, settlement,
                         coordinator) -> tuple[dict, pd.DataFrame]:
    """Scalars and the per-period table of the deviation (see the module docstring)."""
    names = list(coordinator.names)
    form = exact_solver.formulation
    periods = form.periods
    x_e = exact_solver.last_x
    cost_e = _leader_cost(form, coordinator, x_e)
    cost_a = leader_cost_by_period(own_admm, settlement.payments)
    ex_e = form.exchanges(x_e)
    ex_a = np.array([x_admm[n] for n in names])
    dev_cost = relative_deviation(cost_a, cost_e)
    dev_ex = relative_deviation(ex_a, ex_e)
    table = pd.DataFrame({
        "time": periods, "leader_cost_exact": cost_e, "leader_cost_ldd_admm": cost_a,
        "relative_deviation_cost": dev_cost, "exchange_exact_mw": ex_e.sum(axis=0),
        "exchange_ldd_admm_mw": ex_a.sum(axis=0), "relative_deviation_exchange": dev_ex,
    })
    objective = float(form.model.arrays.cost @ x_e + form.model.arrays.offset)
    own_pure = own_admm  # the communities' own costs without the tariff they paid
    if form.pricing == "tariff":
        own_pure = own_admm - tariff_payments(form.case.prices, periods, ex_a, form.case.step_h)
    x_n = nearest_exact_optimum(exact_solver, ex_a, own_pure, objective)
    scalars = {
        "exact_leader_cost": exact.leader_cost,
        "exact_follower_cost": exact.follower_cost,
        "deviation_leader_cost": (cost_a.sum() - exact.leader_cost) / max(
            abs(exact.leader_cost), 1e-9),
        "deviation_follower_cost": (settlement.response.cost - exact.follower_cost) / max(
            abs(exact.follower_cost), 1e-9),
        "average_relative_deviation_cost": float(dev_cost.mean()),
        "average_relative_deviation_exchange": float(dev_ex.mean()),
    }
    if x_n is not None:
        cost_n = _leader_cost(form, coordinator, x_n)
        ex_n = form.exchanges(x_n)
        table["leader_cost_nearest_exact"] = cost_n
        table["exchange_nearest_exact_mw"] = ex_n.sum(axis=0)
        table["relative_deviation_cost_nearest"] = relative_deviation(cost_a, cost_n)
        table["relative_deviation_exchange_nearest"] = relative_deviation(ex_a, ex_n)
        scalars["average_relative_deviation_cost_nearest"] = float(
            table["relative_deviation_cost_nearest"].mean())
        scalars["average_relative_deviation_exchange_nearest"] = float(
            table["relative_deviation_exchange_nearest"].mean())
    if exact.periods_table is not None and "marginal_resource" in exact.periods_table:
        table["marginal_resource_exact"] = exact.periods_table["marginal_resource"].to_numpy()
    return scalars, table


def compare_with_exact(run: FinishedRun) -> None:
    """Solve the exact method on the run's horizon and record the deviation on its result.

    Passed as ``compare`` to :func:`~mosaik_bilevel.methods.ldd_admm.solve_ldd_admm` by
    ``solve(..., method="ldd_admm", compare_exact=True)``.
    """
    state = run.state
    exact_solver = Solver(run.case, "exact", run.pricing, options=run.solver_options)
    exact = exact_solver.solve(
        run.periods[0], n_periods=len(run.periods), p_init_mw=state.get("p_init_mw"),
        initial_energy_mwh=state_series(state.get("initial_energy_mwh")),
        shiftable_done=state_series(state.get("shiftable_done")))
    chosen = run.chosen
    scalars, run.result.deviation = deviation_from_exact(
        exact_solver, exact, chosen.x, chosen.own_cost, chosen.settlement, run.coordinator)
    run.result.deviation_summary = DeviationSummary(**scalars)
