"""Runs one can leave alone: real processes killed by real signals, failed clearings kept,
output folders owned by one run, and a killed run resumed to the tables of an unbroken one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from filelock import FileLock

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cli import main
from mosaik_bilevel.operation.market_operator import FALLBACK, MarketOperator
from mosaik_bilevel.results.run_folder import LOCK_FILE, RECORDED_FILE, RUN_FILE

#: every test here may start processes: none may hang the suite
pytestmark = pytest.mark.timeout(600)

CLI = [sys.executable, "-m", "mosaik_bilevel"]
#: The random case (seed 0) over four 2-hour horizons: its third clearing (from 04:00) is
#: infeasible from the battery state the communities measured, with no fault injected.
RANDOM_4 = ["simulate", "--case", "random", "--days", "4", "--quiet"]


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every recorder table, without wall-time columns."""
    frames = {}
    for path in sorted(out.glob("*.csv")):
        frame = pd.read_csv(path, float_precision="round_trip")
        frames[path.name] = frame.drop(columns=[c for c in frame.columns if "time[s]" in c])
    return frames


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    """The random case's four horizons, run in one go (exit 1: a clearing failed)."""
    out = tmp_path_factory.mktemp("unbroken")
    assert main([*RANDOM_4, "--out", str(out)]) == 1
    return out


# -- faults: a simulator's process dies ------------------------------------------------------
@pytest.mark.timeout(400)
@pytest.mark.parametrize("victim", ["community", "market", "grid"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_dead_simulator_ends_the_run_within_30_s_naming_it(tmp_path, victim, how):
    out = tmp_path / "out"
    proc = subprocess.Popen([*CLI, "simulate", "--case", "random", "--days", "8", "--mode",
                             "cmd", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not (
                (out / "clearings").exists() and any((out / "clearings").iterdir())):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the fault"
        children = psutil.Process(proc.pid).children(recursive=True)
        [target] = [c for c in children if f"simulators.{victim}" in " ".join(c.cmdline())]
        killed_at = time.monotonic()
        target.send_signal(how)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took <= 30
    assert proc.returncode == 3
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    sid = {"community": "communities"}.get(victim, victim)
    assert f"simulator '{sid}'" in lines[0] and signal.Signals(how).name in lines[0]
    assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    run = json.loads((out / RUN_FILE).read_text())
    assert run["status"] == "aborted" and sid in run["reason"]
    assert json.loads((out / "summary.json").read_text())["status"] == "aborted"


def test_ctrl_c_stops_a_run_with_every_finished_day_on_disk(tmp_path):
    out = tmp_path / "out"
    eight = ["simulate", "--case", "random", "--days", "8", "--quiet", "--out", str(out)]
    proc = subprocess.Popen([*CLI, *eight],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not (out / RECORDED_FILE).exists():
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    assert "stopped by SIGINT" in err
    run = json.loads((out / RUN_FILE).read_text())
    assert run["status"] == "interrupted" and "SIGINT" in run["reason"]
    committed = json.loads((out / RECORDED_FILE).read_text())
    for name, size in committed["tables"].items():  # every committed day whole on disk
        assert (out / name).stat().st_size >= size


# -- failed clearings are recorded outcomes --------------------------------------------------
@pytest.mark.parametrize("method", ["exact", "ldd_admm"])
def test_a_failed_clearing_is_written_with_its_status_reason_and_fallback(tmp_path, method):
    case = load_case("tiny")
    community = case.communities[0]
    too_full = {community.name: {str(b): 100.0 for b in community.batteries.index}}
    operator = MarketOperator(case, method, out=tmp_path)
    clearing = operator.clear(case.timeline[0], initial_energy_mwh=too_full)
    assert not clearing.ok and clearing.status == "infeasible"
    [folder] = tmp_path.iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "infeasible" and summary["scheduled"] is False
    assert summary["fallback"] == FALLBACK and summary["message"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half-made


def test_a_day_with_a_failed_clearing_says_so_and_exits_1(unbroken):
    summary = json.loads((unbroken / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_days"] == ["2016-05-24"]
    [day] = summary["days"]
    assert day["clearing"]["count"] == 4 and day["clearing"]["failed"] == 1
    [failure] = day["clearing"]["failures"]
    assert failure["start"].startswith("2016-05-24") and failure["status"] == "infeasible"
    failed = json.loads((unbroken / "clearings" / "2016-05-24T0400" / "summary.json")
                        .read_text())
    assert failed["scheduled"] is False and failed["fallback"] == FALLBACK
    # the fallback ran: no schedule for those steps
    comm = pd.read_csv(unbroken / "communities.csv")
    fallback = comm[comm["time"].isin(["2016-05-24T04:00:00", "2016-05-24T05:00:00"])]
    assert fallback["schedule_status"].eq("no_schedule").all()


# -- output folders: owned by one run --------------------------------------------------------
def test_a_folder_with_another_runs_results_is_refused(unbroken, capsys):
    before = _tables(unbroken)
    assert main([*RANDOM_4, "--out", str(unbroken)]) == 2
    err = capsys.readouterr().err
    assert "holds another run's results" in err and "--resume" in err
    after = _tables(unbroken)
    assert before.keys() == after.keys()
    for name, frame in before.items():  # nothing appended twice
        pd.testing.assert_frame_equal(frame, after[name])


def test_a_folder_in_use_is_refused_and_resume_checks_the_run(unbroken, tmp_path, capsys):
    with FileLock(unbroken / LOCK_FILE).acquire(timeout=0):  # as a concurrent run holds it
        assert main([*RANDOM_4, "--out", str(unbroken), "--resume"]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert main([*RANDOM_4, "--out", str(unbroken), "--resume", "--error-seed", "3"]) == 2
    assert "seed: was 0, now 3" in capsys.readouterr().err
    assert main([*RANDOM_4, "--out", str(unbroken), "--resume", "--overwrite"]) == 2


def test_overwrite_replaces_a_run_and_a_solve_leaves_no_stale_table(tmp_path):
    out = tmp_path / "run"
    # a run refused on bad input leaves no results behind: the next one needs no --overwrite
    assert main(["simulate", "--case", "tiny", "--days", "5", "--out", str(out),
                 "--quiet"]) == 2
    assert main(["simulate", "--case", "tiny", "--out", str(out), "--quiet"]) == 0
    (out / "mine.txt").write_text("not ours")
    assert main(["simulate", "--case", "tiny", "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    assert (out / "mine.txt").exists()  # only the run's own files were replaced
    assert len(pd.read_csv(out / "grid.csv")) == load_case("tiny").horizon_periods
    solved = tmp_path / "solve"
    assert main(["solve", "--case", "tiny", "--out", str(solved), "--quiet"]) == 0
    assert (solved / "ac.csv").exists()
    assert main(["solve", "--case", "tiny", "--out", str(solved), "--quiet", "--no-ac"]) == 0
    assert not (solved / "ac.csv").exists()


# -- resume: a killed run continues to the tables of an unbroken one -------------------------
@pytest.mark.timeout(400)
def test_a_run_killed_after_day_2_of_4_resumes_to_the_unbroken_runs_tables(unbroken, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([*CLI, *RANDOM_4, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    day_3 = "2016-05-24T04:00:00"  # the four horizons start at 00, 02, 04 and 06 h
    try:
        while proc.poll() is None:
            recorded = out / RECORDED_FILE
            if recorded.exists() and json.loads(recorded.read_text())["until"] >= day_3:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert json.loads((out / RECORDED_FILE).read_text())["until"] < "2016-05-24T08:00:00"
    # a torn day: rows appended after the last commit, as a kill between two appends leaves
    with (out / "communities.csv").open("a") as f:
        f.write("2016-05-24T04:00:00,c0,0.1,0.2\n")
    assert main([*RANDOM_4, "--out", str(out), "--resume"]) == 1  # day 3's failed clearing
    run = json.loads((out / RUN_FILE).read_text())
    assert run["status"] == "failed" and len(run["resumed"]) == 1
    resumed, expected = _tables(out), _tables(unbroken)
    assert resumed.keys() == expected.keys()
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(resumed[name], frame, check_exact=True, obj=name)
    assert sorted(p.name for p in (out / "clearings").iterdir()) == sorted(
        p.name for p in (unbroken / "clearings").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"][0]["clearing"]["count"] == 4


def test_resume_refuses_a_table_cut_below_its_committed_size(unbroken, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(unbroken, out)
    grid = out / "grid.csv"
    before = {p.name: p.stat().st_size for p in out.glob("*.csv")}
    with grid.open("r+b") as f:
        f.truncate(grid.stat().st_size // 2)
    assert main([*RANDOM_4, "--out", str(out), "--resume"]) == 2
    assert "grid.csv: shorter than its committed" in capsys.readouterr().err
    after = {p.name: p.stat().st_size for p in out.glob("*.csv")}
    assert {k: v for k, v in after.items() if k != "grid.csv"} == {
        k: v for k, v in before.items() if k != "grid.csv"}  # nothing else was cut
