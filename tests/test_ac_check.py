"""The AC check of a solved horizon (mosaik_bilevel.operation.ac_check), part of solve()."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mosaik_bilevel import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.methods.exact import Solver
from mosaik_bilevel.model.follower import build_follower
from mosaik_bilevel.operation.ac_check import (
    AC_COLUMNS,
    ac_summary,
    check_dispatch,
)
from mosaik_bilevel.operation.ac_network import ACNetwork


@pytest.mark.parametrize("method", ["exact", "integrated"])
def test_validation_meets_the_solved_exchanges_and_balances_power(method):
    case = load_case("tiny")
    result = Solver(case, method, "dlmp").solve()
    table = check_dispatch(case, result.exchange_p_mw, result.mv)
    assert list(table.columns) == list(AC_COLUMNS)
    assert len(table) == result.periods and table["converged"].all()
    # every community's own dispatch meets the solved exchange
    assert table["schedule_shortfall_mw"].max() < 1e-6
    # pandapower's balance: import = MV loads + exchanges − units − PV + losses
    times = table["time"]
    ex = result.exchanges.groupby("time")["p_mw"].sum().to_numpy()
    disp = result.mv_dispatch[result.mv_dispatch["kind"] != "upstream"]
    gen = disp.groupby(disp["time"].astype(str))["p_mw"].sum()
    gen = np.array([gen.get(str(t), 0.0) for t in times])
    loads = case.mv_load_p_mw.loc[times].sum(axis=1).to_numpy()
    balance = loads + ex - gen + table["p_loss_mw"].to_numpy()
    assert np.allclose(table["p_sub_mw"].to_numpy(), balance, atol=1e-6)
    # the planned import is LinDistFlow's, lossless: it falls short of AC by the losses
    gap = table["p_sub_mw"] - table["p_sub_planned_mw"]
    assert np.allclose(gap, table["p_loss_mw"], atol=1e-6)
    summary = ac_summary(table).as_dict()
    assert summary["steps"] == result.periods and summary["not_converged"] == 0
    assert summary["vm_min_pu"] == pytest.approx(
        min(table["mv_vm_min_ac_pu"].min(), table["lv_vm_min_ac_pu"].min()))


def _run(*args):
    return subprocess.run([sys.executable, "-m", "mosaik_bilevel", *args],
                          capture_output=True, text=True, timeout=600)


def test_python_and_the_command_line_write_the_same_files(tmp_path):
    """solve() checks the dispatch in AC as the CLI does: the same tables, ac.csv included."""
    proc = _run("solve", "--case", "tiny", "--out", str(tmp_path / "cli"))
    assert proc.returncode == 0, proc.stderr
    solve("tiny").write(tmp_path / "py")
    cli = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert cli == sorted(p.name for p in (tmp_path / "py").iterdir())
    assert "ac.csv" in cli
    for name in cli:
        if name.endswith(".csv"):
            pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cli" / name),
                                          pd.read_csv(tmp_path / "py" / name))
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("cli", "py"))
    assert a["ac"] == b["ac"] and a["ac"]["steps"] == 3
    assert {k: v for k, v in a.items() if k != "times_s"} == {
        k: v for k, v in b.items() if k != "times_s"}
    # ac=False (--no-ac) leaves the check out
    solve("tiny", ac=False).write(tmp_path / "no_ac")
    assert not (tmp_path / "no_ac" / "ac.csv").exists()
    assert "ac" not in json.loads((tmp_path / "no_ac" / "summary.json").read_text())


def test_a_bus_without_a_voltage_band_gets_the_same_default_in_the_clearing_and_the_ac_check():
    case = load_case("tiny")
    net = case.mv_net
    net.bus[["min_vm_pu", "max_vm_pu"]] = np.nan  # an MV network that declares no band
    case.__dict__.pop("mv_network", None)  # its radial form is cached: read it again
    follower = build_follower(case, case.periods())
    a = follower.model.arrays
    w = follower.mv.w.ids.ravel()
    assert np.allclose(a.col_lower[w], 0.90 ** 2) and np.allclose(a.col_upper[w], 1.10 ** 2)
    ac = ACNetwork(case)
    mv = ac.vm_min_pu.loc[case.mv_network.buses], ac.vm_max_pu.loc[case.mv_network.buses]
    assert np.allclose(mv[0], 0.90) and np.allclose(mv[1], 1.10)
    assert case.voltage_bands()["mv_vm_band_pu"] == [0.90, 1.10]
