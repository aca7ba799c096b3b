"""An exact bilevel solver by enumeration, for tiny cases: the independent check of ``exact``.

It shares none of the exact method's weak points: no big-M (primal or dual), no dropped rows,
no generic KKT builder, no MILP solver. Every assignment of the leader's binaries is taken in
turn; with the binaries fixed, the remaining optimistic linear bilevel problem is solved
exactly by branching on the follower's complementarity conditions (Bard & Moore 1990): each
node is an LP (scipy's ``linprog``) in which some multipliers are fixed to zero and some
constraints to equality; a node whose LP solution is complementary is bilevel-feasible.

The follower's optimality conditions are written here from the raw rows and bounds of its
model (``lo <= a'y + a_p'p <= hi``, ``l <= y <= u``), one non-negative multiplier per finite
side, a free one for rows with ``lo == hi``: independently of
:func:`mosaik_bilevel.model.kkt.matrix_form`.

Cost grows as 2^(binaries) × (complementarity nodes): meant for a few periods, buses and
binaries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ..data.case import Case
from ..model.follower import build_follower
from ..model.linear import LinearModel, ModelArrays
from ..model.lv_community import add_community
from ..model.tariff import tariff_rates

#: The multiplier blocks, in their column order: follower rows with ``lo == hi`` (free), then
#: finite lower and upper row sides, then finite lower and upper column bounds (non-negative).
_MULTIPLIERS = ("eq", "lo_row", "hi_row", "lo_col", "hi_col")


@dataclass
class EnumerationResult:
    """Optimum found by enumeration."""

    leader_cost: float
    follower_cost: float
    exchanges: np.ndarray
    assignments: int
    feasible_assignments: int
    nodes: int


class _Follower:
    """The follower's optimality conditions in the variables (p, y, multipliers)."""

    def __init__(self, model: LinearModel):
        a = model.arrays
        m = a.matrix.tocsr()
        self.par = np.flatnonzero(a.parameter)
        self.y = np.flatnonzero(~a.parameter)
        self.c = a.cost[self.y]
        self.offset = a.offset
        self.Ay, self.Ap = m[:, self.y], m[:, self.par]
        lo, hi = a.row_lower, a.row_upper
        self.eq = np.flatnonzero(lo == hi)
        self.lo_rows = np.flatnonzero((lo != hi) & np.isfinite(lo))
        self.hi_rows = np.flatnonzero((lo != hi) & np.isfinite(hi))
        self.row_lo, self.row_hi = lo, hi
        cl, cu = a.col_lower[self.y], a.col_upper[self.y]
        self.lo_cols = np.flatnonzero(np.isfinite(cl))
        self.hi_cols = np.flatnonzero(np.isfinite(cu))
        self.col_lo, self.col_hi = cl, cu
        self.n_mult = (self.eq.size + self.lo_rows.size + self.hi_rows.size
                       + self.lo_cols.size + self.hi_cols.size)


@dataclass
class _Layout:
    """Columns of the single-level LP: ``[leader x | follower y | multipliers]``."""

    n_l: int
    ny: int
    nm: int
    p_ex: np.ndarray  # leader columns of the follower's parameters p, in the follower's order
    mult: dict[str, np.ndarray]  # columns of each multiplier block (see _MULTIPLIERS)

    @property
    def off_y(self) -> int:
        """First column of the follower's y."""
        return self.n_l

    @property
    def off_m(self) -> int:
        """First multiplier column."""
        return self.n_l + self.ny

    @property
    def n(self) -> int:
        """Number of columns."""
        return self.n_l + self.ny + self.nm


@dataclass
class _LP:
    """``min obj'z + const`` over ``a_eq z = b_eq``, ``a_ub z <= b_ub``, ``lo <= z <= hi``.

    ``pairs`` are the complementarity pairs ``(multiplier column, slack row, slack constant)``:
    the slack of a pair is ``row @ z + constant`` (non-negative at a feasible point).
    """

    obj: np.ndarray
    const: float
    a_eq: sp.csr_matrix
    b_eq: np.ndarray
    a_ub: sp.csr_matrix
    b_ub: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    pairs: list[tuple[int, sp.csr_matrix, float]]


def _leader(case: Case, periods):
    """The leader's model (its binaries are fixed per assignment by the caller)."""
    model = LinearModel("leader")
    blocks = [add_community(model, case, c, periods, name=c.name) for c in case.communities]
    return model, blocks


def _layout(n_l: int, f: _Follower, p_ex: np.ndarray) -> _Layout:
    """Place the leader's columns, the follower's y and its multipliers side by side."""
    off_m = n_l + f.y.size
    sizes = (f.eq.size, f.lo_rows.size, f.hi_rows.size, f.lo_cols.size, f.hi_cols.size)
    mult, k = {}, 0
    for name, size in zip(_MULTIPLIERS, sizes, strict=True):
        mult[name] = off_m + k + np.arange(size)
        k += size
    return _Layout(n_l=n_l, ny=f.y.size, nm=f.n_mult, p_ex=p_ex, mult=mult)


def _pad(mat, left: int, right: int):
    """``mat`` with ``left`` empty columns before it and ``right`` after it."""
    return sp.hstack([sp.csr_matrix((mat.shape[0], left)), mat,
                      sp.csr_matrix((mat.shape[0], right))])


def _leader_rows(la: ModelArrays, lay: _Layout) -> tuple[list, list, list, list]:
    """The leader's rows: equalities (``lo == hi``) and each finite side as ``<=``."""
    lm = la.matrix.tocsr()
    width = lay.ny + lay.nm
    leq = np.flatnonzero(la.row_lower == la.row_upper)
    rows_eq, b_eq = [_pad(lm[leq], 0, width)], [la.row_lower[leq]]
    rows_ub, b_ub = [], []
    for side, sign in ((la.row_upper, 1.0), (la.row_lower, -1.0)):
        r = np.flatnonzero(np.isfinite(side) & (la.row_lower != la.row_upper))
        rows_ub.append(_pad(sign * lm[r], 0, width))
        b_ub.append(sign * side[r])
    return rows_eq, b_eq, rows_ub, b_ub


def _follower_rows(f: _Follower, lay: _Layout, idx: np.ndarray) -> sp.csr_matrix:
    """The follower's rows ``idx`` as ``a_y y + a_p p`` (p: the leader's exchange columns)."""
    mat = sp.lil_matrix((idx.size, lay.n))
    mat[:, lay.off_y:lay.off_m] = f.Ay[idx]
    coo = f.Ap[idx].tocoo()
    for r, c, v in zip(coo.row, coo.col, coo.data, strict=True):
        mat[r, lay.p_ex[c]] += v
    return mat.tocsr()


def _stationarity(f: _Follower, lay: _Layout) -> sp.csr_matrix:
    """Rows of ``Ay' (π_eq + π_lo - π_hi) + (ρ_lo - ρ_hi)`` (equal to ``c``)."""
    st = sp.lil_matrix((lay.ny, lay.n))
    for name, rows, sign in (("eq", f.eq, 1.0), ("lo_row", f.lo_rows, 1.0),
                             ("hi_row", f.hi_rows, -1.0)):
        block = (sign * f.Ay[rows].T).tocoo()
        for r, c, v in zip(block.row, block.col, block.data, strict=True):
            st[r, lay.mult[name][c]] += v
    for name, cols, sign in (("lo_col", f.lo_cols, 1.0), ("hi_col", f.hi_cols, -1.0)):
        for i, col in enumerate(cols):
            st[col, lay.mult[name][i]] += sign
    return st.tocsr()


def _constraints(la: ModelArrays, f: _Follower, lay: _Layout, fr_hi, fr_lo):
    """``(a_eq, b_eq, a_ub, b_ub)``: leader rows, follower rows (primal), stationarity.

    ``fr_hi`` and ``fr_lo`` are the follower's rows with a finite upper and lower side
    (:func:`_follower_rows`), ``None`` if there are none.
    """
    rows_eq, b_eq, rows_ub, b_ub = _leader_rows(la, lay)
    rows_eq.append(_follower_rows(f, lay, f.eq))
    b_eq.append(f.row_lo[f.eq])
    if fr_hi is not None:
        rows_ub.append(fr_hi)
        b_ub.append(f.row_hi[f.hi_rows])
    if fr_lo is not None:
        rows_ub.append(-fr_lo)
        b_ub.append(-f.row_lo[f.lo_rows])
    rows_eq.append(_stationarity(f, lay))
    b_eq.append(f.c)
    return (sp.vstack(rows_eq, format="csr"), np.concatenate(b_eq),
            sp.vstack([r for r in rows_ub if r.shape[0]], format="csr"),
            np.concatenate([b for b in b_ub if b.size]))


def _bounds(la: ModelArrays, f: _Follower, lay: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds: the models' own, free multipliers of equalities, others ``>= 0``."""
    lo = np.concatenate([la.col_lower, f.col_lo, np.full(lay.nm, -np.inf)])
    hi = np.concatenate([la.col_upper, f.col_hi, np.full(lay.nm, np.inf)])
    lo[np.setdiff1d(np.arange(lay.off_m, lay.n), lay.mult["eq"])] = 0.0
    return lo, hi


def _pairs(f: _Follower, lay: _Layout, fr_hi, fr_lo) -> list:
    """Complementarity pairs of the inequalities: multiplier column and its slack."""
    pairs = []
    for i, r in enumerate(f.hi_rows):
        pairs.append((lay.mult["hi_row"][i], -fr_hi[i], f.row_hi[r]))
    for i, r in enumerate(f.lo_rows):
        pairs.append((lay.mult["lo_row"][i], fr_lo[i], -f.row_lo[r]))
    for i, col in enumerate(f.lo_cols):
        pairs.append((lay.mult["lo_col"][i], _unit(lay.n, lay.off_y + col), -f.col_lo[col]))
    for i, col in enumerate(f.hi_cols):
        pairs.append((lay.mult["hi_col"][i], -_unit(lay.n, lay.off_y + col), f.col_hi[col]))
    return pairs


def _single_level(la: ModelArrays, f: _Follower, lay: _Layout) -> _LP:
    """Leader, follower and the follower's optimality conditions; the leader's own costs."""
    fr_hi = _follower_rows(f, lay, f.hi_rows) if f.hi_rows.size else None
    fr_lo = _follower_rows(f, lay, f.lo_rows) if f.lo_rows.size else None
    a_eq, b_eq, a_ub, b_ub = _constraints(la, f, lay, fr_hi, fr_lo)
    lo, hi = _bounds(la, f, lay)
    obj = np.zeros(lay.n)
    obj[:lay.n_l] = la.cost
    return _LP(obj=obj, const=la.offset, a_eq=a_eq, b_eq=b_eq, a_ub=a_ub, b_ub=b_ub,
               lo=lo, hi=hi, pairs=_pairs(f, lay, fr_hi, fr_lo))


def _add_dlmp_payment(obj: np.ndarray, f: _Follower, lay: _Layout) -> None:
    """Add the payment at the DLMPs, ``λ'E p``, to ``obj`` (in place) by strong duality.

    ``λ'E p = c'y - Σ π_eq·lo_eq - Σ π_lo·lo + Σ π_hi·hi - Σ ρ_lo·l + Σ ρ_hi·u``, implied by
    complementarity at every bilevel-feasible node.
    """
    obj[lay.off_y:lay.off_m] += f.c
    obj[lay.mult["eq"]] -= f.row_lo[f.eq]
    obj[lay.mult["lo_row"]] -= f.row_lo[f.lo_rows]
    obj[lay.mult["hi_row"]] += f.row_hi[f.hi_rows]
    obj[lay.mult["lo_col"]] -= f.col_lo[f.lo_cols]
    obj[lay.mult["hi_col"]] += f.col_hi[f.hi_cols]


def _with_tariff(lp: _LP, case: Case, periods, p_ex: np.ndarray) -> _LP:
    """``lp`` with each exchange split as ``p = imp - exp``, paid at the buy and sell tariff.

    Adds the columns ``imp`` (all exchanges) then ``exp`` (all exchanges), both ``>= 0``.
    """
    buy, sell = tariff_rates(case.prices, periods)
    ne, n = p_ex.size, lp.obj.size
    split = sp.lil_matrix((ne, n + 2 * ne))
    for i, col in enumerate(p_ex):
        split[i, col] = 1.0
        split[i, n + i] = -1.0
        split[i, n + ne + i] = 1.0
    a_eq = sp.hstack([lp.a_eq, sp.csr_matrix((lp.a_eq.shape[0], 2 * ne))], format="csr")
    a_ub = sp.hstack([lp.a_ub, sp.csr_matrix((lp.a_ub.shape[0], 2 * ne))], format="csr")
    reps = ne // len(periods)
    return _LP(
        obj=np.concatenate([lp.obj, case.step_h * np.tile(buy, reps),
                            -case.step_h * np.tile(sell, reps)]),
        const=lp.const,
        a_eq=sp.vstack([a_eq, split.tocsr()], format="csr"),
        b_eq=np.concatenate([lp.b_eq, np.zeros(ne)]),
        a_ub=a_ub,
        b_ub=lp.b_ub,
        lo=np.concatenate([lp.lo, np.zeros(2 * ne)]),
        hi=np.concatenate([lp.hi, np.full(2 * ne, np.inf)]),
        pairs=[(m, sp.hstack([s, sp.csr_matrix((1, 2 * ne))]).tocsr(), c)
               for m, s, c in lp.pairs],
    )


def _priced(lp: _LP, pricing: str, f: _Follower, lay: _Layout, case: Case, periods) -> _LP:
    """``lp`` with the leader's payment for its exchanges at ``pricing`` in the objective."""
    if pricing == "dlmp":
        _add_dlmp_payment(lp.obj, f, lay)
        return lp
    if pricing == "tariff":
        return _with_tariff(lp, case, periods, lay.p_ex)
    raise ValueError(f"unknown pricing {pricing!r}")


class _Search:
    """Branching on the follower's complementarity pairs (Bard & Moore 1990), best first kept.

    Each node is ``lp`` with some multipliers fixed to zero and some slacks to zero.
    """

    def __init__(self, lp: _LP, max_nodes: int):
        self.lp = lp
        self.max_nodes = max_nodes
        self.n_pairs = len(lp.pairs)
        self.slack_rows = (sp.vstack([s for _, s, _ in lp.pairs], format="csr")
                           if lp.pairs else None)
        self.slack_const = np.array([c for _, _, c in lp.pairs])
        self.mult_cols = np.array([m for m, _, _ in lp.pairs], dtype=int)
        self.best_cost, self.best_z = np.inf, None
        self.nodes = 0

    def run(self, ints: np.ndarray) -> tuple[int, int]:
        """Search every 0/1 assignment of the columns ``ints``: (assignments, feasible ones)."""
        count, feasible = 0, 0
        for values in itertools.product((0.0, 1.0), repeat=ints.size):
            count += 1
            lo, hi = self.lp.lo.copy(), self.lp.hi.copy()
            lo[ints] = np.maximum(lo[ints], values)
            hi[ints] = np.minimum(hi[ints], values)
            if np.any(lo[ints] > hi[ints]):
                continue
            if self.branch(lo, hi, [], []):
                feasible += 1
        return count, feasible

    def _solve(self, lo, hi, fix_mult: list[int], fix_slack: list[int]):
        """The node's LP: multipliers of ``fix_mult`` and slacks of ``fix_slack`` at zero."""
        lp = self.lp
        a_eq, b_eq = lp.a_eq, lp.b_eq
        if fix_slack:  # slack = s'z + const = 0  ->  s'z = -const
            a_eq = sp.vstack([a_eq, self.slack_rows[fix_slack]], format="csr")
            b_eq = np.concatenate([b_eq, -self.slack_const[fix_slack]])
        lo, hi = lo.copy(), hi.copy()
        lo[self.mult_cols[fix_mult]] = 0.0
        hi[self.mult_cols[fix_mult]] = 0.0
        return linprog(lp.obj, A_ub=lp.a_ub, b_ub=lp.b_ub, A_eq=a_eq, b_eq=b_eq,
                       bounds=np.column_stack([lo, hi]), method="highs")

    def branch(self, lo, hi, fix_mult: list[int], fix_slack: list[int]) -> bool:
        """Search the node; ``False`` if it and all below it are infeasible."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise RuntimeError("enumeration exceeded max_nodes")
        res = self._solve(lo, hi, fix_mult, fix_slack)
        fixed = set(fix_mult) | set(fix_slack)
        if res.status == 2:  # infeasible
            return False
        if res.status == 3:  # unbounded: branch on any open pair
            open_pairs = [i for i in range(self.n_pairs) if i not in fixed]
            if not open_pairs:
                raise RuntimeError("unbounded bilevel-feasible node")
            return self._split(lo, hi, fix_mult, fix_slack, open_pairs[0])
        if res.status != 0:
            raise RuntimeError(f"linprog failed: {res.message}")
        cost = res.fun + self.lp.const
        if cost >= self.best_cost - 1e-9 * max(1.0, abs(self.best_cost)):
            return True
        viol = self._violation(res.x, fixed)
        if not self.n_pairs or viol.max() <= 1e-7:
            self.best_cost, self.best_z = cost, res.x
            return True
        return self._split(lo, hi, fix_mult, fix_slack, int(np.argmax(viol)))

    def _violation(self, z: np.ndarray, fixed: set[int]) -> np.ndarray:
        """Per pair, ``min(|multiplier|, |slack|)`` at ``z`` (zero for the fixed pairs)."""
        if not self.n_pairs:
            return np.zeros(0)
        slack = self.slack_rows @ z + self.slack_const
        viol = np.minimum(np.abs(z[self.mult_cols]), np.abs(slack))
        viol[list(fixed)] = 0.0
        return viol

    def _split(self, lo, hi, fix_mult: list[int], fix_slack: list[int], i: int) -> bool:
        """Branch on pair ``i``: its multiplier at zero, then its slack at zero."""
        a = self.branch(lo, hi, [*fix_mult, i], fix_slack)
        b = self.branch(lo, hi, fix_mult, [*fix_slack, i])
        return a or b


def enumerate_bilevel(case: Case, pricing: str = "dlmp", *, start=None,
                      max_nodes: int = 200_000) -> EnumerationResult:
    """The optimistic bilevel optimum of ``case`` (one horizon) by enumeration."""
    periods = case.periods(start)
    leader, blocks = _leader(case, periods)
    follower = build_follower(case, periods)
    f = _Follower(follower.model)
    p_ex = np.vstack([b.p_ex.ids for b in blocks]).ravel()  # order of the follower's p
    lay = _layout(leader.n_cols, f, p_ex)
    lp = _priced(_single_level(leader.arrays, f, lay), pricing, f, lay, case, periods)
    lp = _tie_transformers(lp, blocks, follower, f, lay)
    search = _Search(lp, max_nodes)
    assignments, feasible = search.run(np.flatnonzero(leader.arrays.integer))
    if search.best_z is None:
        raise RuntimeError("the bilevel problem is infeasible")
    y = search.best_z[lay.off_y:lay.off_m]
    return EnumerationResult(
        leader_cost=float(search.best_cost),
        follower_cost=float(f.c @ y + f.offset),
        exchanges=search.best_z[p_ex].reshape(len(blocks), len(periods)),
        assignments=assignments,
        feasible_assignments=feasible,
        nodes=search.nodes,
    )


def _tie_transformers(lp: _LP, blocks, follower, f: _Follower, lay: _Layout) -> _LP:
    """A fixed-tap community's MV voltage is the follower's at its bus (an upper-level
    constraint on the follower's y, as in the exact method)."""
    rows = []
    mv = follower.mv
    n = lp.a_eq.shape[1]  # tariff pricing adds columns after the layout's
    for b in blocks:
        if b.w_mv is None:
            continue
        pos = mv.network.position.at[int(b.community.mv_bus)]
        for t, col in enumerate(b.w_mv.ids):
            if pos == 0:
                lp.lo[col] = lp.hi[col] = mv.w_root
                continue
            y_col = lay.off_y + int(np.searchsorted(f.y, mv.w.ids[pos - 1, t]))
            rows.append(_unit(n, int(col)) - _unit(n, y_col))
    if not rows:
        return lp
    lp.a_eq = sp.vstack([lp.a_eq, *rows], format="csr")
    lp.b_eq = np.concatenate([lp.b_eq, np.zeros(len(rows))])
    return lp


def _unit(n: int, i: int) -> sp.csr_matrix:
    """Row vector of length ``n`` with a one at ``i``."""
    return sp.csr_matrix(([1.0], ([0], [i])), shape=(1, n))
