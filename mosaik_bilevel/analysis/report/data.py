"""What a report shows, read from an output folder of ``solve``, ``simulate`` or
``experiments`` into tidy tables of one shape whichever wrote them.

A folder is a *solve* (``summary.json`` with a ``method``), a *simulation* (``summary.json``
with ``days``) or a *collection* (no summary of its own; solve or simulation folders below
it). Every table may be missing (a method that keeps device schedules private has no battery
table, a solve without AC validation no AC voltages); the report leaves out what is missing
and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import MosaikBilevelError
from ...results.files import (
    CLEARINGS_FOLDER,
    COMMUNITY_TO_SOLVE,
    GRID_TO_AC,
    MARKET_DLMP,
    MARKET_P_GEN,
    MARKET_P_PV,
    MARKET_SUBSTATION,
    SIM_IDS,
    SOLVE_TABLES,
    SUMMARY_FILE,
    recorder_file,
)

#: Columns of the cost table, in order.
COST_COLUMNS = ("run", "method", "pricing", "start", "status", "leader_cost",
                "communities_own_cost", "payments", "follower_cost", "system_cost",
                "solve_s", "iterations")


#: Tables and figures ``mosaik-bilevel experiments`` writes beside its runs.
FINDING_TABLES = ("deviation_by_day", "follower_cost_by_day", "hpr")
FINDING_FIGURES = ("deviation", "follower_cost", "hpr")


class ReportInputError(MosaikBilevelError):
    """The folder holds no output the report can read."""


@dataclass
class RunData:
    """One run's tables for the report (see the module docstring for their shapes).

    exchanges
        ``community, time, p_mw`` (+ ``p_scheduled_mw`` in a simulation: realised and
        cleared).
    dlmp
        ``bus, time, dlmp_per_mwh``.
    battery_energy
        ``community, time, e_mwh`` (summed over the community's batteries).
    mv_dispatch
        ``source, time, p_mw`` with source ``substation``, ``conventional`` or ``pv``.
    voltages
        ``time, level, model, vm_min_pu, vm_max_pu``; level ``MV``/``LV``, model ``AC`` or
        ``LinDistFlow``.
    violations
        ``time, converged, vm_violations, loading_violations``.
    residuals
        Clearing label → its LDD-ADMM residual table (``iteration, primal_residual,
        dual_residual, eps_primal, eps_dual, rho``).
    costs
        One row per solve or clearing (:data:`COST_COLUMNS`).
    """

    folder: Path
    kind: str
    summary: dict
    exchanges: pd.DataFrame | None = None
    dlmp: pd.DataFrame | None = None
    battery_energy: pd.DataFrame | None = None
    mv_dispatch: pd.DataFrame | None = None
    voltages: pd.DataFrame | None = None
    violations: pd.DataFrame | None = None
    residuals: dict[str, pd.DataFrame] = field(default_factory=dict)
    costs: pd.DataFrame | None = None
    days: pd.DataFrame | None = None
    ac_correction: pd.DataFrame | None = None  # a solve's AC-correction rounds
    step_h: float = 1.0
    #: experiments' findings (collection of ``mosaik-bilevel experiments``): tables by name,
    #: figures as files, and the runs below with a report of their own
    findings: dict[str, pd.DataFrame] = field(default_factory=dict)
    finding_figures: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)


def read_run(folder) -> RunData:
    """Read an output folder (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportInputError(f"{folder}: no such folder")
    summary = _json(folder / SUMMARY_FILE)
    if summary is not None and "days" in summary:
        return _simulation(folder, summary)
    if summary is not None and "method" in summary:
        return _solve(folder, summary)
    runs = [p.parent for p in sorted(folder.rglob(SUMMARY_FILE))
            if p.parent != folder and CLEARINGS_FOLDER not in p.parent.parts[len(folder.parts):]]
    if not runs:
        raise ReportInputError(f"{folder}: no summary.json of a solve or simulate run in it "
                               f"or below it")
    data = RunData(folder, "collection", {"runs": [str(r.relative_to(folder)) for r in runs]})
    data.costs = _costs_below(folder)
    data.runs = runs
    experiments = _json(folder / "experiments.json")
    if experiments is not None:
        data.summary.update(experiments=experiments)
        for name in FINDING_TABLES:
            table = _csv(folder / f"{name}.csv")
            if table is not None:
                data.findings[name] = table
        data.finding_figures = [folder / f"{stem}.png" for stem in FINDING_FIGURES
                                if (folder / f"{stem}.png").exists()]
    return data


# -- solve ------------------------------------------------------------------------------------
def _solve(folder: Path, summary: dict) -> RunData:
    data = RunData(folder, "solve", summary, step_h=float(summary.get("step_h") or 1.0))
    ex = _solve_table(folder, "exchanges")
    if ex is not None:
        data.exchanges = ex[["community", "time", "p_mw"]]
    dl = _solve_table(folder, "dlmp")
    if dl is not None:
        data.dlmp = dl[["bus", "time", "dlmp_per_mwh"]]
    bat = _solve_table(folder, "batteries")
    if bat is not None:
        data.battery_energy = bat.groupby(["community", "time"], as_index=False)["e_mwh"].sum()
    disp = _solve_table(folder, "mv_dispatch")
    if disp is not None:
        d = disp.assign(source=disp["kind"].replace({"upstream": "substation"}))
        data.mv_dispatch = d.groupby(["source", "time"], as_index=False)["p_mw"].sum()
    ac = _solve_table(folder, "ac")
    if ac is not None:
        data.voltages = _envelopes(ac)
        data.violations = ac[["time", "converged", "vm_violations", "loading_violations"]]
    res = _solve_table(folder, "residuals")
    if res is not None:
        data.residuals[summary.get("start", "")] = res
    data.ac_correction = _solve_table(folder, "ac_correction")
    below = _costs_below(folder)
    own = _cost_row(summary, "this run")
    data.costs = pd.concat([own, below], ignore_index=True) if len(below) else own
    return data


# -- simulate ---------------------------------------------------------------------------------
def _simulation(folder: Path, summary: dict) -> RunData:
    data = RunData(folder, "simulate", summary)
    comm = _csv(folder / f"{recorder_file(SIM_IDS['community'])}.csv")
    if comm is not None:
        data.step_h = _step_h(comm["time"])
        comm = comm.rename(columns=COMMUNITY_TO_SOLVE)
        data.exchanges = comm[["community", "time", "p_mw", "p_scheduled_mw"]]
        if "e_mwh" in comm:
            data.battery_energy = comm[["community", "time", "e_mwh"]]
    market = SIM_IDS["market"]
    dl = _csv(folder / f"{recorder_file(market, MARKET_DLMP)}.csv")
    if dl is not None:
        data.dlmp = dl.rename(columns={"key": "bus", "value": "dlmp_per_mwh"})[
            ["bus", "time", "dlmp_per_mwh"]]
    data.mv_dispatch = _simulated_dispatch(folder, market)
    grid = _csv(folder / f"{recorder_file(SIM_IDS['grid'])}.csv")
    if grid is not None:
        grid = grid.rename(columns=GRID_TO_AC)
        data.voltages = _envelopes(grid)
        data.violations = grid[["time", "converged", "vm_violations", "loading_violations"]]
    clearings = folder / CLEARINGS_FOLDER
    data.costs = _costs_below(clearings, label="start")
    for path in sorted(clearings.glob("*/residuals.csv")):
        data.residuals[path.parent.name] = pd.read_csv(path)
    if summary.get("days"):
        data.days = pd.json_normalize(summary["days"])
    return data


def _simulated_dispatch(folder: Path, market: str) -> pd.DataFrame | None:
    """``source, time, p_mw`` from the market operator's recorded dispatch."""
    parts = []
    scalars = _csv(folder / f"{recorder_file(market)}.csv")
    if scalars is not None and MARKET_SUBSTATION in scalars:
        parts.append(scalars.assign(source="substation").rename(
            columns={MARKET_SUBSTATION: "p_mw"}))
    for attr, source in ((MARKET_P_GEN, "conventional"), (MARKET_P_PV, "pv")):
        t = _csv(folder / f"{recorder_file(market, attr)}.csv")
        if t is not None:
            parts.append(t.assign(source=source).rename(columns={"value": "p_mw"}))
    if not parts:
        return None
    d = pd.concat([p[["source", "time", "p_mw"]] for p in parts], ignore_index=True)
    return d.groupby(["source", "time"], as_index=False)["p_mw"].sum()


# -- helpers ----------------------------------------------------------------------------------
def _envelopes(table: pd.DataFrame) -> pd.DataFrame | None:
    """Long voltage envelopes from the AC check's wide columns (``mv_vm_min_ac_pu``, ...)."""
    rows = []
    for level in ("mv", "lv"):
        for model, tag in (("AC", "ac"), ("LinDistFlow", "ldf")):
            names = [f"{level}_vm_{how}_{tag}_pu" for how in ("min", "max")]
            if not all(n in table for n in names):
                continue
            rows.append(pd.DataFrame({"time": table["time"], "level": level.upper(),
                                      "model": model,
                                      "vm_min_pu": pd.to_numeric(table[names[0]],
                                                                 errors="coerce"),
                                      "vm_max_pu": pd.to_numeric(table[names[1]],
                                                                 errors="coerce")}))
    return pd.concat(rows, ignore_index=True) if rows else None


def _cost_row(summary: dict, run: str) -> pd.DataFrame:
    times = summary.get("times_s") or {}
    row = {c: summary.get(c) for c in COST_COLUMNS}
    row.update(run=run, solve_s=times.get("solve", times.get("total")))
    return pd.DataFrame([row], columns=list(COST_COLUMNS))


def _costs_below(folder: Path, label: str | None = None) -> pd.DataFrame:
    """Cost rows of every solve summary below ``folder`` (not the folder's own)."""
    rows = []
    if folder.is_dir():
        for path in sorted(folder.rglob(SUMMARY_FILE)):
            if path.parent == folder:
                continue
            s = _json(path)
            if s is None or "method" not in s:
                continue
            name = s.get(label) if label else str(path.parent.relative_to(folder))
            rows.append(_cost_row(s, str(name)))
    if not rows:
        return pd.DataFrame(columns=list(COST_COLUMNS))
    return pd.concat(rows, ignore_index=True)


def _solve_table(folder: Path, name: str) -> pd.DataFrame | None:
    """One of a solve folder's tables (:data:`~mosaik_bilevel.results.files.SOLVE_TABLES`)."""
    assert name in SOLVE_TABLES, name
    return _csv(folder / f"{name}.csv")


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from None


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: not a readable CSV table ({exc})") from None


def _step_h(times: pd.Series) -> float:
    t = pd.DatetimeIndex(sorted(pd.to_datetime(times).unique()))
    return float((t[1] - t[0]).total_seconds() / 3600) if len(t) > 1 else 1.0
