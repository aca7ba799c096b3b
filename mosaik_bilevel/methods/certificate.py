"""The follower solved on its own, the bilevel certificate and the price checks (model.md §5).

- :class:`FollowerOracle` solves the follower LP at given exchanges on a persistent HiGHS
  instance (each call changes only the exchanges' bounds).
- :func:`certify` compares the single-level follower cost ``c'y`` with the follower's optimum
  at the same exchanges: equal to a relative tolerance (default 1e-6) or the solution is
  rejected.
- :func:`duals_at_bound` and :func:`enlarge_dual_big_m`: the check that no follower dual
  sits at its big-M bound and the tenfold enlargement when one does (the exact method and
  LDD-ADMM's coordinator);
- :func:`best_price_for_leader` solves, at given exchanges, ``min λ'E p`` over the follower's
  whole dual-optimal face without any big-M: the price an optimistic leader is entitled to.
  The exact method compares it with the price its big-M model chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model.follower import Follower
from ..model.kkt import KKTSystem, MatrixForm
from ..model.linear import LinearModel
from ..results.result import Certificate
from ..solvers.highs import HighsResult, HighsSolver, SolverOptions, SolveStatus

#: A dual is "at its bound" when it reaches this fraction of its big-M.
AT_BOUND = 1.0 - 1e-6
#: How much a dual big-M at its bound is enlarged.
ENLARGEMENT = 10.0


def duals_at_bound(kkt: KKTSystem, x: np.ndarray) -> np.ndarray:
    """Complementarity pairs (positions in ``kkt.kept``) whose dual sits at its big-M."""
    mu, m = x[kkt.mu.ids], kkt.dual_big_m
    return np.flatnonzero((m > 0) & (mu >= AT_BOUND * m))


def enlarge_dual_big_m(kkt: KKTSystem, host: LinearModel, pairs: np.ndarray | None = None
                       ) -> int:
    """Enlarge the dual big-Ms of ``pairs`` (default all) tenfold in ``host``; returns how
    many."""
    values = kkt.dual_big_m.copy()
    which = np.arange(values.size) if pairs is None else pairs
    values[which] *= ENLARGEMENT
    kkt.set_dual_big_m(host, values)
    return int(which.size)


@dataclass
class FollowerResponse:
    """The follower's optimal response to fixed exchanges."""

    status: SolveStatus
    message: str
    cost: float
    x: np.ndarray | None
    row_duals: np.ndarray | None
    dlmp: pd.DataFrame | None
    result: HighsResult

    @property
    def ok(self) -> bool:
        return self.status.ok


class FollowerOracle:
    """A persistent follower LP: solve it at given exchanges."""

    def __init__(self, options: SolverOptions | None = None):
        opts = options or SolverOptions()
        self._solver = HighsSolver(SolverOptions(
            time_limit_s=opts.time_limit_s, threads=opts.threads, log=opts.log,
            primal_feasibility_tolerance=1e-9, dual_feasibility_tolerance=1e-9))

    def respond(self, follower: Follower, exchanges: np.ndarray) -> FollowerResponse:
        """Solve ``follower`` with its exchanges (community × period, MW) fixed."""
        follower.model.fix_parameter(follower.p_ex, exchanges)
        self._solver.update(follower.model)
        res = self._solver.solve()
        if not res.status.ok or res.x is None:
            return FollowerResponse(res.status, res.message, float("nan"), None, None, None, res)
        dlmp = follower.dlmp(res.row_duals) if res.row_duals is not None else None
        return FollowerResponse(res.status, res.message, float(res.objective), res.x,
                                res.row_duals, dlmp, res)


def certify(single_level_cost: float, response: FollowerResponse,
            tolerance: float = 1e-6) -> Certificate:
    """Compare ``c'y`` of a single-level solution with the follower's own optimum."""
    if not response.ok:
        return Certificate(False, single_level_cost, float("nan"), float("nan"), tolerance,
                           f"the follower LP at the leader's exchanges is "
                           f"{response.status.value}")
    err = abs(single_level_cost - response.cost) / max(1.0, abs(response.cost))
    passed = bool(err <= tolerance)
    message = ("follower cost equals the follower's optimum" if passed else
               f"follower cost {single_level_cost:.9g} differs from the follower's optimum "
               f"{response.cost:.9g} (relative {err:.3g} > {tolerance:g})")
    return Certificate(passed, single_level_cost, response.cost, err, tolerance, message)


@dataclass(frozen=True)
class BestPrice:
    """The optimistic leader's best payment over the follower's dual-optimal face."""

    status: SolveStatus
    payment: float
    lam: np.ndarray | None


def best_price_for_leader(form: MatrixForm, exchanges: np.ndarray, optimum: float,
                          options: SolverOptions | None = None) -> BestPrice:
    """``min λ'E p`` s.t. ``A'λ - G'μ = c``, ``μ >= 0``, dual objective = ``optimum``.

    Parameters
    ----------
    form
        The follower's matrix form (its parameter order is that of ``exchanges.ravel()``).
    exchanges
        The leader's exchanges, in the order of ``form.p_cols``.
    optimum
        The follower's optimal cost at these exchanges (without the objective offset).
    """
    p = np.asarray(exchanges, dtype=float).ravel()
    rhs = form.b + form.E @ p
    m = LinearModel("dual-face")
    n_eq, n_in = form.A.shape[0], form.G.shape[0]
    lam = m.add_variables("lambda", (pd.RangeIndex(n_eq),))
    mu = m.add_variables("mu", (pd.RangeIndex(n_in),), 0.0)
    stat = m.add_constraints("stationarity", (pd.RangeIndex(form.n_y),), "==", form.c)
    at, gt = form.A.tocoo(), form.G.tocoo()
    m.add_terms(stat.ids[at.col], lam.ids[at.row], at.data)
    m.add_terms(stat.ids[gt.col], mu.ids[gt.row], -gt.data)
    # weak duality caps the dual objective at the optimum: ">=" (less a hair) is the face
    target = optimum - form.offset
    value = m.add_constraints("dual_objective", (pd.RangeIndex(1),), ">=",
                              target - 1e-9 * max(1.0, abs(target)))
    m.add_terms(value.ids[0], lam.ids, rhs)
    m.add_terms(value.ids[0], mu.ids, -form.h)
    m.add_objective(lam.ids, form.E @ p)
    solver = HighsSolver(SolverOptions(primal_feasibility_tolerance=1e-9,
                                       dual_feasibility_tolerance=1e-9,
                                       threads=(options.threads if options else None)))
    solver.load(m)
    res = solver.solve(duals=False)
    if res.status.ok and res.x is not None:
        return BestPrice(res.status, float(res.objective), res.x[lam.ids])
    return BestPrice(res.status, float("nan"), None)
