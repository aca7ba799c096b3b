"""The mosaik side: simulators called directly, real Worlds, AC validation, rolling horizons."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mosaik
import numpy as np
import pandapower as pp
import pandapower.toolbox
import pandas as pd
import pytest

from mosaik_bilevel import load_case, solve
from mosaik_bilevel.model.lindistflow import ldf_voltages
from mosaik_bilevel.operation.ac_network import ACNetwork
from mosaik_bilevel.operation.community_operation import (
    CommunityOperation,
    ForecastError,
    local_dispatch,
)
from mosaik_bilevel.scenarios.run import simulate
from mosaik_bilevel.scenarios.system import (
    QUIET,
    SimulationError,
    add_system,
    run_world,
    sim_config,
)
from mosaik_bilevel.simulators.attributes import ATTRIBUTES, attributes, markdown_table, meta
from mosaik_bilevel.simulators.community import CommunitySimulator
from mosaik_bilevel.simulators.grid import GridSimulator
from mosaik_bilevel.simulators.market import MarketSimulator

ROOT = Path(__file__).resolve().parents[1]
EXACT = {"load_sigma": 0.0, "pv_sigma": 0.0}


def _json(data) -> str:
    return json.dumps(data, allow_nan=False)


# -- the declarative table --------------------------------------------------------------------
def test_meta_and_readme_come_from_one_table():
    for sim in ("community", "market", "grid"):
        m = meta(sim)
        _json(m)
        listed = {(a.model, a.name) for a in ATTRIBUTES if a.simulator == sim}
        assert listed == {(model, attr) for model, spec in m["models"].items()
                          for attr in spec["attrs"]}
    assert markdown_table() in (ROOT / "README.md").read_text()


# -- simulators called directly ---------------------------------------------------------------
def test_simulators_called_directly_give_plain_json():
    market = MarketSimulator()
    market.init("market", case="tiny")
    [op] = market.create(1, "MarketOperator")
    ports = [c["eid"] for c in op["children"]]
    comm = CommunitySimulator()
    comm.init("communities", case="tiny", seed=3)
    comm.create(2, "Community", name=["A", "B"])
    grid = GridSimulator()
    grid.init("grid", case="tiny")
    [g] = grid.create(1, "Grid")

    assert market.step(0, {}, 3600) == 3600
    out = market.get_data({"market": attributes("market", "MarketOperator", "out"),
                           **{p: attributes("market", "Port", "out") for p in ports}})
    _json(out)
    assert out["market"]["cleared"] is True and out["market"]["status"] == "optimal"
    schedule = out["port-A"]["schedule"]
    assert set(schedule) == {"start", "step_s", "values"} and len(schedule["values"]) == 3

    assert sorted(ports) == ["port-A", "port-B"]
    inputs = {n: {"schedule": {f"market.port-{n}": out[f"port-{n}"]["schedule"]}}
              for n in ("A", "B")}
    comm.step(0, inputs, 3600)
    cout = comm.get_data({n: attributes("community", "Community", "out")
                          for n in ("A", "B")})
    _json(cout)
    assert cout["A"]["P_scheduled[MW]"] == pytest.approx(schedule["values"][0], abs=1e-9)

    feeders = {c["eid"]: {"P_lv[MW]": {f"communities.{c['eid'][7:]}":
                                       cout[c["eid"][7:]]["P_lv[MW]"]},
                          "Q_lv[MVar]": {f"communities.{c['eid'][7:]}":
                                         cout[c["eid"][7:]]["Q_lv[MVar]"]}}
               for c in g["children"] if c["type"] == "Feeder"}
    grid.step(0, {"grid": {a: {"market.market": out["market"][a]}
                           for a in ("P_gen[MW]", "Q_gen[MVar]", "P_pv_plant[MW]")},
                  **feeders}, 3600)
    gout = grid.get_data({c["eid"]: attributes("grid", c["type"], "out")
                          for c in [g, *g["children"]]})
    _json(gout)
    assert gout["grid"]["converged"] is True


# -- AC validation against a direct pandapower run --------------------------------------------
def _direct_pandapower(case, loads_by_community, mv_p, mv_q, gen_p, gen_q, pv_p):
    """The same system built with pandapower's own merge_nets, solved by runpp."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = copy.deepcopy(case.mv_net)
        net.load.drop(net.load.index, inplace=True)
        for bus, p in mv_p.items():
            pp.create_load(net, int(bus), p_mw=p, q_mvar=mv_q[bus], name=f"mv {bus}")
        for name, row in case.generators.iterrows():
            pp.create_sgen(net, int(row.bus), p_mw=gen_p[name], q_mvar=gen_q[name])
        for name, row in case.pv_plants.iterrows():
            pp.create_sgen(net, int(row.bus), p_mw=pv_p[name])
        names = {}
        for c in case.communities:
            lv = copy.deepcopy(c.net)
            lv.load.drop(lv.load.index, inplace=True)
            lv.ext_grid.drop(lv.ext_grid.index, inplace=True)
            for bus, (p, q) in loads_by_community[c.name].items():
                pp.create_load(lv, int(bus), p_mw=p, q_mvar=q)
            lv.bus["name"] = [f"{c.name}/{b}" for b in lv.bus.index]
            hv = int(c.transformer.hv_bus)
            lv.bus.loc[hv, "name"] = f"{c.name}/hv"
            for n in (net, lv):  # merge_nets refuses NaN in boolean columns
                for table, col in (("load", "controllable"), ("sgen", "controllable"),
                                   ("trafo", "tap_phase_shifter")):
                    values = n[table][col] if col in n[table] else False
                    n[table][col] = pd.Series(values, index=n[table].index).fillna(
                        False).astype(bool)
            net = pp.toolbox.merge_nets(net, lv, validate=False, merge_results=False)
            merged_hv = int(net.bus.index[net.bus.name == f"{c.name}/hv"][0])
            pp.toolbox.fuse_buses(net, c.mv_bus, merged_hv)
            names[c.name] = lv.bus.name
        pp.runpp(net)
    return net


@pytest.mark.parametrize("case_name", ["tiny", "paper"])
def test_ac_network_agrees_with_pandapower_run_directly(case_name):
    case = load_case(case_name) if case_name == "tiny" else load_case("paper")
    ts = case.timeline[1]
    rng = np.random.default_rng(0)
    ac = ACNetwork(case)
    loads = {}
    for c in case.communities:
        buses = ac.lv_load_index[c.name].index
        p = pd.Series(rng.uniform(-0.002, 0.004, len(buses)), index=buses)
        q = pd.Series(rng.uniform(0.0, 0.001, len(buses)), index=buses)
        ac.set_feeder(c.name, {str(b): v for b, v in p.items()}, q)
        loads[c.name] = {b: (p[b], q[b]) for b in buses}
    gen_p = {g: 0.3 * row.p_max_mw for g, row in case.generators.iterrows()}
    gen_q = dict.fromkeys(case.generators.index, 0.01)
    pv_p = {n: 0.5 * row.p_peak_mw for n, row in case.pv_plants.iterrows()}
    mv_p, mv_q = case.mv_load_p_mw.loc[ts], case.mv_load_q_mvar.loc[ts]
    ac.set_mv(mv_p, mv_q, gen_p, gen_q, pv_p)
    step = ac.run()
    assert step.converged
    direct = _direct_pandapower(case, loads, mv_p, mv_q, gen_p, gen_q, pv_p)
    # MV buses keep their indices in both; LV buses are matched by name
    mv = case.mv_network.buses
    assert np.allclose(step.vm_pu.loc[mv], direct.res_bus.vm_pu.loc[mv], atol=1e-8)
    for c in case.communities:
        ours = ac.net.bus.loc[ac.lv_bus_index[c.name].to_numpy(), "name"]
        theirs = direct.res_bus.vm_pu.copy()
        theirs.index = direct.bus.name.loc[theirs.index]
        assert np.allclose(step.vm_pu.loc[ours.index].to_numpy(),
                           theirs.loc[ours.to_numpy()].to_numpy(), atol=1e-8)
    assert step.p_sub_mw == pytest.approx(float(direct.res_ext_grid.p_mw.sum()), abs=1e-8)
    loss = direct.res_line.pl_mw.sum() + direct.res_trafo.pl_mw.sum()
    assert step.p_loss_mw == pytest.approx(loss, abs=1e-8)
    # LinDistFlow is an approximation: close to AC, but not equal
    assert 0 < step.ldf_mv_error_pu < 0.02 and 0 < step.ldf_lv_error_pu < 0.02
    # the envelopes: AC from pandapower's own voltages; LinDistFlow within its error of them
    names = direct.bus.name
    lv = np.concatenate([direct.res_bus.vm_pu[names.str.startswith(f"{c.name}/", na=False)]
                         .to_numpy() for c in case.communities])
    ac_env = {"mv": direct.res_bus.vm_pu.loc[mv].to_numpy(), "lv": lv}
    for level, values in ac_env.items():
        assert step.envelope[level, "ac"] == pytest.approx((values.min(), values.max()),
                                                           abs=1e-8)
        error = step.ldf_mv_error_pu if level == "mv" else step.ldf_lv_error_pu
        assert np.abs(np.subtract(step.envelope[level, "ldf"], step.envelope[level, "ac"])
                      ).max() <= error + 1e-12
    summary = step.summary()
    assert summary["lv_vm_min_ac_pu"] == step.envelope["lv", "ac"][0]
    assert summary["mv_vm_max_ldf_pu"] == step.envelope["mv", "ldf"][1]


def test_ldf_voltages_match_the_closed_form_for_one_withdrawal():
    """One withdrawal p at a leaf: w_leaf = w_root − 2 p Σ r along its path."""
    case = load_case("tiny")
    mv = case.mv_network
    p = np.zeros(mv.n_buses)
    q = np.zeros(mv.n_buses)
    leaf = mv.n_buses - 1
    p[leaf] = 0.1
    v = ldf_voltages(mv, p, q, 1.0)
    path = mv.path_matrix[:, leaf].toarray().ravel() > 0
    drop = float((mv.branches["r_pu"].to_numpy() * path).sum()) * 0.1
    assert v[leaf] ** 2 == pytest.approx(1.0 - 2 * drop)


def test_nonconverging_power_flow_is_an_outcome():
    case = load_case("tiny")
    ac = ACNetwork(case)
    ts = case.timeline[0]
    ac.set_mv(case.mv_load_p_mw.loc[ts] * 1e4, case.mv_load_q_mvar.loc[ts] * 1e4, {}, {}, {})
    step = ac.run()
    assert not step.converged and step.message
    _json(step.summary())
    ac.set_mv(case.mv_load_p_mw.loc[ts], case.mv_load_q_mvar.loc[ts], {}, {}, {})
    assert ac.run().converged  # and the next step starts afresh


# -- the community's own dispatch and operation -----------------------------------------------
def test_local_dispatch_meets_the_cleared_exchange_at_the_cleared_own_cost():
    case = load_case("tiny")
    result = solve(case, "exact")
    for c in case.communities:
        sched = result.exchanges[result.exchanges.community == c.name]
        d = local_dispatch(c, case.community_settings, case.periods(), sched.p_mw.to_numpy())
        assert d.max_shortfall_mw < 1e-7
        assert np.allclose(d.p_ex_mw, sched.p_mw, atol=1e-7)
    total_own = sum(local_dispatch(c, case.community_settings, case.periods(),
                                   result.exchanges[result.exchanges.community == c.name]
                                   .p_mw.to_numpy()).own_cost for c in case.communities)
    assert total_own == pytest.approx(result.own_cost, abs=1e-6)


def test_battery_energy_follows_hand_arithmetic_and_stays_in_limits():
    case = load_case("tiny")
    c = next(c for c in case.communities if len(c.batteries))
    op = CommunityOperation(c, case.community_settings, error=ForecastError(0.5, 0.5, 1))
    result = solve(case, "exact")
    op.accept(case.timeline[0], result.exchanges[result.exchanges.community == c.name]
              .p_mw.to_numpy())
    bat = c.batteries
    e = bat["e_init_mwh"].to_numpy().copy()
    for k, ts in enumerate(case.timeline):
        out = op.step(ts, step_index=k)
        b = out.p_battery_mw
        if len(bat) == 1:
            eta_ch, eta_dis = bat.eta_ch.iloc[0], bat.eta_dis.iloc[0]
            e = e + case.step_h * (eta_ch * max(b, 0) - max(-b, 0) / eta_dis)
            assert out.e_mwh.iloc[0] == pytest.approx(e[0], abs=1e-12)
        assert ((out.e_mwh >= bat.e_min_mwh - 1e-9) & (out.e_mwh <= bat.e_max_mwh + 1e-9)).all()
        assert out.p_ex_mw == pytest.approx(float(out.lv_p_mw.sum()))


# -- whole Worlds ------------------------------------------------------------------------------
def test_world_in_process_reproduces_the_clearing_without_forecast_error(tmp_path):
    summary = simulate("tiny", days=1, out=tmp_path, **EXACT)
    _json(summary)
    comm = pd.read_csv(tmp_path / "communities.csv")
    assert len(comm) == 3 * 2
    clearing = pd.read_csv(next((tmp_path / "clearings").glob("*/exchanges.csv")))
    merged = comm.merge(clearing, left_on=["time", "entity"],
                        right_on=[clearing.time.str.replace(" ", "T"), "community"])
    assert len(merged) == 6
    # reality equals the forecast: the realised exchange is the cleared one
    assert np.allclose(merged["P[MW]"], merged["p_mw"], atol=1e-6)
    assert np.allclose(merged["P_scheduled[MW]"], merged["p_mw"], atol=1e-9)
    grid = pd.read_csv(tmp_path / "grid.csv")
    assert grid["converged"].all() and len(grid) == 3
    [day] = summary["days"]
    assert day["clearing"]["status"] == "optimal" and day["ac"]["not_converged"] == 0


def test_two_day_rolling_run_carries_battery_state_over(tmp_path):
    options = {"seed": 4, "horizons": 2}
    case = load_case("random", **options)
    simulate("random", options, days=2, out=tmp_path, load_sigma=0.2, pv_sigma=0.3, seed=7)
    energy = pd.read_csv(tmp_path / "communities__E_batteries_MWh.csv")
    power = pd.read_csv(tmp_path / "communities.csv")
    starts = sorted(p.name for p in (tmp_path / "clearings").iterdir())
    assert len(starts) == 2
    second = pd.read_csv(tmp_path / "clearings" / starts[1] / "batteries.csv")
    horizon = case.horizon_periods
    checked = 0
    for c in case.communities:
        bat = c.batteries
        if len(bat) != 1:
            continue
        name = bat.index[0]
        # hand arithmetic over the first horizon's realised battery power
        p = power[power.entity == c.name].sort_values("time")["P_battery[MW]"].to_numpy()
        e = bat.e_init_mwh.iloc[0]
        for b in p[:horizon]:
            e += case.step_h * (bat.eta_ch.iloc[0] * max(b, 0) - max(-b, 0) / bat.eta_dis.iloc[0])
        measured = energy[(energy.entity == c.name) & (energy.key == name)].sort_values("time")
        assert measured.value.iloc[horizon - 1] == pytest.approx(e, abs=1e-9)
        # the second clearing starts from exactly that energy
        first = second[(second.community == c.name) & (second.battery == name)].sort_values(
            "time").iloc[0]
        start = first.e_mwh - case.step_h * (bat.eta_ch.iloc[0] * first.p_ch_mw
                                             - first.p_dis_mw / bat.eta_dis.iloc[0])
        assert start == pytest.approx(e, abs=1e-6)
        checked += 1
    assert checked


def test_simulators_in_separate_processes_give_the_same_results(tmp_path):
    simulate("tiny", days=1, out=tmp_path / "python", seed=2)
    simulate("tiny", days=1, out=tmp_path / "cmd", mode="cmd", seed=2)
    for table in ("communities.csv", "grid.csv", "market.csv"):
        a = pd.read_csv(tmp_path / "python" / table)
        b = pd.read_csv(tmp_path / "cmd" / table)
        drop = [c for c in a.columns if c.endswith("_time[s]") or c == "solve_time[s]"
                or c == "pf_time[s]"]
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


def test_a_simulator_failing_in_another_process_fails_the_run(tmp_path):
    world = mosaik.World(sim_config("cmd"), **QUIET)
    system = add_system(world, "tiny", days=1)
    # run past the end of the case: the community simulator fails in its own process
    with pytest.raises(SimulationError, match="beyond the case's last period"):
        run_world(world, 2 * system.until, step=system.step)


def test_world_clears_with_ldd_admm_as_the_method_does_in_process(tmp_path):
    from mosaik_bilevel.methods.ldd_admm import solve_ldd_admm

    summary = simulate("tiny", days=1, method="ldd_admm", out=tmp_path, **EXACT)
    [day] = summary["days"]
    direct = solve_ldd_admm(load_case("tiny"), "dlmp")
    assert day["clearing"]["status"] == direct.status
    assert day["clearing"]["leader_cost"] == pytest.approx(direct.leader_cost, abs=1e-9)
    comm = pd.read_csv(tmp_path / "communities.csv").sort_values(["entity", "time"])
    ex = direct.exchanges.sort_values(["community", "time"])
    assert np.allclose(comm["P_scheduled[MW]"], ex["p_mw"], atol=1e-9)
    assert np.allclose(comm["P[MW]"], ex["p_mw"], atol=1e-6)


@pytest.mark.parametrize("mode", ["python", "cmd"])
def test_ldd_admm_as_same_time_loops_equals_the_method_in_process(tmp_path, mode):
    """Each iteration a mosaik pass; the community simulators solve their own steps."""
    from mosaik_bilevel.methods.ldd_admm import solve_ldd_admm

    summary = simulate("tiny", days=1, method="ldd_admm", out=tmp_path, mode=mode,
                       admm={"in_loop": True}, **EXACT)
    [day] = summary["days"]
    direct = solve_ldd_admm(load_case("tiny"), "dlmp")
    assert day["clearing"]["iterations"] == direct.admm.iterations
    assert day["clearing"]["leader_cost"] == pytest.approx(direct.leader_cost, abs=1e-12)
    comm = pd.read_csv(tmp_path / "communities.csv").sort_values(["entity", "time"])
    ex = direct.exchanges.sort_values(["community", "time"])
    assert np.allclose(comm["P_scheduled[MW]"], ex["p_mw"], atol=1e-12)
    grid = pd.read_csv(tmp_path / "grid.csv")
    assert grid["converged"].all() and len(grid) == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(proc, port: int, timeout_s: float = 60.0) -> None:
    """Wait until ``proc`` listens on ``port`` (without connecting: it accepts only mosaik)."""

    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        conns = psutil.Process(proc.pid).net_connections(kind="tcp")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            return
        time.sleep(0.1)
    raise TimeoutError(f"simulator did not listen on {port}")


def test_simulators_reached_by_connect_give_the_same_results(tmp_path):

    procs, addresses = [], {}
    try:
        for kind in ("community", "market", "grid"):
            port = _free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", f"mosaik_bilevel.simulators.{kind}",
                 f"127.0.0.1:{port}", "--remote"], stderr=subprocess.PIPE))
            addresses[kind] = f"127.0.0.1:{port}"
            _wait_listening(procs[-1], port)
        simulate("tiny", days=1, out=tmp_path / "connect", mode="connect",
                 addresses=addresses, seed=2)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    simulate("tiny", days=1, out=tmp_path / "python", seed=2)
    for table in ("communities.csv", "grid.csv"):
        a = pd.read_csv(tmp_path / "python" / table)
        b = pd.read_csv(tmp_path / "connect" / table)
        drop = [c for c in a.columns if c in ("pf_time[s]",)]
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


def test_a_run_that_fails_keeps_every_finished_day_on_disk(tmp_path):
    """Run past the case's second horizon: the third fails, the first two stay on disk."""
    options = {"seed": 4, "horizons": 2}
    case = load_case("random", **options)
    world = mosaik.World(sim_config("python"), **QUIET)
    system = add_system(world, "random", options, days=2, out=str(tmp_path))
    try:
        with pytest.raises(SimulationError, match=r"ValueError: .*beyond the case's last "
                           r"period"):
            run_world(world, 3 * system.until // 2, step=system.step)
    finally:
        world.shutdown()
    comm = pd.read_csv(tmp_path / "communities.csv")
    periods = 2 * case.horizon_periods
    assert comm["time"].nunique() >= case.horizon_periods  # the finished horizon at least
    assert comm["time"].nunique() <= periods
    assert len(list((tmp_path / "clearings").iterdir())) == 2
    assert (tmp_path / "grid.csv").exists()


def test_simulate_command_writes_results_and_rejects_bad_input(tmp_path, capsys):
    from mosaik_bilevel.cli import main

    assert main(["simulate", "--case", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["days"][0]["clearing"]["status"] == "optimal"
    assert (tmp_path / "communities.csv").exists() and (tmp_path / "grid.csv").exists()
    capsys.readouterr()
    assert main(["simulate", "--case", "tiny", "--days", "2", "--out", str(tmp_path / "b"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "days" in err and "the case has 1" in err
