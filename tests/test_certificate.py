"""The certificate against independent evidence: brute force, the follower LP's own optimum
as a function of the exchanges (its one-sided slopes are the range of the DLMPs), and
tampered solutions that must fail."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import TIGHT

from mosaik_bilevel import api
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.methods.bruteforce import enumerate_bilevel
from mosaik_bilevel.methods.certificate import (
    FollowerClaim,
    FollowerOracle,
    certify,
    duals_at_bound,
)
from mosaik_bilevel.methods.exact import Solver


def tiny_without_pv():
    """The tiny case with its PV plant unavailable in every period (0 <= p <= 0)."""
    case = load_case("tiny")
    availability = case.pv_plant_availability_pu * 0.0
    return dataclasses.replace(case, pv_plant_availability_pu=availability).validate()


@pytest.fixture(scope="module")
def solved():
    """The tiny case solved exactly in ``dlmp``: (solver, result)."""
    solver = Solver(load_case("tiny"), "exact", "dlmp", options=TIGHT)
    return solver, solver.solve()


def claim_and_response(solver):
    form, x = solver.formulation, solver.last_x
    claim = FollowerClaim.of(form, x)
    return form, claim, FollowerOracle().respond(form.follower, claim.exchanges)


@pytest.mark.parametrize("pricing", ["dlmp", "tariff"])
def test_fixed_pv_rows_are_equalities_and_the_optimum_is_brute_force(pricing):
    case = tiny_without_pv()
    solver = Solver(case, "exact", pricing, options=TIGHT)
    result = solver.solve()
    kkt, x = solver.formulation.kkt, solver.last_x
    pv = kkt.form.g_block.astype(str)
    pv_rows = np.flatnonzero(np.char.startswith(pv, "pv.p_mw."))
    # both bound rows of every PV column: no binary, no big-M, one free dual per column
    assert not np.isin(pv_rows, kkt.kept).any()
    assert np.isin(pv_rows[pv[pv_rows] == "pv.p_mw.ub"], kkt.tight).all()
    assert (kkt.tight_partner[np.isin(kkt.tight, pv_rows)] >= 0).all()
    assert not np.isin(kkt.kept[duals_at_bound(kkt, x)], pv_rows).any()
    # the duals are still the follower's: non-negative, stationary, at its optimum
    lam, mu = kkt.duals(x)
    f = kkt.form
    assert (mu >= -1e-9).all()
    np.testing.assert_allclose(f.A.T @ lam - f.G.T @ mu, f.c, atol=1e-6)
    assert result.status == "optimal" and result.ok and result.certificate.passed
    assert not result.big_m_log
    assert result.solver.rows_always_tight >= pv_rows.size
    brute = enumerate_bilevel(case, pricing)
    assert result.leader_cost == pytest.approx(brute.leader_cost, rel=1e-6, abs=1e-6)


def test_a_correct_result_passes_every_check(solved, tmp_path):
    _solver, result = solved
    cert = result.certificate
    assert result.ok and cert.passed
    assert cert.primal_feasible and cert.primal_violation <= 1e-7
    assert cert.price_range_ok and cert.price_distance <= cert.price_tolerance
    summary = json.loads((result.write(tmp_path) / "summary.json").read_text())["certificate"]
    assert summary["passed"] and summary["primal_feasible"] and summary["price_range_ok"]
    assert summary["primal_violation"] == pytest.approx(cert.primal_violation)
    assert summary["price_distance"] == pytest.approx(cert.price_distance, abs=1e-12)


def test_a_dispatch_that_breaks_the_power_balance_at_the_optimal_cost_fails(solved):
    solver, _result = solved
    form, claim, response = claim_and_response(solver)
    flow = form.follower.mv.p_flow.ids[0, 1]  # a line flow: it costs nothing
    dispatch = claim.dispatch.copy()
    dispatch[flow] += 0.05
    tampered = dataclasses.replace(claim, dispatch=dispatch)
    assert form.follower.cost(tampered.values(form.follower)) == pytest.approx(
        response.cost, rel=1e-12)
    verdict = certify(form.follower, tampered, response)
    assert not verdict.passed and not verdict.primal_feasible
    assert verdict.relative_error <= 1e-9  # the cost alone would have passed
    assert verdict.primal_violation == pytest.approx(0.05, rel=1e-6)
    assert verdict.primal_violation_at == "mv.p_balance"
    assert "violates" in verdict.message


def slopes(solver, community: int, period: int, h: float = 1e-5):
    """The follower optimum's slopes in one exchange (per MWh): the range of the DLMP at the
    community's bus, from LP duality alone (one-sided derivatives of the value function)."""
    form, claim, response = claim_and_response(solver)
    oracle = FollowerOracle()
    costs = []
    for step in (-h, h):
        p = claim.exchanges.copy()
        p[community, period] += step
        r = oracle.respond(form.follower, p)
        assert r.ok
        costs.append(r.cost)
    dt = form.follower.step_h
    return (response.cost - costs[0]) / h / dt, (costs[1] - response.cost) / h / dt


@pytest.mark.parametrize("community, period", [(0, 0), (0, 1), (1, 2)])
def test_a_price_below_the_follower_dual_range_fails(solved, community, period):
    solver, _result = solved
    form, claim, response = claim_and_response(solver)
    low, high = slopes(solver, community, period)
    bus = form.follower.mv.network.position[form.communities[community].community.mv_bus]
    assert low - 1e-4 <= claim.dlmp[bus, period] <= high + 1e-4  # the solution's own price
    dlmp = claim.dlmp.copy()
    dlmp[bus, period] = low - 5.0
    verdict = certify(form.follower, dataclasses.replace(claim, dlmp=dlmp), response)
    assert not verdict.passed and verdict.price_range_ok is False
    assert verdict.primal_feasible and verdict.relative_error <= 1e-9
    assert "below" in verdict.message
    # the range the certificate reports is the one the slopes give
    assert verdict.price_range == pytest.approx((low, high), abs=1e-4)
    assert certify(form.follower, claim, response).passed  # the untouched claim passes


def test_tariff_pricing_checks_no_price():
    solver = Solver(load_case("tiny"), "exact", "tariff", options=TIGHT)
    result = solver.solve()
    assert result.certificate.passed and result.certificate.price_range_ok is None
    assert result.certificate.primal_feasible


def test_the_api_result_carries_the_certificate():
    result = api.solve(tiny_without_pv(), "exact", "dlmp", options=TIGHT, ac=False)
    summary = result.summary()
    assert summary["certificate"]["passed"]
    assert summary["rows_always_tight"] == result.solver.rows_always_tight > 0
