"""The follower solved on its own, the bilevel certificate and the price checks (model.md §5).

- :class:`FollowerOracle` solves the follower LP at given exchanges on a persistent HiGHS
  instance (each call changes only the exchanges' bounds).
- :func:`certify` checks what a single-level solution states about the follower
  (:class:`FollowerClaim`): its dispatch satisfies the follower's constraints (largest
  violation at most ``feasibility_tolerance``), its cost equals the follower's optimum at the
  same exchanges (relative ``tolerance``), and, where the leader is settled at the
  follower's duals (``dlmp``), its prices are duals of the follower at that optimum: their
  distance to the follower's dual-optimal face is at most ``price_tolerance``. A price below
  (or above) the range LP duality allows fails, and the message names the range.
- :func:`duals_at_bound` and :func:`enlarge_dual_big_m`: the check that no follower dual
  sits at its big-M bound and the tenfold enlargement when one does (the exact method and
  LDD-ADMM's coordinator); rows treated as equalities have no big-M and are not checked;
- :func:`best_price_for_leader` solves, at given exchanges, ``min λ'E p`` over the follower's
  whole dual-optimal face without any big-M: the price an optimistic leader is entitled to.
  The exact method compares it with the price its big-M model chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model.follower import Follower
from ..model.formulation import Formulation
from ..model.kkt import KKTSystem, MatrixForm, matrix_form
from ..model.linear import LinearModel, Variables
from ..results.result import Certificate
from ..solvers.highs import HighsResult, HighsSolver, SolverOptions, SolveStatus

#: A dual is "at its bound" when it reaches this fraction of its big-M.
AT_BOUND = 1.0 - 1e-6
#: How much a dual big-M at its bound is enlarged.
ENLARGEMENT = 10.0
#: Largest violation of a follower row or bound the certificate accepts (MW, MVAr, pu²).
FEASIBILITY_TOLERANCE = 1e-6
#: Largest distance of the leader's prices to the follower's dual-optimal face the
#: certificate accepts, relative to the largest price (at least 1 per MWh).
PRICE_TOLERANCE = 1e-6


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


@dataclass(frozen=True)
class FollowerClaim:
    """What a single-level solution states about the follower, for :func:`certify`.

    Attributes
    ----------
    exchanges
        The leader's exchanges (community × period, MW).
    dispatch
        One value per column of the follower's model (its exchange columns are replaced by
        ``exchanges``).
    dlmp
        The prices the leader is settled at (bus × period, per MWh) when they come from the
        follower's duals (``dlmp`` pricing); None otherwise.
    """

    exchanges: np.ndarray
    dispatch: np.ndarray
    dlmp: np.ndarray | None = None

    @classmethod
    def of(cls, form: Formulation, x: np.ndarray) -> FollowerClaim:
        """The claim of a solution ``x`` of a formulation that holds the follower."""
        embedding = form.kkt.primal if form.kkt is not None else form.primal
        if embedding is None:
            raise ValueError(f"the {form.method} model holds no follower to certify")
        dlmp = None
        if form.kkt is not None and form.pricing == "dlmp":
            lam, _mu = form.kkt.duals(x)
            dlmp = form.follower.dlmp_from_kkt(form.kkt.form, lam)
        return cls(form.exchanges(x), x[embedding.col_map], dlmp)

    def values(self, follower: Follower) -> np.ndarray:
        """The dispatch with the exchanges in their columns."""
        values = np.asarray(self.dispatch, dtype=float).copy()
        values[follower.p_ex.ids] = np.asarray(self.exchanges, dtype=float).reshape(
            follower.p_ex.shape)
        return values


def _block_of(blocks, index: int) -> str:
    for block in blocks:
        if block.ids.size and block.ids.min() <= index <= block.ids.max():
            return block.name
    return "?"


def primal_violation(model: LinearModel, x: np.ndarray) -> tuple[float, str | None]:
    """Largest violation of ``model``'s rows and non-parameter column bounds at ``x``, and
    the block where it occurs (None when nothing is violated)."""
    a = model.arrays
    act = a.matrix @ x
    with np.errstate(invalid="ignore"):
        rows = np.fmax(a.row_lower - act, act - a.row_upper)
        cols = np.fmax(a.col_lower - x, x - a.col_upper)
    cols[a.parameter] = -np.inf
    worst_row = int(np.argmax(rows)) if rows.size else -1
    worst_col = int(np.argmax(cols)) if cols.size else -1
    row_v = rows[worst_row] if rows.size else -np.inf
    col_v = cols[worst_col] if cols.size else -np.inf
    value = float(max(row_v, col_v, 0.0))
    if value == 0.0:
        return 0.0, None
    if row_v >= col_v:
        return value, _block_of(model.constraints.values(), worst_row)
    return value, f"{_block_of(model.variables.values(), worst_col)} (bound)"


def certify(follower: Follower, claim: FollowerClaim, response: FollowerResponse, *,
            tolerance: float = 1e-6, feasibility_tolerance: float = FEASIBILITY_TOLERANCE,
            price_tolerance: float = PRICE_TOLERANCE,
            options: SolverOptions | None = None) -> Certificate:
    """Certify a single-level solution's follower side (see the module docstring).

    Parameters
    ----------
    follower
        The follower's model (its exchanges as parameters).
    claim
        What the solution states: exchanges, dispatch and, in ``dlmp`` pricing, prices.
    response
        The follower LP solved alone at ``claim.exchanges`` (:class:`FollowerOracle`).
    tolerance
        Relative tolerance of the cost check; also how far below the optimum the dual
        objective of the prices' duals may be.
    feasibility_tolerance
        Largest accepted violation of a follower row or bound.
    price_tolerance
        Largest accepted distance (per MWh, relative to the largest price) of the prices
        to the follower's dual-optimal face.
    """
    dispatch = claim.values(follower)
    violation, where = primal_violation(follower.model, dispatch)
    cost = follower.cost(dispatch)
    base = dict(follower_cost=cost, tolerance=tolerance, primal_violation=violation,
                primal_violation_at=where, feasibility_tolerance=feasibility_tolerance)
    problems = []
    if violation > feasibility_tolerance:
        problems.append(f"the follower dispatch violates its constraints by {violation:.3g} "
                        f"(in {where}; tolerance {feasibility_tolerance:g})")
    if not response.ok:
        problems.append(f"the follower LP at the leader's exchanges is "
                        f"{response.status.value}")
        return Certificate(False, follower_cost_lp=float("nan"), relative_error=float("nan"),
                           message="; ".join(problems), **base)
    err = abs(cost - response.cost) / max(1.0, abs(response.cost))
    if err > tolerance:
        problems.append(f"follower cost {cost:.9g} differs from the follower's optimum "
                        f"{response.cost:.9g} (relative {err:.3g} > {tolerance:g})")
    price = None
    if claim.dlmp is not None:
        price = check_prices(follower, claim, response.cost, slack=tolerance,
                             tolerance=price_tolerance, options=options)
        if not price.ok:
            problems.append(price.message)
    passed = not problems
    message = ("the follower dispatch is feasible and optimal"
               + ("" if price is None else "; the prices are follower duals at that optimum")
               if passed else "; ".join(problems))
    return Certificate(
        passed, follower_cost_lp=response.cost, relative_error=err, message=message,
        price_distance=None if price is None else price.distance,
        price_tolerance=None if price is None else price.threshold,
        price_range_ok=None if price is None else price.ok,
        price_at=None if price is None else price.at,
        price_range=None if price is None else price.range, **base)


def _dual_face(form: MatrixForm, exchanges: np.ndarray, optimum: float, slack: float
               ) -> tuple[LinearModel, Variables, Variables]:
    """``A'λ - G'μ = c``, ``μ >= 0``, dual objective ``>= optimum - slack``: the follower's
    dual-optimal face at ``exchanges`` (weak duality caps the dual objective at the
    optimum), without any big-M."""
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
    target = optimum - form.offset
    value = m.add_constraints("dual_objective", (pd.RangeIndex(1),), ">=", target - slack)
    m.add_terms(value.ids[0], lam.ids, rhs)
    m.add_terms(value.ids[0], mu.ids, -form.h)
    return m, lam, mu


def _solve_face(m: LinearModel, options: SolverOptions | None) -> HighsResult:
    solver = HighsSolver(SolverOptions(primal_feasibility_tolerance=1e-9,
                                       dual_feasibility_tolerance=1e-9,
                                       threads=(options.threads if options else None)))
    solver.load(m)
    return solver.solve(duals=False)


@dataclass(frozen=True)
class PriceCheck:
    """The leader's prices against the follower's dual-optimal face.

    Attributes
    ----------
    distance
        Smallest largest difference (per MWh) between the prices and the DLMPs of a dual
        solution on the face; NaN when the face could not be searched.
    threshold
        The distance accepted (per MWh).
    at
        The bus and period of the price farthest from the face's (when it fails).
    range
        The lowest and highest DLMP the face allows there (when it fails).
    """

    ok: bool
    distance: float
    threshold: float
    message: str
    at: str | None = None
    range: tuple[float, float] | None = None


def check_prices(follower: Follower, claim: FollowerClaim, optimum: float, *,
                 slack: float = 1e-6, tolerance: float = PRICE_TOLERANCE,
                 options: SolverOptions | None = None) -> PriceCheck:
    """Are ``claim.dlmp`` duals of the follower at its optimum ``optimum``?

    One LP: ``min t`` s.t. ``|λ_k / Δt - π_k| <= t`` for every active-balance row ``k`` (bus
    and period), ``(λ, μ)`` on the dual-optimal face with the dual objective at least
    ``optimum - slack · max(1, |optimum|)`` (``slack``: the cost check's tolerance). If ``t``
    exceeds the threshold, two more LPs give the range of the worst price on the face (the
    dual objective at the optimum to a relative 1e-9), for the message.
    """
    form = matrix_form(follower.model)
    prices = np.asarray(claim.dlmp, dtype=float)
    threshold = tolerance * max(1.0, float(np.abs(prices).max()) if prices.size else 1.0)
    m, lam, _mu = _dual_face(form, claim.exchanges, optimum,
                             slack * max(1.0, abs(optimum)))
    rows = np.searchsorted(form.eq_rows, follower.mv.p_balance.ids).ravel()
    dt = follower.step_h
    t = m.add_variables("distance", (pd.RangeIndex(1),), 0.0)
    index = pd.RangeIndex(rows.size)
    for name, sense, sign in (("above", "<=", -1.0), ("below", ">=", 1.0)):
        block = m.add_constraints(name, (index,), sense, dt * prices.ravel())
        m.add_terms(block.ids, lam.ids[rows], 1.0)
        m.add_terms(block.ids, t.ids[0], sign * dt)
    m.add_objective(t.ids, 1.0)
    res = _solve_face(m, options)
    if not res.status.ok or res.x is None:
        return PriceCheck(False, float("nan"), threshold,
                          f"the follower's dual-optimal face could not be searched "
                          f"({res.status.value})")
    distance = float(res.x[t.ids[0]])
    if distance <= threshold:
        return PriceCheck(True, distance, threshold, "the prices are follower duals")
    gap = np.abs(res.x[lam.ids[rows]] / dt - prices.ravel())
    k = int(np.argmax(gap))
    bus_pos, period = np.unravel_index(k, follower.mv.p_balance.shape)
    at = f"bus {follower.mv.network.buses[bus_pos]}, {follower.periods[period]}"
    # the range itself on the face proper (the dual objective at the optimum to 1e-9)
    low, high = (_price_bound(form, claim.exchanges, optimum, 1e-9, rows[k], sense, options)
                 / dt for sense in (1.0, -1.0))
    price = prices.ravel()[k]
    side = ("below" if price < low - threshold else "above" if price > high + threshold
            else "inside")
    message = (f"the DLMP at {at} is {price:.9g} per MWh, {side} the follower's "
               f"dual-optimal range [{low:.9g}, {high:.9g}] at the leader's exchanges"
               if side != "inside" else
               f"the DLMPs are no follower duals at the leader's exchanges (distance "
               f"{distance:.3g} per MWh to the dual-optimal face; the one at {at} is "
               f"{price:.9g}, inside its own range [{low:.9g}, {high:.9g}])")
    return PriceCheck(False, distance, threshold, message, at, (float(low), float(high)))


def _price_bound(form: MatrixForm, exchanges: np.ndarray, optimum: float, slack: float,
                 row: int, sense: float, options: SolverOptions | None) -> float:
    """The smallest (``sense`` 1) or largest (-1) balance dual ``λ_row`` on the face."""
    m, lam, _mu = _dual_face(form, exchanges, optimum, slack * max(1.0, abs(optimum)))
    m.add_objective(lam.ids[row], sense)
    res = _solve_face(m, options)
    if res.status is SolveStatus.UNBOUNDED:
        return -sense * np.inf
    if not res.status.ok or res.x is None:
        return np.nan
    return float(res.x[lam.ids[row]])


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
        The follower's optimal cost at these exchanges (with the objective offset).
    """
    target = optimum - form.offset
    m, lam, _mu = _dual_face(form, exchanges, optimum, 1e-9 * max(1.0, abs(target)))
    m.add_objective(lam.ids, form.E @ np.asarray(exchanges, dtype=float).ravel())
    res = _solve_face(m, options)
    if res.status.ok and res.x is not None:
        return BestPrice(res.status, float(res.objective), res.x[lam.ids])
    return BestPrice(res.status, float("nan"), None)
