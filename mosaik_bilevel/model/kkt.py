"""An LP's KKT conditions as mixed-integer constraints, built from its matrices: model.md §5.

:func:`matrix_form` turns any LP written as a :class:`~mosaik_bilevel.model.linear.LinearModel`
with parameter columns ``p`` into::

    min c'y + offset   s.t.   A y = b + E p   (dual λ, free)
                              G y <= h        (dual μ >= 0; every finite bound is a row of G)

:func:`embed` copies such a model into another one (its parameters mapped onto the host's
variables), and :func:`add_kkt` adds, on top of that copy, the dual variables, stationarity
``c - A'λ + G'μ = 0`` and the complementarity of every row of ``G`` with one binary β::

    μ_i <= Mμ_i β_i,     h_i - G_i y <= Ms_i (1 - β_i)

Primal big-Ms ``Ms`` are exact: the largest slack over the model's implied box (interval
arithmetic). Rows that no point of that box can make tight are *dropped* from the
complementarity (their μ is zero). Dual big-Ms ``Mμ`` are the caller's (see
:mod:`mosaik_bilevel.model.big_m`), because no generic value is safe.

Rows that *every* point of the box makes tight (a fixed column ``l = y = u``: both its bound
rows; a row the bounds pin to its right-hand side) need no complementarity: ``μ_i · 0 = 0``
holds whatever ``μ_i``. They get a dual ``ν_i >= 0`` with neither binary nor big-M, and the
two bound rows of a fixed column share one *free* dual (the difference of their two μ, which
is all stationarity and the payment see). The box holds for every value the parameters may
take (parameters enter equality rows only, and implied bounds cover their whole range), so
a row found tight over it is tight whatever the leader decides. Rows that are tight only
through the equalities, or only for some leader decisions, keep their pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ModelError
from .linear import Constraints, LinearModel, Variables


@dataclass(frozen=True)
class MatrixForm:
    """An LP in the form ``min c'y + offset, A y = b + E p, G y <= h``.

    Rows of ``G`` come first from ``<=`` rows, then negated ``>=`` rows (a ``range`` row
    gives one of each, or an equality when its sides are equal), then finite upper and lower
    column bounds; ``g_block`` names the block each came from (a bound row is
    named ``"<variable block>.ub"`` or ``".lb"``) and ``g_source`` is its row (or column)
    in the source model.
    """

    c: np.ndarray
    offset: float
    A: sp.csr_matrix
    b: np.ndarray
    E: sp.csr_matrix
    G: sp.csr_matrix
    h: np.ndarray
    y_cols: np.ndarray
    p_cols: np.ndarray
    eq_rows: np.ndarray
    g_kind: np.ndarray
    g_source: np.ndarray
    g_block: np.ndarray
    y_box: tuple[np.ndarray, np.ndarray]
    p_box: tuple[np.ndarray, np.ndarray]

    @property
    def n_y(self) -> int:
        return self.y_cols.size

    def always_tight(self) -> np.ndarray:
        """Rows of ``G`` whose slack is zero at every point of the box (a mask)."""
        _smin, smax = self.slack_range()
        return smax <= 1e-9 * (1.0 + np.abs(self.h))

    def opposite_rows(self, rows: np.ndarray) -> np.ndarray:
        """For each of ``rows``, the row among them that bounds the same expression from the
        other side with the same value (``G_j = -G_i``, ``h_j = -h_i``: the lower bound of a
        fixed column, the ``>=`` half of a range row with equal sides), or -1."""
        rows = np.asarray(rows, dtype=np.int64)
        partner = np.full(rows.size, -1, dtype=np.int64)
        kind = self.g_kind[rows]
        family = np.isin(kind, ("ub", "lb")).astype(np.int64)
        upper = np.isin(kind, ("ub", "le"))
        lower_at = {(f, s): r for f, s, r, up in zip(family, self.g_source[rows], rows, upper,
                                                     strict=True) if not up}
        for i, (f, src, r) in enumerate(zip(family, self.g_source[rows], rows, strict=True)):
            j = lower_at.get((f, src)) if upper[i] else None
            if j is not None and self.h[j] == -self.h[r]:
                partner[i] = j
        return partner

    def slack_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest slack ``h - G y`` of each row of ``G`` over the box."""
        lo, hi = self.y_box
        g = self.G.tocoo()
        a, b = g.data * lo[g.col], g.data * hi[g.col]
        with np.errstate(invalid="ignore"):
            gmin = np.bincount(g.row, np.minimum(a, b), minlength=self.G.shape[0])
            gmax = np.bincount(g.row, np.maximum(a, b), minlength=self.G.shape[0])
        return self.h - gmax, self.h - gmin


def _row_senses(model: LinearModel) -> np.ndarray:
    sense = np.empty(model.n_rows, dtype="<U5")
    for block in model.constraints.values():
        sense[block.ids.ravel()] = block.sense
    return sense


def _row_blocks(model: LinearModel) -> np.ndarray:
    names = np.empty(model.n_rows, dtype=object)
    for block in model.constraints.values():
        names[block.ids.ravel()] = block.name
    return names


def _col_blocks(model: LinearModel) -> np.ndarray:
    names = np.empty(model.n_cols, dtype=object)
    for block in model.variables.values():
        names[block.ids.ravel()] = block.name
    return names


def matrix_form(model: LinearModel) -> MatrixForm:
    """The matrix form of an LP (see :class:`MatrixForm`); parameter columns become ``p``."""
    a = model.arrays
    if a.integer.any():
        raise ModelError(f"{model.name}: matrix_form needs an LP, the model has integers")
    y_cols = np.flatnonzero(~a.parameter)
    p_cols = np.flatnonzero(a.parameter)
    m = a.matrix.tocsr()
    sense = _row_senses(model)
    lo_row, hi_row = a.row_lower, a.row_upper
    ranged = sense == "range"
    eq = np.flatnonzero((sense == "==") | (ranged & (lo_row == hi_row)))
    le = np.flatnonzero((sense == "<=") | (ranged & (lo_row != hi_row) & np.isfinite(hi_row)))
    ge = np.flatnonzero((sense == ">=") | (ranged & (lo_row != hi_row) & np.isfinite(lo_row)))
    my, mp = m[:, y_cols], m[:, p_cols]
    if mp[np.concatenate([le, ge])].nnz:
        raise ModelError(f"{model.name}: parameters may only enter equality rows")
    box_lo, box_hi = a.box()
    ub = np.flatnonzero(np.isfinite(a.col_upper[y_cols]))
    lb = np.flatnonzero(np.isfinite(a.col_lower[y_cols]))
    n_y = y_cols.size
    eye = sp.identity(n_y, format="csr")
    G = sp.vstack([my[le], -my[ge], eye[ub], -eye[lb]], format="csr")
    h = np.concatenate([a.row_upper[le], -a.row_lower[ge], a.col_upper[y_cols][ub],
                        -a.col_lower[y_cols][lb]])
    rows, cols = _row_blocks(model), _col_blocks(model)
    g_block = np.concatenate([
        rows[le], rows[ge],
        np.array([f"{n}.ub" for n in cols[y_cols][ub]], dtype=object),
        np.array([f"{n}.lb" for n in cols[y_cols][lb]], dtype=object),
    ]).astype(object)
    g_kind = np.concatenate([np.full(le.size, "le"), np.full(ge.size, "ge"),
                             np.full(ub.size, "ub"), np.full(lb.size, "lb")])
    g_source = np.concatenate([le, ge, y_cols[ub], y_cols[lb]])
    return MatrixForm(
        c=a.cost[y_cols], offset=a.offset, A=my[eq], b=a.row_lower[eq], E=-mp[eq],
        G=G, h=h, y_cols=y_cols, p_cols=p_cols, eq_rows=eq, g_kind=g_kind,
        g_source=g_source, g_block=g_block,
        y_box=(box_lo[y_cols], box_hi[y_cols]), p_box=(box_lo[p_cols], box_hi[p_cols]),
    )


@dataclass(frozen=True)
class Embedding:
    """A copy of a source model inside a host model."""

    source: LinearModel
    prefix: str
    col_map: np.ndarray  # source column -> host column
    row_map: np.ndarray  # source row -> host row

    def ids(self, block: Variables | Constraints) -> np.ndarray:
        """Host ids of a source block, in the block's shape."""
        table = self.row_map if isinstance(block, Constraints) else self.col_map
        return table[block.ids]


def embed(host: LinearModel, source: LinearModel, parameters: dict[str, np.ndarray], *,
          prefix: str) -> Embedding:
    """Copy ``source``'s variables and constraints into ``host``.

    Parameters
    ----------
    parameters
        For every parameter block of ``source``: the host column ids (in the block's shape)
        that take its place.
    prefix
        Prefix of the copied block names.
    """
    a = source.arrays
    col_map = np.full(source.n_cols, -1, dtype=np.int64)
    for block in source.variables.values():
        ids = block.ids.ravel()
        if block.parameter:
            if block.name not in parameters:
                raise ModelError(f"parameter block {block.name!r} is not mapped")
            col_map[ids] = np.asarray(parameters[block.name]).reshape(block.shape).ravel()
            continue
        shape = block.shape
        new = host.add_variables(
            f"{prefix}.{block.name}", block.coords, a.col_lower[ids].reshape(shape),
            a.col_upper[ids].reshape(shape), integer=block.integer,
            implied_lower=a.implied_lower[ids].reshape(shape),
            implied_upper=a.implied_upper[ids].reshape(shape))
        col_map[ids] = new.ids.ravel()
    row_map = np.full(source.n_rows, -1, dtype=np.int64)
    for block in source.constraints.values():
        ids = block.ids.ravel()
        rhs = a.row_upper[ids] if block.sense == "<=" else a.row_lower[ids]
        new = host.add_constraints(f"{prefix}.{block.name}", block.coords, block.sense,
                                   rhs.reshape(block.shape))
        row_map[ids] = new.ids.ravel()
    coo = a.matrix.tocoo()
    host.add_terms(row_map[coo.row], col_map[coo.col], coo.data)
    return Embedding(source=source, prefix=prefix, col_map=col_map, row_map=row_map)


@dataclass
class KKTSystem:
    """The KKT conditions of an embedded LP, as added to a host model.

    The rows of ``G`` fall into three groups: ``kept`` rows have a complementarity pair
    (``mu``, ``beta``) and a dual big-M; ``tight`` rows (always tight) have a dual ``nu``
    with neither, free where ``tight_partner`` names the opposite row it stands for too;
    the rest can never bind and have a zero dual.
    """

    form: MatrixForm
    primal: Embedding
    y: np.ndarray
    p: np.ndarray
    lam: Variables
    mu: Variables
    beta: Variables
    kept: np.ndarray  # rows of G with a complementarity pair (μ, β)
    primal_big_m: np.ndarray
    dual_big_m: np.ndarray
    stationarity: Constraints
    dual_bound_rows: Constraints
    slack_rows: Constraints
    tight: np.ndarray  # rows of G tight at every feasible point: dual ν, no β, no big-M
    tight_partner: np.ndarray  # per tight row: its opposite row (ν free) or -1 (ν >= 0)
    nu: Variables

    @property
    def always_tight_rows(self) -> int:
        """How many rows of ``G`` are treated as equalities (partners included)."""
        return int(self.tight.size + (self.tight_partner >= 0).sum())

    @property
    def dropped_rows(self) -> int:
        """How many rows of ``G`` can never bind (their dual is zero)."""
        return int(self.form.G.shape[0] - self.kept.size - self.always_tight_rows)

    def follower_cost(self, x: np.ndarray) -> float:
        """``c'y + offset`` at a host solution."""
        return float(self.form.c @ x[self.y] + self.form.offset)

    def payment_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Host columns and coefficients of ``c'y - λ'b + μ'h`` (= ``λ'E p`` at a KKT point)."""
        cols = np.concatenate([self.y, self.lam.ids, self.mu.ids, self.nu.ids])
        coefs = np.concatenate([self.form.c, -self.form.b, self.form.h[self.kept],
                                self.form.h[self.tight]])
        return cols, coefs

    def payment(self, x: np.ndarray) -> float:
        """``λ'E p`` evaluated directly (not through strong duality) at a host solution."""
        return float(x[self.lam.ids] @ (self.form.E @ x[self.p]))

    def duals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """λ (per equality row) and μ >= 0 (per row of G; zero for dropped rows; a free ν
        of a pair of opposite rows is split into its positive and negative part)."""
        mu = np.zeros(self.form.G.shape[0])
        mu[self.kept] = x[self.mu.ids]
        nu = x[self.nu.ids]
        mu[self.tight] = np.maximum(nu, 0.0)
        paired = self.tight_partner >= 0
        mu[self.tight_partner[paired]] = np.maximum(-nu[paired], 0.0)
        return x[self.lam.ids], mu

    def set_dual_big_m(self, host: LinearModel, values: np.ndarray) -> None:
        """Change the dual big-Ms (one per kept row) in the host model."""
        values = np.asarray(values, dtype=float)
        host.add_terms(self.dual_bound_rows.ids, self.beta.ids, -(values - self.dual_big_m))
        self.dual_big_m = values.copy()


def _tight_rows(form: MatrixForm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(always-tight rows, the rows among them that carry a dual, their partner or -1).

    Of two opposite always-tight rows only the upper one carries a dual (free); the lower
    one's dual is that dual's negative part.
    """
    rows = np.flatnonzero(form.always_tight())
    partner = form.opposite_rows(rows)
    stands_for = set(partner[partner >= 0].tolist())
    own = np.array([r not in stands_for for r in rows], dtype=bool)
    return rows, rows[own], partner[own]


def add_kkt(
    host: LinearModel,
    source: LinearModel,
    parameters: dict[str, np.ndarray],
    dual_big_m,
    *,
    prefix: str,
    tighten: bool = True,
) -> KKTSystem:
    """Add the KKT system of the LP ``source`` to ``host`` (see the module docstring).

    Parameters
    ----------
    parameters
        Host column ids replacing each parameter block of ``source``.
    dual_big_m
        One value per row of ``G`` of ``matrix_form(source)``, or a callable taking that
        form and returning them.
    tighten
        Drop rows that can never bind from the complementarity. Rows that are always
        tight are treated as equalities either way.
    """
    form = matrix_form(source)
    primal = embed(host, source, parameters, prefix=prefix)
    y, p = primal.col_map[form.y_cols], primal.col_map[form.p_cols]
    n_eq, n_in = form.A.shape[0], form.G.shape[0]
    dual_m = dual_big_m(form) if callable(dual_big_m) else np.broadcast_to(
        np.asarray(dual_big_m, dtype=float), n_in)

    smin, smax = form.slack_range()
    always, tight, partner = _tight_rows(form)
    pair = np.ones(n_in, dtype=bool)
    pair[always] = False
    if tighten:
        pair &= ~(smin > 1e-9 * (1.0 + np.abs(form.h)))
    kept = np.flatnonzero(pair)
    primal_m = smax[kept]
    if not np.all(np.isfinite(primal_m)):
        bad = kept[~np.isfinite(primal_m)][0]
        raise ModelError(f"{prefix}: row {form.g_block[bad]!r} has no finite slack bound: "
                         f"give its variables bounds or implied bounds")
    primal_m = np.maximum(primal_m, 0.0)
    dual_m = np.asarray(dual_m, dtype=float)[kept]

    eq_index = pd.RangeIndex(n_eq, name="row")
    kept_index = pd.Index(kept, name="row")
    lam = host.add_variables(f"{prefix}.lambda", (eq_index,))
    mu = host.add_variables(f"{prefix}.mu", (kept_index,), 0.0)
    beta = host.add_variables(f"{prefix}.beta", (kept_index,), 0.0, 1.0, integer=True)
    nu = host.add_variables(f"{prefix}.nu", (pd.Index(tight, name="row"),),
                            np.where(partner >= 0, -np.inf, 0.0))

    # stationarity: A'λ - G'μ - G'ν = c
    stat = host.add_constraints(f"{prefix}.stationarity", (pd.RangeIndex(form.n_y),), "==",
                                form.c)
    at = form.A.tocoo()
    host.add_terms(stat.ids[at.col], lam.ids[at.row], at.data)
    gk = form.G[kept].tocoo()
    host.add_terms(stat.ids[gk.col], mu.ids[gk.row], -gk.data)
    gt = form.G[tight].tocoo()
    host.add_terms(stat.ids[gt.col], nu.ids[gt.row], -gt.data)

    # μ_i <= Mμ_i β_i   and   h_i - G_i y <= Ms_i (1 - β_i)
    dual_rows = host.add_constraints(f"{prefix}.dual_bound", (kept_index,), "<=", 0.0)
    host.add_terms(dual_rows.ids, mu.ids, 1.0)
    host.add_terms(dual_rows.ids, beta.ids, -dual_m)
    slack_rows = host.add_constraints(f"{prefix}.slack_bound", (kept_index,), "<=",
                                      primal_m - form.h[kept])
    host.add_terms(slack_rows.ids[gk.row], y[gk.col], -gk.data)
    host.add_terms(slack_rows.ids, beta.ids, primal_m)
    return KKTSystem(
        form=form, primal=primal, y=y, p=p, lam=lam, mu=mu, beta=beta, kept=kept,
        primal_big_m=primal_m, dual_big_m=dual_m, stationarity=stat,
        dual_bound_rows=dual_rows, slack_rows=slack_rows, tight=tight,
        tight_partner=partner, nu=nu,
    )
