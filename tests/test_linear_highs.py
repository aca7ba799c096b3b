"""The modelling layer and the HiGHS backend: conventions pinned on problems solved by hand."""

import numpy as np
import pytest

from mosaik_bilevel.model.linear import LinearModel
from mosaik_bilevel.solvers.highs import HighsSolver, SolveStatus, solve_model


def small_lp(rhs=3.0, cost_b=1.5, eq_rhs=0.5):
    """min x_a + cost_b x_b  s.t.  x_a + 2 x_b >= rhs,  x_a - x_b == eq_rhs,  0 <= x <= 10."""
    m = LinearModel()
    x = m.add_variables("x", [["a", "b"]], 0.0, 10.0)
    ge = m.add_constraints("ge", [[0]], ">=", rhs)
    m.add_terms(ge.ids, x.ids, [1.0, 2.0])
    eq = m.add_constraints("eq", [[0]], "==", eq_rhs)
    m.add_terms(eq.ids, x.ids, [1.0, -1.0])
    m.add_objective(x.ids, [1.0, cost_b])
    return m, x, ge, eq


def test_lp_solution_and_dual_signs_match_hand_solution():
    # optimum: x_b = (rhs - 0.5)/3, x_a = x_b + 0.5; cost = 2.5 x_b + 0.5
    m, _x, ge, eq = small_lp()
    res = solve_model(m)
    assert res.status is SolveStatus.OPTIMAL
    xb = (3.0 - 0.5) / 3
    np.testing.assert_allclose(res.x, [xb + 0.5, xb], atol=1e-9)
    assert res.objective == pytest.approx(2.5 * xb + 0.5)
    # row duals are d(optimum)/d(rhs): perturb and compare
    eps = 1e-3
    for block, bumped_model in ((ge, small_lp(rhs=3.0 + eps)[0]),
                                (eq, small_lp(eq_rhs=0.5 + eps)[0])):
        slope = (solve_model(bumped_model).objective - res.objective) / eps
        assert res.row_duals[block.ids[0]] == pytest.approx(slope, abs=1e-6)
    # reduced costs: c - A' y
    a = m.arrays.matrix.toarray()
    np.testing.assert_allclose(res.col_duals, np.array([1.0, 1.5]) - a.T @ res.row_duals,
                               atol=1e-9)


def test_update_pushes_bounds_costs_and_coefficients():
    m1, *_ = small_lp(rhs=3.0, cost_b=1.5)
    m2, *_ = small_lp(rhs=4.0, cost_b=0.7)
    solver = HighsSolver()
    solver.load(m1)
    first = solver.solve().objective
    solver.update(m2)
    updated = solver.solve().objective
    assert updated == pytest.approx(solve_model(m2).objective, rel=1e-12)
    assert updated != pytest.approx(first)
    # a coefficient change keeps the structure and is pushed too
    m3, x3, ge3, _ = small_lp()
    m3.add_terms(ge3.ids, x3.ids[1], 1.0)  # x_a + 3 x_b >= 3
    solver.update(m3)
    assert solver.solve().objective == pytest.approx(solve_model(m3).objective, rel=1e-12)


def test_non_optimal_outcomes_are_results_not_exceptions():
    m = LinearModel()
    x = m.add_variables("x", [[0]], 0.0, 1.0)
    c = m.add_constraints("c", [[0]], ">=", 2.0)
    m.add_terms(c.ids, x.ids, 1.0)
    res = solve_model(m)
    assert res.status is SolveStatus.INFEASIBLE and res.x is None
    m = LinearModel()
    x = m.add_variables("x", [[0]], 0.0)
    m.add_objective(x.ids, -1.0)
    assert solve_model(m).status is SolveStatus.UNBOUNDED


def test_model_blocks_label_their_values():
    m = LinearModel()
    v = m.add_variables("v", (["g1", "g2"], [0, 1, 2]), 0.0, [[1.0], [2.0]])
    assert v.shape == (2, 3)
    lo, hi = m.arrays.col_lower, m.arrays.col_upper
    np.testing.assert_array_equal(hi.reshape(2, 3), [[1, 1, 1], [2, 2, 2]])
    assert (lo == 0).all()
    frame = v.frame(np.arange(6.0), "p_mw")
    assert frame.loc[("g2", 1), "p_mw"] == 4.0


@pytest.mark.parametrize("on", [True, False])
def test_options_reach_highs(on):
    import highspy

    from mosaik_bilevel.solvers.highs import SUB_MIP_HEURISTICS, SolverOptions

    h = highspy.Highs()
    SolverOptions(mip_rel_gap=1e-7, mip_sub_mip_heuristics=on, time_limit_s=12.0).apply(h)

    def value(name):
        return h.getOptionValue(name)[1]

    assert value("mip_rel_gap") == 1e-7
    assert value("time_limit") == 12.0
    assert [value(name) for name in SUB_MIP_HEURISTICS] == [on] * 3
    with pytest.raises(ValueError, match="mip_rel_gap"):
        SolverOptions(mip_rel_gap=-1.0).apply(h)
