"""The exact method against independent evidence: brute force, LP duality, the reference points."""

from functools import partial

import numpy as np
import pytest
from conftest import TIGHT

from mosaik_bilevel import api
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.random_case import random_case
from mosaik_bilevel.methods.bruteforce import enumerate_bilevel
from mosaik_bilevel.methods.certificate import FollowerClaim, FollowerOracle, certify
from mosaik_bilevel.methods.exact import Solver

#: the AC check of a dispatch has its own tests (test_validation.py)
solve = partial(api.solve, ac=False)

SEEDS = range(10)


@pytest.fixture(scope="module")
def cases():
    return {s: random_case(s) for s in SEEDS}


@pytest.mark.parametrize("pricing", ["dlmp", "tariff"])
@pytest.mark.parametrize("seed", SEEDS)
def test_exact_equals_brute_force(cases, seed, pricing):
    case = cases[seed]
    exact = solve(case, "exact", pricing, options=TIGHT)
    brute = enumerate_bilevel(case, pricing)
    assert exact.ok
    assert exact.leader_cost == pytest.approx(brute.leader_cost, rel=1e-6, abs=1e-6)
    assert brute.assignments == 2 ** sum(
        len(c.batteries) * case.horizon_periods
        + int(c.shiftable.shape[0]) * case.horizon_periods for c in case.communities)


def test_tiny_exact_equals_brute_force():
    case = load_case("tiny")
    for pricing in ("dlmp", "tariff"):
        exact = solve(case, "exact", pricing, options=TIGHT)
        brute = enumerate_bilevel(case, pricing)
        assert exact.leader_cost == pytest.approx(brute.leader_cost, rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(
            exact.exchanges.pivot(index="community", columns="time", values="p_mw").to_numpy(),
            brute.exchanges, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_tariff_leader_cost_equals_high_point_relaxation(cases, seed):
    case = cases[seed]
    exact = solve(case, "exact", "tariff", options=TIGHT)
    hpr = solve(case, "hpr", "tariff", options=TIGHT)
    assert exact.leader_cost == pytest.approx(hpr.leader_cost, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("seed", [*SEEDS, "tiny"])
def test_integrated_system_cost_is_a_lower_bound(cases, seed):
    case = load_case("tiny") if seed == "tiny" else cases[seed]
    integrated = solve(case, "integrated", "dlmp", options=TIGHT)
    others = [solve(case, m, p, options=TIGHT) for m, p in (
        ("exact", "dlmp"), ("exact", "tariff"), ("hpr", "tariff"), ("standalone", "tariff"))]
    for other in others:
        if other.status == "follower_infeasible":
            continue
        assert integrated.system_cost <= other.system_cost + 1e-7 * max(1, abs(
            other.system_cost)), other.method


@pytest.mark.parametrize("seed", SEEDS)
def test_chosen_prices_are_follower_duals(cases, seed):
    """The bilevel's λ, μ satisfy the follower's dual constraints and reach its optimum."""
    case = cases[seed]
    solver = Solver(case, "exact", "dlmp", options=TIGHT)
    solver.solve()
    form, x = solver.formulation, solver.last_x
    kkt = form.kkt
    lam, mu = kkt.duals(x)
    f = kkt.form
    assert np.all(mu >= -1e-9)
    np.testing.assert_allclose(f.A.T @ lam - f.G.T @ mu, f.c, atol=1e-6)
    p = form.exchanges(x).ravel()
    optimum = FollowerOracle().respond(form.follower, form.exchanges(x)).cost
    assert (f.b + f.E @ p) @ lam - f.h @ mu == pytest.approx(optimum, rel=1e-6, abs=1e-6)


def test_high_point_relaxation_fails_the_certificate():
    """The certificate rejects follower dispatches that are feasible but not optimal."""
    rejected = 0
    for seed in SEEDS:
        case = random_case(seed)
        solver = Solver(case, "hpr", "tariff", options=TIGHT)
        result = solver.solve()
        form = solver.formulation
        response = FollowerOracle().respond(form.follower, form.exchanges(solver.last_x))
        verdict = certify(form.follower, FollowerClaim.of(form, solver.last_x), response)
        assert verdict.primal_feasible  # a feasible dispatch, perhaps not an optimal one
        if result.follower_cost > response.cost * (1 + 1e-5) + 1e-5:
            assert not verdict.passed
            rejected += 1
        else:
            assert verdict.passed
    assert rejected >= 3


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_too_small_dual_big_m_is_caught_and_repaired(cases, seed):
    case = cases[seed]
    reference = solve(case, "exact", "dlmp", options=TIGHT)
    small = solve(case, "exact", "dlmp", options=TIGHT, dual_big_m_safety=1e-3,
                  max_enlargements=6)
    assert small.big_m_log, "the too-small bounds went unnoticed"
    assert small.ok
    assert small.leader_cost == pytest.approx(reference.leader_cost, rel=1e-6, abs=1e-6)
    stuck = solve(case, "exact", "dlmp", options=TIGHT, dual_big_m_safety=1e-3,
                  max_enlargements=0)
    assert stuck.status == "big_m_unverified" and not stuck.ok


@pytest.mark.parametrize("seed", [0, 1, 4, 5])
def test_lazy_binaries_change_nothing_but_time(cases, seed):
    """Solving with every binary from the start gives the same optimum as lazy binaries."""
    case = cases[seed]
    for pricing in ("dlmp", "tariff"):
        eager = solve(case, "exact", pricing, options=TIGHT, lazy=False)
        lazy = solve(case, "exact", pricing, options=TIGHT, lazy=True)
        assert eager.ok and lazy.ok
        assert eager.leader_cost == pytest.approx(lazy.leader_cost, rel=1e-7, abs=1e-7)
        assert eager.solver.solver_rounds == 1


def test_lazy_solution_keeps_every_relaxed_logic():
    case = load_case("tiny")
    solver = Solver(case, "exact", "dlmp", options=TIGHT)
    solver.solve()
    form, x = solver.formulation, solver.last_x
    for c in form.communities:
        if c.z is not None:  # no battery charges and discharges at once; modes are whole
            assert not ((x[c.p_ch.ids] > 1e-7) & (x[c.p_dis.ids] > 1e-7)).any()
            np.testing.assert_array_equal(x[c.z.ids], np.round(x[c.z.ids]))
        if c.on is not None:
            np.testing.assert_array_equal(x[c.on.ids], np.round(x[c.on.ids]))
    kkt = form.kkt
    slack = kkt.form.h[kkt.kept] - kkt.form.G[kkt.kept] @ x[kkt.y]
    assert (np.minimum(x[kkt.mu.ids], slack) <= 1e-7).all()  # complementarity


def test_time_limit_is_a_reported_outcome():
    from mosaik_bilevel.solvers.highs import SolverOptions

    case = random_case(4)
    result = solve(case, "exact", "dlmp", options=SolverOptions(time_limit_s=0.0),
                   lazy=False)
    assert result.status == "time_limit" and not result.ok


@pytest.mark.parametrize("seed", [0, 2, 6])
def test_a_following_horizon_on_the_same_model_equals_a_fresh_solve(seed):
    """The second horizon is pushed into the HiGHS model as changed numbers only."""
    case = random_case(seed, horizons=3)
    persistent = Solver(case, "exact", "dlmp", options=TIGHT)
    for start in case.days:
        again = persistent.solve(start)
        fresh = solve(case, "exact", "dlmp", start=start, options=TIGHT)
        assert again.ok and fresh.ok
        assert again.leader_cost == pytest.approx(fresh.leader_cost, rel=1e-7, abs=1e-7)
        assert again.follower_cost == pytest.approx(fresh.follower_cost, rel=1e-7, abs=1e-7)
    assert len(case.days) == 3
