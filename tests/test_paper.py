"""The paper case: data read correctly from the installed packages, and solved exactly."""

import numpy as np
import pandas as pd
import pytest

from mosaik_bilevel.cases import simbench_profiles as sb
from mosaik_bilevel.cases.paper import COMMUNITY_BUSES, paper_case
from mosaik_bilevel.methods.exact import Solver


def raw_profile(column: str) -> pd.DataFrame:
    """simbench's file read plainly: one row per label as written (no regular grid)."""
    path = sb._folder() / "LoadProfile.csv"
    frame = pd.read_csv(path, sep=";", usecols=["time", column])
    frame["time"] = pd.to_datetime(frame["time"], format="%d.%m.%Y %H:%M")
    return frame


def test_days_are_selected_by_label_across_daylight_saving():
    col = "H0-A_pload"
    raw = raw_profile(col)
    grid = sb.annual_profiles("LoadProfile.csv", [col])[col]
    assert len(grid) == 366 * 96 and grid.notna().all()
    # an ordinary day: identical to the rows with that day's labels
    day = raw[raw.time.dt.date == pd.Timestamp("2016-05-24").date()]
    np.testing.assert_allclose(grid.loc["2016-05-24"].to_numpy(), day[col].to_numpy())
    # 30 October: the four labels 02:00-02:45 appear twice; the grid takes their mean
    twice = raw[(raw.time >= "2016-10-30 02:00") & (raw.time <= "2016-10-30 02:45")]
    assert len(twice) == 8
    np.testing.assert_allclose(grid.loc["2016-10-30 02:00":"2016-10-30 02:45"].to_numpy(),
                               twice.groupby("time")[col].mean().to_numpy())
    # 27 March: 02:00-02:45 are missing; the grid interpolates between 01:45 and 03:00
    assert not ((raw.time >= "2016-03-27 02:00") & (raw.time < "2016-03-27 03:00")).any()
    a = raw.loc[raw.time == "2016-03-27 01:45", col].item()
    b = raw.loc[raw.time == "2016-03-27 03:00", col].item()
    np.testing.assert_allclose(grid.loc["2016-03-27 02:00":"2016-03-27 02:45"].to_numpy(),
                               a + (b - a) * np.arange(1, 5) / 5)


def test_hourly_case_is_the_mean_of_the_quarter_hours():
    fine = paper_case("2016-03-27", step_minutes=15)
    coarse = paper_case("2016-03-27", step_minutes=60)
    assert len(fine.timeline) == 96 and len(coarse.timeline) == 24
    for a, b in ((fine.communities[2].member_p_mw, coarse.communities[2].member_p_mw),
                 (fine.mv_load_p_mw, coarse.mv_load_p_mw),
                 (fine.pv_plant_availability_pu, coarse.pv_plant_availability_pu)):
        np.testing.assert_allclose(a.resample("1h").mean().to_numpy(), b.to_numpy(),
                                   rtol=1e-12)


def test_structure():
    case = paper_case()
    assert case.mv_network.n_buses == 33 and case.mv_network.n_branches == 32
    assert [c.mv_bus for c in case.communities] == list(COMMUNITY_BUSES)
    for c in case.communities:
        assert c.lv_network.n_buses == 205  # 206-bus feeder less its MV terminal
        assert len(c.members) == 55 and c.s_max_mva == pytest.approx(0.8)
        assert 15 <= len(c.pv) <= 40 and len(c.batteries) <= len(c.pv)
        assert float(c.net.trafo.vn_hv_kv.iloc[0]) == 12.66
        annual = c.member_p_mw.mean(axis=0) * 8784  # MWh/a per home, from one day's mean
        assert annual.between(0.5, 15).all()
    # the seed makes the case reproducible
    again = paper_case()
    pd.testing.assert_frame_equal(again.communities[4].member_p_mw,
                                  case.communities[4].member_p_mw)


@pytest.fixture(scope="module")
def paper_day():
    solver = Solver(paper_case(), "exact", "dlmp")
    return solver, solver.solve()


def test_paper_day_is_certified_optimal(paper_day):
    _solver, result = paper_day
    assert result.ok and result.certificate.passed
    assert result.mip_gap <= 1e-4
    assert result.certificate.relative_error <= 1e-6
    assert not result.big_m_log


def test_paper_day_shows_every_price_regime(paper_day):
    _solver, result = paper_day
    per = result.periods_table
    setters = set(per["marginal_resource"])
    assert {"upstream", "G17", "PV14+PV30"} <= setters
    assert per["root_price_per_mwh"].round(6).isin([0.0, 40.0, 60.0, 80.0]).all()
    # evening: the substation's import limit binds and G17 sets the price
    evening = per[per["marginal_resource"] == "G17"]
    np.testing.assert_allclose(evening["substation_p_mw"], 3.0, atol=1e-6)
    # noon: the export limit binds and curtailed PV sets the price
    noon = per[per["marginal_resource"] == "PV14+PV30"]
    np.testing.assert_allclose(noon["substation_p_mw"], -0.2, atol=1e-6)


def test_paper_day_degenerate_prices_are_visible(paper_day):
    """At the edges of the PV-scarcity regime the follower's duals are not unique; the
    optimistic leader picks its price and the period is flagged with the LP's own price."""
    solver, result = paper_day
    per = result.periods_table
    flagged = per[per["price_differs_from_lp"]]
    assert len(flagged) >= 1
    assert (flagged["root_price_per_mwh"] != flagged["root_price_lp_per_mwh"]).all()
    # the substation sits at its export limit there: the cheap resource is exhausted
    np.testing.assert_allclose(flagged["substation_p_mw"], -0.2, atol=1e-6)
    # and the chosen prices are genuine follower duals at the found exchanges
    kkt, x = solver.formulation.kkt, solver.last_x
    lam, mu = kkt.duals(x)
    f = kkt.form
    np.testing.assert_allclose(f.A.T @ lam - f.G.T @ mu, f.c, atol=1e-6)
    assert (f.b + f.E @ solver.formulation.exchanges(x).ravel()) @ lam - f.h @ mu == (
        pytest.approx(result.certificate.follower_cost_lp, rel=1e-6))


def test_paper_day_reference_points_bound_the_bilevel(paper_day):
    _solver, bilevel = paper_day
    case = paper_case()
    integrated = Solver(case, "integrated", "dlmp").solve()
    hpr = Solver(case, "hpr", "tariff").solve()
    tolerance = 1e-4 * abs(integrated.system_cost)  # both solved to a 1e-4 MIP gap
    assert integrated.system_cost <= bilevel.system_cost + tolerance
    assert integrated.system_cost <= hpr.system_cost + tolerance
    # the relaxation meets its exchanges but dispatches the MV side at a higher cost
    assert hpr.follower_cost >= hpr.solver.follower_cost_at_best_response - 1e-6


@pytest.mark.slow
def test_paper_day_at_quarter_hours_is_certified():
    result = Solver(paper_case(step_minutes=15), "exact", "dlmp").solve()
    assert result.ok and result.mip_gap <= 1e-4
