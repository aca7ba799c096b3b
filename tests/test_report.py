"""``mosaik-bilevel report``: figures present and drawn, tables equal to the run's own data."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from mosaik_bilevel import solve
from mosaik_bilevel.analysis.report import ReportInputError, read_run, write_report
from mosaik_bilevel.analysis.report.figures import FIGURES
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.methods.ldd_admm import solve_ldd_admm
from mosaik_bilevel.scenarios.run import simulate


def _solve_folder(path, method="exact"):
    case = load_case("tiny")
    if method == "ldd_admm":
        result = solve_ldd_admm(case, "dlmp")
    else:
        result = solve(case, method, "dlmp")  # with the AC check
    result.write(path)
    return result


def _key_figures(page: str) -> dict[str, str]:
    return dict(re.findall(r'<td data-key="([^"]+)">([^<]*)</td>', page))


def _column(page: str, table: str, col: str) -> list[str]:
    block = re.search(rf'<table class="{table}">(.*?)</table>', page, re.S).group(1)
    return re.findall(rf'data-col="{re.escape(col)}">([^<]*)</td>', block)


def _assert_drawn(run):
    """Every figure the run has is drawn with labelled axes and something on them."""
    drawn = []
    for stem, (draw, _caption) in FIGURES.items():
        fig = draw(run)
        if fig is None:
            continue
        drawn.append(stem)
        for ax in fig.axes:
            if not ax.get_visible() or ax.get_label() == "<colorbar>":
                continue
            assert ax.get_ylabel(), (stem, ax.get_title())
            assert ax.lines or ax.collections or ax.patches, (stem, ax.get_title())
    return drawn


def test_report_of_an_exact_solve(tmp_path):
    result = _solve_folder(tmp_path / "run")
    report = write_report(tmp_path / "run")
    assert report.figures == ["exchanges", "dlmp", "battery_energy", "mv_dispatch",
                              "voltages", "violations"]
    assert set(report.omitted) == {"admm"}
    for stem in report.figures:
        png = report.path.parent / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    page = report.path.read_text()
    for stem in report.figures:
        assert f'src="{stem}.png"' in page
    keys = _key_figures(page)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("leader_cost", "follower_cost", "system_cost", "payments"):
        assert float(keys[key]) == pytest.approx(summary[key], rel=1e-5)
    assert keys["status"] == "optimal" and keys["certificate"] == "passed"
    assert int(keys["AC: steps"]) == result.periods
    assert _column(page, "costs", "run") == ["this run"]
    assert float(_column(page, "costs", "leader_cost")[0]) == pytest.approx(
        result.leader_cost, rel=1e-5)
    assert _assert_drawn(read_run(tmp_path / "run")) == report.figures


def test_report_of_an_ldd_admm_solve_shows_its_residuals(tmp_path):
    result = _solve_folder(tmp_path, "ldd_admm")
    run = read_run(tmp_path)
    assert len(next(iter(run.residuals.values()))) == result.admm.iterations
    report = write_report(tmp_path)
    assert "admm" in report.figures
    assert "battery_energy" in report.omitted  # its device schedules are private
    assert _key_figures(report.path.read_text())["iterations"] == str(
        result.admm.iterations)


def test_report_of_a_simulation(tmp_path):
    options = {"seed": 3, "horizons": 2}
    summary = simulate("random", options, days=2, out=tmp_path, seed=1)
    report = write_report(tmp_path)
    assert {"exchanges", "dlmp", "battery_energy", "mv_dispatch", "voltages",
            "violations"} <= set(report.figures)
    run = read_run(tmp_path)
    _assert_drawn(run)
    # the voltage envelopes are the grid simulator's outputs
    grid = pd.read_csv(tmp_path / "grid.csv")
    lv_ac = run.voltages[(run.voltages.level == "LV") & (run.voltages.model == "AC")]
    assert lv_ac["vm_min_pu"].min() == pytest.approx(grid["vm_lv_min[pu]"].min())
    assert min(lv_ac["vm_min_pu"].min(), run.voltages["vm_min_pu"].min()) >= 0.5
    page = report.path.read_text()
    # one cost row per clearing, equal to the clearing's own summary
    clearings = sorted((tmp_path / "clearings").glob("*/summary.json"))
    assert len(_column(page, "costs", "run")) == len(clearings) >= 2
    first = json.loads(clearings[0].read_text())
    assert float(_column(page, "costs", "leader_cost")[0]) == pytest.approx(
        first["leader_cost"], rel=1e-5)
    # the per-day table: one row per simulated day
    assert _column(page, "days", "day") == [d["day"] for d in summary["days"]]


def test_report_of_a_collection_and_bad_folders(tmp_path):
    a = _solve_folder(tmp_path / "all" / "exact")
    b = _solve_folder(tmp_path / "all" / "integrated", "integrated")
    report = write_report(tmp_path / "all")
    page = report.path.read_text()
    assert _column(page, "costs", "run") == ["exact", "integrated"]
    costs = [float(v) for v in _column(page, "costs", "system_cost")]
    assert costs == pytest.approx([a.system_cost, b.system_cost], rel=1e-5)
    assert report.figures == []

    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="empty"):
        read_run(tmp_path / "empty")
    proc = subprocess.run([sys.executable, "-m", "mosaik_bilevel", "report",
                           str(tmp_path / "empty")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no summary.json" in proc.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(ReportInputError, match=r"summary\.json: not valid JSON"):
        read_run(broken)
