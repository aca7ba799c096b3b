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
from ..model.linear import LinearModel
from ..model.lv_community import add_community


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


def _leader(case: Case, periods):
    """The leader's model (its binaries are fixed per assignment by the caller)."""
    model = LinearModel("leader")
    blocks = [add_community(model, case, c, periods, name=c.name) for c in case.communities]
    return model, blocks


def enumerate_bilevel(case: Case, pricing: str = "dlmp", *, start=None,
                      max_nodes: int = 200_000) -> EnumerationResult:
    """The optimistic bilevel optimum of ``case`` (one horizon) by enumeration."""
    periods = case.periods(start)
    leader, blocks = _leader(case, periods)
    la = leader.arrays
    follower = build_follower(case, periods)
    f = _Follower(follower.model)
    n_l = leader.n_cols
    ints = np.flatnonzero(la.integer)
    p_ex = np.vstack([b.p_ex.ids for b in blocks]).ravel()  # order of the follower's p
    dt = case.step_h

    # variable layout: [leader x | follower y | multipliers]
    ny, nm = f.y.size, f.n_mult
    n = n_l + ny + nm
    off_y, off_m = n_l, n_l + ny
    k = 0
    mult = {}
    for name, size in (("eq", f.eq.size), ("lo_row", f.lo_rows.size),
                       ("hi_row", f.hi_rows.size), ("lo_col", f.lo_cols.size),
                       ("hi_col", f.hi_cols.size)):
        mult[name] = off_m + k + np.arange(size)
        k += size

    # equalities: leader rows with lo == hi, follower rows with lo == hi, stationarity
    rows_eq, b_eq = [], []
    rows_ub, b_ub = [], []
    lm = la.matrix.tocsr()
    pad = lambda mat, left, right: sp.hstack(  # noqa: E731
        [sp.csr_matrix((mat.shape[0], left)), mat, sp.csr_matrix((mat.shape[0], right))])
    leq = np.flatnonzero(la.row_lower == la.row_upper)
    rows_eq.append(pad(lm[leq], 0, ny + nm))
    b_eq.append(la.row_lower[leq])
    for side, sign in ((la.row_upper, 1.0), (la.row_lower, -1.0)):
        r = np.flatnonzero(np.isfinite(side) & (la.row_lower != la.row_upper))
        rows_ub.append(pad(sign * lm[r], 0, ny + nm))
        b_ub.append(sign * side[r])

    # follower rows: a_y y + a_p p (p = leader's exchange columns)
    def follower_rows(idx):
        ap = f.Ap[idx]
        mat = sp.lil_matrix((idx.size, n))
        mat[:, off_y:off_m] = f.Ay[idx]
        coo = ap.tocoo()
        for r_, c_, v_ in zip(coo.row, coo.col, coo.data, strict=True):
            mat[r_, p_ex[c_]] += v_
        return mat.tocsr()

    rows_eq.append(follower_rows(f.eq))
    b_eq.append(f.row_lo[f.eq])
    if f.hi_rows.size:
        rows_ub.append(follower_rows(f.hi_rows))
        b_ub.append(f.row_hi[f.hi_rows])
    if f.lo_rows.size:
        rows_ub.append(-follower_rows(f.lo_rows))
        b_ub.append(-f.row_lo[f.lo_rows])

    # stationarity: c = Ay' (π_eq + π_lo - π_hi) + (ρ_lo - ρ_hi)
    st = sp.lil_matrix((ny, n))
    for name, rows, sign in (("eq", f.eq, 1.0), ("lo_row", f.lo_rows, 1.0),
                             ("hi_row", f.hi_rows, -1.0)):
        block = (sign * f.Ay[rows].T).tocoo()
        for r_, c_, v_ in zip(block.row, block.col, block.data, strict=True):
            st[r_, mult[name][c_]] += v_
    for name, cols, sign in (("lo_col", f.lo_cols, 1.0), ("hi_col", f.hi_cols, -1.0)):
        for i, col in enumerate(cols):
            st[col, mult[name][i]] += sign
    rows_eq.append(st.tocsr())
    b_eq.append(f.c)

    A_eq = sp.vstack(rows_eq, format="csr")
    b_eq = np.concatenate(b_eq)
    A_ub = sp.vstack([r for r in rows_ub if r.shape[0]], format="csr")
    b_ub = np.concatenate([b for b in b_ub if b.size])

    bounds_lo = np.concatenate([la.col_lower, f.col_lo, np.full(nm, -np.inf)])
    bounds_hi = np.concatenate([la.col_upper, f.col_hi, np.full(nm, np.inf)])
    sign_free = mult["eq"]
    nonneg = np.setdiff1d(np.arange(off_m, n), sign_free)
    bounds_lo[nonneg] = 0.0

    # complementarity pairs: (multiplier column, slack as (row vector, constant))
    pairs = []  # (mult col, dense slack coefficient row, slack constant)
    fr_hi = follower_rows(f.hi_rows) if f.hi_rows.size else None
    fr_lo = follower_rows(f.lo_rows) if f.lo_rows.size else None
    for i, r in enumerate(f.hi_rows):
        pairs.append((mult["hi_row"][i], -fr_hi[i], f.row_hi[r]))
    for i, r in enumerate(f.lo_rows):
        pairs.append((mult["lo_row"][i], fr_lo[i], -f.row_lo[r]))
    for i, col in enumerate(f.lo_cols):
        pairs.append((mult["lo_col"][i], _unit(n, off_y + col), -f.col_lo[col]))
    for i, col in enumerate(f.hi_cols):
        pairs.append((mult["hi_col"][i], -_unit(n, off_y + col), f.col_hi[col]))

    # objective: leader's own costs + payment
    obj = np.zeros(n)
    obj[:n_l] = la.cost
    const = la.offset
    if pricing == "dlmp":
        # payment λ'E p = c'y - Σ π_eq·lo_eq - Σ π_lo·lo + Σ π_hi·hi - Σ ρ_lo·l + Σ ρ_hi·u
        # (strong duality, implied by complementarity at every bilevel-feasible node)
        obj[off_y:off_m] += f.c
        obj[mult["eq"]] -= f.row_lo[f.eq]
        obj[mult["lo_row"]] -= f.row_lo[f.lo_rows]
        obj[mult["hi_row"]] += f.row_hi[f.hi_rows]
        obj[mult["lo_col"]] -= f.col_lo[f.lo_cols]
        obj[mult["hi_col"]] += f.col_hi[f.hi_cols]
    elif pricing == "tariff":
        # p = imp - exp, paid at buy and sell: add two columns per exchange
        buy = case.prices["tariff_buy_per_mwh"].loc[periods].to_numpy()
        sell = case.prices["tariff_sell_per_mwh"].loc[periods].to_numpy()
        ne = p_ex.size
        A_eq = sp.hstack([A_eq, sp.csr_matrix((A_eq.shape[0], 2 * ne))], format="csr")
        A_ub = sp.hstack([A_ub, sp.csr_matrix((A_ub.shape[0], 2 * ne))], format="csr")
        split = sp.lil_matrix((ne, n + 2 * ne))
        for i, col in enumerate(p_ex):
            split[i, col] = 1.0
            split[i, n + i] = -1.0
            split[i, n + ne + i] = 1.0
        A_eq = sp.vstack([A_eq, split.tocsr()], format="csr")
        b_eq = np.concatenate([b_eq, np.zeros(ne)])
        obj = np.concatenate([obj, dt * np.tile(buy, ne // len(periods)),
                              -dt * np.tile(sell, ne // len(periods))])
        bounds_lo = np.concatenate([bounds_lo, np.zeros(2 * ne)])
        bounds_hi = np.concatenate([bounds_hi, np.full(2 * ne, np.inf)])
        pairs = [(m_, sp.hstack([s_, sp.csr_matrix((1, 2 * ne))]).tocsr(), c_)
                 for m_, s_, c_ in pairs]
    else:
        raise ValueError(f"unknown pricing {pricing!r}")
    n_all = obj.size
    slack_rows = sp.vstack([s for _, s, _ in pairs], format="csr") if pairs else None
    slack_const = np.array([c for _, _, c in pairs])
    mult_cols = np.array([m for m, _, _ in pairs], dtype=int)

    best = [np.inf, None]
    nodes = [0]
    feasible = 0

    def solve_lp(lo, hi, fix_mult, fix_slack):
        eq_extra = slack_rows[fix_slack] if fix_slack else None
        a_eq = A_eq if eq_extra is None else sp.vstack([A_eq, eq_extra], format="csr")
        # slack = s'z + const = 0  ->  s'z = -const
        beq = b_eq if eq_extra is None else np.concatenate([b_eq, -slack_const[fix_slack]])
        lo, hi = lo.copy(), hi.copy()
        lo[mult_cols[fix_mult]] = 0.0
        hi[mult_cols[fix_mult]] = 0.0
        return linprog(obj, A_ub=A_ub, b_ub=b_ub, A_eq=a_eq, b_eq=beq,
                       bounds=np.column_stack([lo, hi]), method="highs")

    def branch(lo, hi, fix_mult, fix_slack):
        nodes[0] += 1
        if nodes[0] > max_nodes:
            raise RuntimeError("enumeration exceeded max_nodes")
        res = solve_lp(lo, hi, fix_mult, fix_slack)
        fixed = set(fix_mult) | set(fix_slack)
        if res.status == 2:  # infeasible
            return False
        if res.status == 3:  # unbounded: branch on any open pair
            open_pairs = [i for i in range(len(pairs)) if i not in fixed]
            if not open_pairs:
                raise RuntimeError("unbounded bilevel-feasible node")
            i = open_pairs[0]
            a = branch(lo, hi, [*fix_mult, i], fix_slack)
            b = branch(lo, hi, fix_mult, [*fix_slack, i])
            return a or b
        if res.status != 0:
            raise RuntimeError(f"linprog failed: {res.message}")
        if res.fun + const >= best[0] - 1e-9 * max(1.0, abs(best[0])):
            return True
        z = res.x
        slack = slack_rows @ z + slack_const if pairs else np.zeros(0)
        mval = z[mult_cols] if pairs else np.zeros(0)
        viol = np.minimum(np.abs(mval), np.abs(slack))
        viol[list(fixed)] = 0.0
        if not pairs or viol.max() <= 1e-7:
            best[0], best[1] = res.fun + const, z
            return True
        i = int(np.argmax(viol))
        a = branch(lo, hi, [*fix_mult, i], fix_slack)
        b = branch(lo, hi, fix_mult, [*fix_slack, i])
        return a or b

    assignments = list(itertools.product((0.0, 1.0), repeat=ints.size))
    base_lo = np.concatenate([bounds_lo, np.zeros(n_all - bounds_lo.size)])[:n_all]
    base_hi = np.concatenate([bounds_hi, np.zeros(n_all - bounds_hi.size)])[:n_all]
    for values in assignments:
        lo, hi = base_lo.copy(), base_hi.copy()
        lo[ints] = np.maximum(lo[ints], values)
        hi[ints] = np.minimum(hi[ints], values)
        if np.any(lo[ints] > hi[ints]):
            continue
        if branch(lo, hi, [], []):
            feasible += 1
    if best[1] is None:
        raise RuntimeError("the bilevel problem is infeasible")
    z = best[1]
    y = z[off_y:off_m]
    return EnumerationResult(
        leader_cost=float(best[0]),
        follower_cost=float(f.c @ y + f.offset),
        exchanges=z[p_ex].reshape(len(blocks), len(periods)),
        assignments=len(assignments),
        feasible_assignments=feasible,
        nodes=nodes[0],
    )


def _unit(n: int, i: int) -> sp.csr_matrix:
    return sp.csr_matrix(([1.0], ([0], [i])), shape=(1, n))
