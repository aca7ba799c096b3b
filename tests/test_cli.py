"""The ``mosaik-bilevel`` command, run as a user runs it (a subprocess)."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.tiny import FOLDER


def run(*args):
    return subprocess.run([sys.executable, "-m", "mosaik_bilevel", *args],
                          capture_output=True, text=True, timeout=600)


def test_solve_writes_summary_and_tables(tmp_path):
    out = tmp_path / "out"
    proc = run("solve", "--case", "tiny", "--method", "exact", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "certificate     passed" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    reference = solve(load_case("tiny"), "exact", "dlmp")
    assert summary["status"] == "optimal" and summary["certificate"]["passed"]
    for key in ("leader_cost", "follower_cost", "system_cost"):
        assert summary[key] == pytest.approx(getattr(reference, key), rel=1e-9)
    assert summary["times_s"]["solve"] > 0
    exchanges = pd.read_csv(out / "exchanges.csv")
    assert list(exchanges.columns[:4]) == ["community", "time", "p_mw", "q_mvar"]
    assert len(exchanges) == 2 * 3  # communities × periods
    assert exchanges["payment"].sum() == pytest.approx(summary["payments"], rel=1e-9)
    dlmp = pd.read_csv(out / "dlmp.csv")
    assert len(dlmp) == 4 * 3 and {"dlmp_per_mwh", "dlmp_lp_per_mwh"} <= set(dlmp.columns)
    for name in ("mv_dispatch", "batteries", "rooftop_pv", "shiftable", "mv_voltage",
                 "periods"):
        assert (out / f"{name}.csv").exists()
    ac = pd.read_csv(out / "ac.csv")
    assert len(ac) == 3 and ac["converged"].all()
    assert summary["ac"]["steps"] == 3 and summary["ac"]["vm_min_pu"] == pytest.approx(
        min(ac["mv_vm_min_ac_pu"].min(), ac["lv_vm_min_ac_pu"].min()))
    assert "AC validation   3 periods, 0 not converged" in proc.stdout
    proc = run("solve", "--case", "tiny", "--out", str(tmp_path / "no_ac"), "--no-ac",
               "--quiet")
    assert proc.returncode == 0 and not (tmp_path / "no_ac" / "ac.csv").exists()


def test_reference_methods_from_the_command_line(tmp_path):
    for method in ("hpr", "integrated", "standalone"):
        proc = run("solve", "--case", "tiny", "--method", method, "--pricing", "tariff",
                   "--out", str(tmp_path / method), "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert json.loads((tmp_path / method / "summary.json").read_text())["method"] == method


def test_bad_input_gives_one_clear_line(tmp_path):
    proc = run("solve", "--case", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "no such case" in proc.stderr
    assert "Traceback" not in proc.stderr

    folder = tmp_path / "case"
    shutil.copytree(FOLDER, folder)
    doc = yaml.safe_load((folder / "case.yaml").read_text())
    doc["costs"]["battery_wear_per_mwh"] = -3
    (folder / "case.yaml").write_text(yaml.safe_dump(doc))
    proc = run("solve", "--case", str(folder), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "case.yaml: costs.battery_wear_per_mwh: must be a number >= 0.0" in proc.stderr

    proc = run("solve", "--case", "paper", "--step-minutes", "7", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "paper: step_minutes: must be a multiple of 15" in (
        proc.stderr)


def test_export_case_round_trip(tmp_path):
    proc = run("export-case", "--case", "tiny", "--out", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stderr
    a = solve(load_case(tmp_path / "t"), "exact", "dlmp")
    b = solve(load_case("tiny"), "exact", "dlmp")
    assert a.leader_cost == pytest.approx(b.leader_cost, rel=1e-12)
