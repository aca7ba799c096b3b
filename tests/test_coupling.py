"""Coupling with other mosaik components, each with the real package.

- a community's realised load from ``mosaik-csv``;
- results collected by ``mosaik-hdf5`` into an HDF5 file, and by mosaik's own output
  simulator;
- the communities' exchanges connected to a ``mosaik-pandapower-2`` grid instead of ours.
"""

from __future__ import annotations

from importlib import resources

import h5py
import mosaik
import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from mosaik_bilevel import load_case
from mosaik_bilevel.scenarios.system import QUIET, add_system, run_world, sim_config

pytest.importorskip("mosaik_csv", reason="install the test extras: pip install -e .[test]")
pytest.importorskip("mosaik_components.pandapower")
pytest.importorskip("mosaik_hdf5")

CSV_LOAD = [0.011, 0.017, 0.013]  # MW: community A's realised load in the three periods


def _world(extra: dict) -> mosaik.World:
    return mosaik.World({**sim_config("python"), **extra}, **QUIET)


def test_csv_load_drives_a_community_and_mosaiks_collector_records_it(tmp_path):
    case = load_case("tiny")
    path = tmp_path / "realised.csv"
    times = [t.strftime("%Y-%m-%d %H:%M:%S") for t in case.timeline]
    path.write_text("Realised\nDate,P_load[MW]\n" + "".join(
        f"{t},{v}\n" for t, v in zip(times, CSV_LOAD, strict=True)))
    world = _world({"CSV": {"python": "mosaik_csv:CSV"},
                    "Collector": {"python": "mosaik.basic_simulators:OutputSimulator"}})
    system = add_system(world, "tiny", days=1, load_sigma=0.2, pv_sigma=0.2, seed=5)
    csv = world.start("CSV", sim_start=times[0], datafile=str(path)).Realised.create(1)[0]
    world.connect(csv, system.communities["A"], "P_load[MW]")
    collector_sim = world.start("Collector")
    collector = collector_sim.Dict.create(1)[0]
    for entity in system.communities.values():
        world.connect(entity, collector, "P_load[MW]", "P_load_forecast[MW]", "P[MW]")
    world.run(until=system.until, print_progress=False, shutdown=False)
    data = collector_sim.get_dict(collector.eid)
    world.shutdown()
    steps = sorted(data)
    assert len(steps) == 3
    got_a = [data[t]["P_load[MW]"]["communities.A"] for t in steps]
    assert got_a == pytest.approx(CSV_LOAD)
    # B meets its own seeded reality, not the CSV and not the forecast
    got_b = [data[t]["P_load[MW]"]["communities.B"] for t in steps]
    forecast_b = [data[t]["P_load_forecast[MW]"]["communities.B"] for t in steps]
    assert not np.allclose(got_b, CSV_LOAD) and not np.allclose(got_b, forecast_b)


def test_mosaik_hdf5_records_what_our_recorder_writes(tmp_path):
    """mosaik-hdf5's database and our recorder's tables hold the same values per step."""
    world = _world({"DB": {"python": "mosaik_hdf5:MosaikHdf5"}})
    system = add_system(world, "tiny", days=1, out=str(tmp_path), seed=5)
    db = world.start("DB", step_size=system.step, duration=system.until).Database(
        filename=str(tmp_path / "results.hdf5"))
    community_attrs = ("P[MW]", "P_load[MW]", "E[MWh]", "imbalance[MW]")
    grid_attrs = ("P_loss[MW]", "vm_min[pu]", "loading_max[%]")
    for entity in system.communities.values():
        world.connect(entity, db, *community_attrs)
    world.connect(system.grid, db, *grid_attrs)
    run_world(world, system.until, step=system.step)

    communities = pd.read_csv(tmp_path / "communities.csv").sort_values("time")
    grid = pd.read_csv(tmp_path / "grid.csv").sort_values("time")
    with h5py.File(tmp_path / "results.hdf5", "r") as f:
        series = f["Series"]
        assert f"Relations/{system.grid.full_id}" in f  # the entities' relations too
        for name, entity in system.communities.items():
            own = communities[communities.entity == name]
            assert len(own) == 3
            for attr in community_attrs:
                np.testing.assert_allclose(series[entity.full_id][attr][:],
                                           own[attr].to_numpy(), rtol=0, atol=1e-12)
        for attr in grid_attrs:
            np.testing.assert_allclose(series[system.grid.full_id][attr][:],
                                       grid[attr].to_numpy(), rtol=0, atol=1e-12)


def test_exchanges_drive_a_mosaik_pandapower_2_grid(tmp_path):
    case = load_case("tiny")
    net_file = resources.files("mosaik_bilevel.cases") / "tiny" / "mv_network.json"
    world = _world({"PandaPower": {"python": "mosaik_components.pandapower:Simulator"}})
    system = add_system(world, "tiny", days=1, grid=False, out=str(tmp_path), seed=3)
    mp2 = world.start("PandaPower", sim_id="mp2", step_size=3600)
    grid = mp2.Grid(json=str(net_file))
    buses = {e.eid: e for e in grid.children if e.type == "Bus"}
    for c in case.communities:
        bus = buses[f"Bus-{c.mv_bus}"]
        world.connect(system.communities[c.name], bus, ("P[MW]", "P_load[MW]"),
                      ("Q[MVar]", "Q_load[MVar]"))
        world.connect(bus, system.recorder, "P[MW]", "Vm[pu]")
    run_world(world, system.until, step=system.step)

    communities = pd.read_csv(tmp_path / "communities.csv")
    mp2_buses = pd.read_csv(tmp_path / "mp2_Bus.csv")
    net = pp.from_json(str(net_file))
    for c in case.communities:
        own = communities[communities.entity == c.name].sort_values("time")
        at_bus = mp2_buses[mp2_buses.entity == f"Bus-{c.mv_bus}"].sort_values("time")
        fixed = float(net.load.loc[net.load.bus == c.mv_bus, "p_mw"].sum())
        # the bus's net withdrawal in mosaik-pandapower-2 is its own load plus the exchange
        assert np.allclose(at_bus["P[MW]"].to_numpy(), own["P[MW]"].to_numpy() + fixed,
                           atol=1e-9)
        assert at_bus["Vm[pu]"].between(0.8, 1.2).all()
