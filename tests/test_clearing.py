"""Clearing more often than once a day: horizons of any start and length, and the rules.

Independent evidence: brute force over every shiftable-load pattern of whole cycles, and the
principle of optimality (the tail of an optimal plan is optimal from its own state).
"""

from __future__ import annotations

import itertools
import json

import mosaik
import numpy as np
import pandas as pd
import pytest

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cli import main as cli_main
from mosaik_bilevel.data.case import CommunitySettings
from mosaik_bilevel.data.folder import save_case
from mosaik_bilevel.errors import CaseError
from mosaik_bilevel.methods.exact import Solver
from mosaik_bilevel.model.shiftable import shiftable_requirements
from mosaik_bilevel.operation.community_operation import CommunityOperation, ForecastError
from mosaik_bilevel.operation.market_operator import ClearingRule, MarketOperator
from mosaik_bilevel.scenarios.run import simulate
from mosaik_bilevel.scenarios.system import QUIET, add_system, run_world, sim_config
from mosaik_bilevel.solvers.highs import SolverOptions

CYCLE = 6


def _load(start_h: float, end_h: float, periods: int, bus=0) -> pd.DataFrame:
    return pd.DataFrame({"bus": [bus], "p_mw": [0.01], "energy_mwh": [0.01 * periods],
                         "window_start_h": [start_h], "window_end_h": [end_h]},
                        index=pd.Index(["wm"], name="name"))


@pytest.mark.parametrize("window,runs", [((1.0, 4.0), 2), ((0.0, 4.0), 2), ((2.0, 3.0), 1)])
def test_shiftable_requirements_are_exactly_the_completable_patterns(window, runs):
    """Over every start in two cycles, every length up to the third's end and every progress:
    the patterns the bounds admit are exactly the restrictions of whole-cycle patterns."""
    cycle, n_cycles = 4, 3
    settings = CommunitySettings(step_h=1.0, horizon_h=float(cycle))
    load = _load(*window, runs)
    mask = settings.shiftable_window(load.iloc[0])
    one_cycle = [p for p in itertools.product((0, 1), repeat=cycle)
                 if sum(p) == runs and all(mask[i] or not v for i, v in enumerate(p))]
    patterns = [np.concatenate(c) for c in itertools.product(one_cycle, repeat=n_cycles)]
    checked = 0
    for offset in range(2 * cycle):  # a timeline position: into the first or second cycle
        begun = offset - offset % cycle  # the start of the cycle the horizon starts in
        for n in range(1, n_cycles * cycle - offset + 1):
            for done in {int(p[begun:offset].sum()) for p in patterns}:
                truth = {tuple(p[offset:offset + n]) for p in patterns
                         if int(p[begun:offset].sum()) == done}
                need = shiftable_requirements(settings, load, offset, n, {"wm": done})
                free = np.flatnonzero(need.mask[0])
                admitted = set()
                for values in itertools.product((0, 1), repeat=free.size):
                    x = np.zeros(n, dtype=int)
                    x[free] = values
                    sums = np.bincount(need.occurrence, weights=x,
                                       minlength=need.lower.shape[1])
                    if np.all(sums >= need.lower[0] - 1e-9) and np.all(
                            sums <= need.upper[0] + 1e-9):
                        admitted.add(tuple(x))
                assert admitted == truth, (offset, n, done)
                checked += 1
    assert checked >= cycle * n_cycles * cycle / 2


def _case_with_windows(horizons: int = 2, seed: int = 1):
    """A random case (one community) whose shiftable load must run 2 of 4 window periods."""
    case = load_case("random", seed=seed, n_communities=1, periods=CYCLE, horizons=horizons)
    c = case.communities[0]
    c.shiftable = _load(1.0, 5.0, 2, bus=int(c.members["bus"].iloc[0]))
    return case.validate()


def _period_costs(case, result) -> pd.Series:
    """What a standalone community minimises, per period: tariff payments and own costs."""
    ex = result.exchanges
    time = pd.to_datetime(ex["time"])
    prices = case.prices.loc[time]
    p = ex["p_mw"].to_numpy()
    cost = case.step_h * (prices["tariff_buy_per_mwh"].to_numpy() * np.maximum(p, 0.0)
                          - prices["tariff_sell_per_mwh"].to_numpy() * np.maximum(-p, 0.0))
    cost = pd.Series(cost, index=time).groupby(level=0).sum()
    if result.batteries is not None and len(result.batteries):
        b = result.batteries
        cost = cost.add((case.step_h * case.battery_wear_per_mwh
                         * (b["p_ch_mw"] + b["p_dis_mw"])).groupby(
            pd.to_datetime(b["time"])).sum(), fill_value=0.0)
    if result.rooftop_pv is not None and len(result.rooftop_pv):
        pv = result.rooftop_pv
        cost = cost.add((case.step_h * case.curtailment_per_mwh
                         * (pv["available_mw"] - pv["p_mw"])).groupby(
            pd.to_datetime(pv["time"])).sum(), fill_value=0.0)
    return cost


def test_the_tail_of_an_optimal_plan_is_optimal_from_its_state():
    """Principle of optimality across cycles: a horizon from any period, given the measured
    battery energy and shiftable progress, costs exactly what the rest of the whole plan
    costs (bounds too tight would cost more, too loose less)."""
    case = _case_with_windows(horizons=2)
    c = case.communities[0]
    options = SolverOptions(mip_rel_gap=1e-9)
    n = 2 * CYCLE
    whole = Solver(case, "standalone", options=options).solve(n_periods=n)
    assert whole.status == "optimal"
    costs = _period_costs(case, whole)
    assert costs.sum() == pytest.approx(whole.objective, abs=1e-7)
    on = whole.shiftable.pivot(index="time", columns="load", values="on")
    bat = whole.batteries.pivot(index="time", columns="battery", values="e_mwh")
    assert on["wm"].to_numpy().reshape(2, CYCLE).sum(axis=1).tolist() == [2, 2]
    for offset in range(1, n):
        start = case.timeline[offset]
        energy = ({str(k): float(v) for k, v in bat.iloc[offset - 1].items()}
                  if len(c.batteries) else None)
        done = {"wm": int(on["wm"].iloc[offset - offset % CYCLE:offset].sum())}
        tail = Solver(case, "standalone", options=options).solve(
            start, n_periods=n - offset, shiftable_done={c.name: pd.Series(done)},
            initial_energy_mwh=None if energy is None else {c.name: pd.Series(energy)})
        assert tail.status == "optimal"
        assert tail.objective == pytest.approx(costs.iloc[offset:].sum(), abs=1e-7), offset


def test_clearing_rules_are_checked():
    case = load_case("tiny")  # 1 h periods, 3 h horizon
    assert ClearingRule().periods(case) == (3, 3, 0)
    assert ClearingRule.rolling(1.0).periods(case) == (1, 3, 0)
    for rule, match in ((ClearingRule.rolling(1.0, 0.5), "whole"),
                        (ClearingRule.rolling(2.0, 1.0), "shorter than the interval"),
                        (ClearingRule(1.0, 3.0, 1.0), "non-overlapping"),
                        (ClearingRule.daily(3.0), "shorter than the interval")):
        with pytest.raises(ValueError, match=match):
            rule.periods(case)
    world = mosaik.World(sim_config("python"), **QUIET)
    try:
        with pytest.raises(CaseError, match="clearing"):
            add_system(world, "tiny", clearing={"interval_h": 0.25})
    finally:
        world.shutdown()


def test_market_operator_clears_on_its_rule():
    case = load_case("random", seed=1, periods=3, horizons=2)
    t = case.timeline
    rolling = MarketOperator(case, rule=ClearingRule.rolling(1.0))
    assert [rolling.delivery_start(ts) for ts in t] == list(t)
    assert [rolling.n_periods(ts) for ts in t] == [3, 3, 3, 3, 2, 1]  # shrinking at the end
    gate = MarketOperator(case, rule=ClearingRule.daily(1.0))
    assert {ts: gate.delivery_start(ts) for ts in t if gate.clears_at(ts)} == {
        t[0]: t[0], t[2]: t[3]}


def _tables(out):
    return (pd.read_csv(out / "communities.csv"), pd.read_csv(out / "market.csv"),
            sorted((out / "clearings").iterdir()))


def _simulate_hourly(tmp_path, seed: int):
    case = _case_with_windows(horizons=2, seed=seed)
    save_case(case, tmp_path / "case")
    summary = simulate(str(tmp_path / "case"), days=2, out=tmp_path / "out", load_sigma=0.2,
                       pv_sigma=0.3, seed=3, clearing={"interval_h": 1.0})
    return case, summary


def test_hourly_rolling_clearing_in_a_world(tmp_path):
    case, summary = _simulate_hourly(tmp_path, seed=2)
    comm, market, clearings = _tables(tmp_path / "out")
    n = 2 * CYCLE
    # one clearing per period, each looking a cycle ahead (shrinking at the case's end)
    assert len(clearings) == n
    lengths = [len(pd.read_csv(f / "exchanges.csv")) for f in clearings]
    assert lengths == [min(CYCLE, n - k) for k in range(n)]
    assert all(json.loads((f / "summary.json").read_text())["status"] == "optimal"
               for f in clearings)
    assert market["cleared"].astype(str).str.lower().eq("true").sum() == n
    assert [d["clearing"]["count"] for d in summary["days"]] == [n]  # one calendar day
    # the shiftable load ran exactly its periods in each cycle, inside its window
    c = case.communities[0]
    mine = comm[comm.entity == c.name].sort_values("time")
    on = (mine["P_shiftable[MW]"].to_numpy() > 1e-9).reshape(2, CYCLE)
    assert on.sum(axis=1).tolist() == [2, 2]
    window = case.shiftable_window(c.shiftable.iloc[0])
    assert not on[:, ~window].any()
    # each clearing starts from the progress measured when it clears
    done = pd.read_csv(tmp_path / "out" / "communities__shiftable_done.csv")
    done = done[done.entity == c.name].sort_values("time")["value"].to_numpy()
    for k, folder_k in enumerate(clearings[1:], start=1):
        plan = pd.read_csv(folder_k / "shiftable.csv")
        position = case.timeline.get_indexer(pd.to_datetime(plan["time"]))
        planned = int(plan["on"][position < (k // CYCLE + 1) * CYCLE].sum())  # this cycle
        so_far = int(done[k - 1]) if k % CYCLE else 0
        assert so_far + planned == 2, k


def _run_with_csv_load(tmp_path, name: str, case_folder, loads) -> list[pd.Series]:
    """Hourly rolling run whose community c0 meets the realised load ``loads`` (mosaik-csv);
    returns every clearing's exchange schedule."""
    case = load_case(str(case_folder))
    times = [t.strftime("%Y-%m-%d %H:%M:%S") for t in case.timeline]
    path = tmp_path / f"{name}.csv"
    path.write_text("Realised\nDate,P_load[MW]\n" + "".join(
        f"{t},{v}\n" for t, v in zip(times, loads, strict=True)))
    world = mosaik.World({**sim_config("python"), "CSV": {"python": "mosaik_csv:CSV"}},
                         **QUIET)
    out = tmp_path / name
    system = add_system(world, str(case_folder), days=2, out=str(out), load_sigma=0.0,
                        pv_sigma=0.0, clearing={"interval_h": 1.0})
    csv = world.start("CSV", sim_start=times[0], datafile=str(path)).Realised.create(1)[0]
    world.connect(csv, system.communities["c0"], "P_load[MW]")
    run_world(world, system.until, step=system.step)
    return [pd.read_csv(f / "exchanges.csv").set_index("time")["p_mw"]
            for f in sorted((out / "clearings").iterdir())]


def test_a_clearing_never_depends_on_later_realised_data(tmp_path):
    """Two runs whose realised load is the same up to period k and differs after it: every
    clearing up to k + 1 (which starts from the state measured at the end of k) is the
    same; later ones see the difference."""
    pytest.importorskip("mosaik_csv", reason="install the test extras: pip install -e .[test]")
    case = _case_with_windows(horizons=2, seed=2)
    save_case(case, tmp_path / "case")
    forecast = case.communities[0].member_p_mw.sum(axis=1).to_numpy()
    k = 5
    changed = forecast.copy()
    changed[k + 1:] *= 1.5
    same = _run_with_csv_load(tmp_path, "forecast", tmp_path / "case", forecast)
    other = _run_with_csv_load(tmp_path, "changed", tmp_path / "case", changed)
    assert len(same) == len(other) == 2 * CYCLE
    for j in range(k + 2):
        pd.testing.assert_series_equal(same[j], other[j], check_exact=False, atol=1e-9)
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(same[k + 2:], other[k + 2:],
                                                                 strict=True))


def test_a_failed_clearing_leaves_the_previous_schedule_in_force():
    case = load_case("random", seed=2, n_communities=1, periods=CYCLE, horizons=2)
    c = case.communities[0]
    t = case.timeline
    operator = MarketOperator(case, rule=ClearingRule.rolling(1.0))
    first = operator.clear(t[0])
    assert first.ok and operator.current(t[1]) is first
    # a state no dispatch can start from (a measured state never is; it stands for any
    # clearing that fails): reported, not raised, and the last schedule stays in force
    (battery,) = c.batteries.index
    failed = operator.clear(t[1], {c.name: {battery: 100.0 * c.batteries.e_max_mwh.iloc[0]}})
    assert not failed.ok and failed.status == "infeasible"
    assert operator.clearings[-1] is failed
    assert operator.current(t[1]) is first and operator.current(t[CYCLE - 1]) is first
    assert operator.current(t[CYCLE]) is None
    # the next clearing ramps the units from the schedule in force
    np.testing.assert_allclose(operator._units_output_before(t[2]), first.p_gen.loc[t[1]])
    assert operator.clear(t[2]).ok


def test_day_ahead_gate_clears_the_next_day_from_the_planned_state(tmp_path):
    options = {"seed": 1, "periods": CYCLE, "horizons": 2, "n_communities": 1}
    case = load_case("random", **options)
    lead_h = 2.0
    simulate("random", options, days=2, out=tmp_path, load_sigma=0.2, pv_sigma=0.3, seed=5,
             clearing={"lead_h": lead_h})
    comm, market, clearings = _tables(tmp_path)
    assert len(clearings) == 2
    cleared = market[market["cleared"].astype(str).str.lower() == "true"]["time"].tolist()
    gate = case.timeline[CYCLE - round(lead_h / case.step_h)]
    assert [pd.Timestamp(x) for x in cleared] == [case.timeline[0], gate]
    assert pd.read_csv(clearings[1] / "exchanges.csv")["time"].min()[:19] == str(
        case.timeline[CYCLE])
    c = case.communities[0]
    bat = c.batteries
    assert len(bat) == 1  # the seed is chosen for a battery
    name = bat.index[0]
    planned = pd.read_csv(tmp_path / "communities__E_batteries_planned_MWh.csv")
    at_gate = planned[(planned.entity == c.name) & (planned.key == name)
                      & (pd.to_datetime(planned.time) == gate - pd.Timedelta(hours=1))]
    second = pd.read_csv(clearings[1] / "batteries.csv").sort_values("time").iloc[0]
    start = second.e_mwh - case.step_h * (bat.eta_ch.iloc[0] * second.p_ch_mw
                                          - second.p_dis_mw / bat.eta_dis.iloc[0])
    assert start == pytest.approx(float(at_gate.value.iloc[0]), abs=1e-6)
    # the day-ahead schedule takes over at midnight, not at the gate
    mine = comm[comm.entity == c.name].sort_values("time").reset_index(drop=True)
    first = pd.read_csv(clearings[0] / "exchanges.csv")
    second = pd.read_csv(clearings[1] / "exchanges.csv")
    np.testing.assert_allclose(mine["P_scheduled[MW]"][:CYCLE], first["p_mw"], atol=1e-9)
    np.testing.assert_allclose(mine["P_scheduled[MW]"][CYCLE:], second["p_mw"], atol=1e-9)


def test_a_schedule_received_before_its_start_waits_for_it():
    case = load_case("random", seed=1, periods=3, horizons=2)
    c = case.communities[0]
    op = CommunityOperation(c, case.community_settings, error=ForecastError(0.0, 0.0))
    t = case.timeline
    op.accept(t[0], np.zeros(3))
    op.step(t[0], step_index=0)
    first_plan = op.schedule
    assert op.accept(t[3], np.zeros(3)) is None  # a day ahead: waits
    op.step(t[1], step_index=1)
    assert op.schedule is first_plan
    op.step(t[2], step_index=2)
    op.step(t[3], step_index=3)
    assert op.schedule is not first_plan and op.schedule.periods[0] == t[3]


def test_cli_clearing_options(tmp_path, capsys):
    code = cli_main(["simulate", "--case", "tiny", "--out", str(tmp_path), "--clearing",
                     "hourly", "--quiet"])
    assert code == 0
    assert len(list((tmp_path / "clearings").iterdir())) == 3
    capsys.readouterr()
    assert cli_main(["simulate", "--case", "tiny", "--out", str(tmp_path), "--clearing",
                     "hourly", "--gate", "12:00"]) == 2
    assert "--gate: goes with --clearing daily" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: exit code 2, one line on stderr
        cli_main(["simulate", "--case", "tiny", "--out", str(tmp_path), "--gate", "noon"])
    assert info.value.code == 2 and "HH:MM" in capsys.readouterr().err
