"""The generic KKT builder against HiGHS's own LP duals on random non-degenerate LPs."""

import numpy as np
import pytest

from mosaik_bilevel.model.kkt import add_kkt, matrix_form
from mosaik_bilevel.model.linear import LinearModel
from mosaik_bilevel.solvers.highs import SolveStatus, solve_model


def random_lp(rng, n_y=7, n_eq=2, n_le=4, n_ge=2, n_p=2):
    """min c'y s.t. A y - E p = b, G y <= h, H y >= k, l <= y <= u, around a feasible point."""
    m = LinearModel("lp")
    p = m.add_variables("p", (range(n_p),), -1.0, 1.0, parameter=True,
                        implied_lower=-1.0, implied_upper=1.0)
    lo, hi = rng.uniform(-3, -1, n_y), rng.uniform(1, 3, n_y)
    y = m.add_variables("y", (range(n_y),), lo, hi)
    y0 = rng.uniform(-0.5, 0.5, n_y)
    p0 = rng.uniform(-1, 1, n_p)
    a, e = rng.normal(size=(n_eq, n_y)), rng.normal(size=(n_eq, n_p))
    eq = m.add_constraints("eq", (range(n_eq),), "==", a @ y0 - e @ p0)
    m.add_terms(eq.ids[:, None], y.ids[None, :], a)
    m.add_terms(eq.ids[:, None], p.ids[None, :], -e)
    g = rng.normal(size=(n_le, n_y))
    le = m.add_constraints("le", (range(n_le),), "<=", g @ y0 + rng.uniform(0.05, 0.5, n_le))
    m.add_terms(le.ids[:, None], y.ids[None, :], g)
    k = rng.normal(size=(n_ge, n_y))
    ge = m.add_constraints("ge", (range(n_ge),), ">=", k @ y0 - rng.uniform(0.05, 0.5, n_ge))
    m.add_terms(ge.ids[:, None], y.ids[None, :], k)
    m.add_objective(y.ids, rng.normal(size=n_y))
    m.fix_parameter(p, p0)
    return m, p, p0


def highs_duals_in_g_order(lp, res):
    """μ of every row of G, from HiGHS's signed row duals and reduced costs."""
    form = matrix_form(lp)
    mu = np.empty(form.G.shape[0])
    for i, (kind, src) in enumerate(zip(form.g_kind, form.g_source, strict=True)):
        if kind == "le":
            mu[i] = -res.row_duals[src]
        elif kind == "ge":
            mu[i] = res.row_duals[src]
        elif kind == "ub":
            mu[i] = max(-res.col_duals[src], 0.0)
        else:
            mu[i] = max(res.col_duals[src], 0.0)
    return form, res.row_duals[form.eq_rows], mu


def nondegenerate(lp, res, form, mu):
    """A vertex with exactly n active constraints, each with a nonzero dual: unique duals."""
    y = res.x[form.y_cols]
    slack = form.h - form.G @ y
    active = np.abs(slack) <= 1e-9
    return (active.sum() + form.A.shape[0] == form.n_y
            and np.all(np.abs(mu[active]) > 1e-6))


def lps(count):
    rng = np.random.default_rng(7)
    found = 0
    while found < count:
        lp, p, p0 = random_lp(rng)
        res = solve_model(lp)
        if res.status is not SolveStatus.OPTIMAL:
            continue
        form, lam, mu = highs_duals_in_g_order(lp, res)
        if nondegenerate(lp, res, form, mu):
            found += 1
            yield lp, p, p0, res, lam, mu


def kkt_point(lp, p, p0, dual_big_m, tighten):
    host = LinearModel("host")
    fixed = host.add_variables("p_fixed", (range(p0.size),), p0, p0)
    kkt = add_kkt(host, lp, {p.name: fixed.ids}, dual_big_m, prefix="f", tighten=tighten)
    return host, kkt, solve_model(host)


@pytest.mark.parametrize("tighten", [False, True])
def test_kkt_duals_equal_highs_lp_duals(tighten):
    checked = 0
    for lp, p, p0, res, lam, mu in lps(20):
        _host, kkt, sol = kkt_point(lp, p, p0, 1e3, tighten)
        assert sol.status is SolveStatus.OPTIMAL
        k_lam, k_mu = kkt.duals(sol.x)
        np.testing.assert_allclose(sol.x[kkt.y], res.x[kkt.form.y_cols], atol=1e-7)
        np.testing.assert_allclose(k_lam, lam, atol=1e-6)
        np.testing.assert_allclose(k_mu, mu, atol=1e-6)
        # the strong-duality payment equals λ'E p evaluated directly
        cols, coefs = kkt.payment_terms()
        assert coefs @ sol.x[cols] == pytest.approx(kkt.payment(sol.x), abs=1e-6)
        checked += 1
    assert checked == 20


def test_a_too_small_dual_big_m_makes_the_kkt_system_infeasible():
    for lp, p, p0, _res, _lam, mu in lps(5):
        _host, _kkt, sol = kkt_point(lp, p, p0, 0.5 * mu.max(), False)
        # the duals are unique and one exceeds the bound: no KKT point fits
        assert sol.status is SolveStatus.INFEASIBLE
        _host, _kkt, sol = kkt_point(lp, p, p0, 1.01 * mu.max(), False)
        assert sol.status is SolveStatus.OPTIMAL


def test_matrix_form_rejects_parameters_outside_equalities():
    m = LinearModel()
    p = m.add_variables("p", (range(1),), 0, 1, parameter=True)
    y = m.add_variables("y", (range(1),), 0, 1)
    c = m.add_constraints("c", (range(1),), "<=", 1.0)
    m.add_terms(c.ids, y.ids, 1.0)
    m.add_terms(c.ids, p.ids, 1.0)
    with pytest.raises(Exception, match="only enter equality rows"):
        matrix_form(m)


def fixed_column_lps(count):
    """LPs whose column ``j`` is fixed (``l = u``) where the unique optimum has it at a
    bound with a nonzero reduced cost: the two bound rows are always tight, and stationarity
    alone decides the dual of the column."""
    for lp, p, p0, res, lam, _mu in lps(count):
        form = matrix_form(lp)
        reduced = res.col_duals[form.y_cols]
        j = int(np.argmax(np.abs(reduced)))
        if abs(reduced[j]) < 1e-3:
            continue
        value = res.x[form.y_cols[j]]
        fixed = lp.variables["y"]
        lo, hi = lp.arrays.col_lower[fixed.ids].copy(), lp.arrays.col_upper[fixed.ids].copy()
        lo[j] = hi[j] = value
        lp.set_bounds(fixed, lo, hi)
        yield lp, p, p0, res, lam, j, abs(reduced[j])


def test_a_fixed_column_is_an_equality_without_binary_or_big_m():
    checked = 0
    for lp, p, p0, _res, lam, j, reduced in fixed_column_lps(8):
        form = matrix_form(lp)
        rows = np.flatnonzero(form.g_source == form.y_cols[j])
        rows = rows[np.isin(form.g_kind[rows], ("ub", "lb"))]
        assert form.always_tight()[rows].all()
        # a dual big-M far below the column's reduced cost: no longer a bound on it
        m = np.full(form.G.shape[0], 1e3)
        m[rows] = 1e-3 * reduced
        _host, kkt, sol = kkt_point(lp, p, p0, m, True)
        assert sol.status is SolveStatus.OPTIMAL
        assert not np.isin(rows, kkt.kept).any() and kkt.always_tight_rows == 2
        assert kkt.tight_partner[kkt.tight == rows[form.g_kind[rows] == "ub"][0]] >= 0
        k_lam, k_mu = kkt.duals(sol.x)
        np.testing.assert_allclose(k_lam, lam, atol=1e-6)
        assert (k_mu >= 0).all() and min(k_mu[rows]) == 0.0
        assert max(k_mu[rows]) == pytest.approx(reduced, rel=1e-6)
        np.testing.assert_allclose(form.A.T @ k_lam - form.G.T @ k_mu, form.c, atol=1e-6)
        cols, coefs = kkt.payment_terms()
        assert coefs @ sol.x[cols] == pytest.approx(kkt.payment(sol.x), abs=1e-6)
        checked += 1
    assert checked >= 4


def test_range_rows_enter_the_matrix_form():
    m = LinearModel()
    y = m.add_variables("y", (range(2),), -5, 5)
    r = m.add_constraints("r", (range(2),), "range", ([-1.0, 2.0], [1.0, 2.0]))
    m.add_terms(r.ids, y.ids, 1.0)
    form = matrix_form(m)
    assert list(form.eq_rows) == [1]  # equal sides: an equality
    assert sorted(form.g_kind[form.g_block == "r"]) == ["ge", "le"]
    np.testing.assert_allclose(sorted(form.h[form.g_block == "r"]), [1.0, 1.0])
