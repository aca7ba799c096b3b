"""``mosaik-bilevel experiments``: the findings' tables agree with the solves they come from."""

import json

import numpy as np
import pandas as pd
import pytest

from mosaik_bilevel.analysis.experiments import follower_cost_by_period, pick_days, run_experiments
from mosaik_bilevel.cases.paper import paper_case, utility_pv_by_day


@pytest.fixture(scope="module")
def tiny_experiments(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiments")
    return run_experiments("tiny", out), out


def test_tables_agree_with_the_solves(tiny_experiments):
    exp, out = tiny_experiments
    [day] = exp.days
    for name in ("deviation", "deviation_by_day", "follower_cost", "follower_cost_by_day",
                 "hpr"):
        on_disk = pd.read_csv(out / f"{name}.csv")
        assert len(on_disk) == len(exp.tables[name]) > 0
    # the follower's cost per period, summed, is the solve's own follower cost
    for result in (day.exact, day.integrated):
        assert follower_cost_by_period(result).sum() == pytest.approx(result.follower_cost,
                                                                      rel=1e-9)
    by_day = exp.tables["follower_cost_by_day"].iloc[0]
    assert by_day.difference == pytest.approx(day.exact.follower_cost
                                              - day.integrated.follower_cost)
    # the integrated optimum is the cheapest system; the leader cannot beat it
    assert by_day.system_cost_integrated <= by_day.system_cost_bilevel + 1e-6
    dev = exp.tables["deviation"]
    assert len(dev) == day.exact.periods
    summary = exp.tables["deviation_by_day"].iloc[0]
    assert summary.average_relative_deviation_cost == pytest.approx(
        dev["relative_deviation_cost"].mean(), abs=1e-12)
    assert summary.periods_deviating == int(dev["deviates"].sum())
    hpr = exp.tables["hpr"].iloc[0]
    # the relaxation's exchanges are served by the follower at no less than its best response
    assert hpr.exchanges_met
    assert hpr.follower_cost_hpr_dispatch >= hpr.follower_cost_at_hpr_exchanges - 1e-6
    saved = json.loads((out / "experiments.json").read_text())
    assert saved["days"][0]["day"] == day.day
    for stem in ("deviation", "follower_cost", "hpr"):
        assert (out / f"{stem}.png").stat().st_size > 10_000


def test_scarcity_marks_follow_the_dispatch(tiny_experiments):
    exp, _ = tiny_experiments
    [day] = exp.days
    disp = day.exact.mv_dispatch
    pv = disp[disp["kind"] == "pv"]
    at_limit = ((pv["available_mw"] - pv["p_mw"]).groupby(pv["time"]).max() <= 1e-6) & (
        pv.groupby("time")["available_mw"].sum() > 1e-6)
    at_limit.index = pd.to_datetime(at_limit.index)
    marks = exp.tables["deviation"].set_index("time")["pv_at_limit"]
    assert marks.to_dict() == at_limit.to_dict()


def test_paper_days_are_the_sunniest_and_darkest():
    energy = utility_pv_by_day()
    days = pick_days(3)
    assert [d for d, _ in days] == [energy.idxmax(), energy.idxmin(),
                                    energy.drop(energy.idxmax()).idxmax()]
    assert "abundant" in days[0][1] and "scarce" in days[1][1]
    # the energy agrees with the case builder's own availability of that day
    day = days[1][0]
    case = paper_case(day, step_minutes=15)
    built = float((case.pv_plant_availability_pu * case.pv_plants["p_peak_mw"]).sum().sum()
                  * case.step_h)
    assert built == pytest.approx(energy[day], rel=1e-9)
    assert np.isfinite(energy).all() and len(energy) == 31


def test_report_of_the_experiments_shows_the_findings(tiny_experiments):
    import re

    from mosaik_bilevel.analysis.report import write_report

    exp, out = tiny_experiments
    report = write_report(out)
    assert report.figures == ["deviation", "follower_cost", "hpr"] and not report.omitted
    page = report.path.read_text()
    for name in ("deviation_by_day", "follower_cost_by_day", "hpr"):
        assert f'<table class="{name}">' in page
    block = re.search(r'<table class="follower_cost_by_day">(.*?)</table>', page, re.S)[1]
    shown = re.findall(r'data-col="follower_cost_bilevel">([^<]*)<', block)
    assert [float(v) for v in shown] == pytest.approx(
        list(exp.tables["follower_cost_by_day"]["follower_cost_bilevel"]), rel=1e-5)
    assert (report.path.parent / "deviation.png").exists()
