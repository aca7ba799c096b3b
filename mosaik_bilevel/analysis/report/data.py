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
    summary = _json(folder / "summary.json")
    if summary is not None and "days" in summary:
        return _simulation(folder, summary)
    if summary is not None and "method" in summary:
        return _solve(folder, summary)
    runs = [p.parent for p in sorted(folder.rglob("summary.json"))
            if p.parent != folder and "clearings" not in p.parent.parts[len(folder.parts):]]
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
    ex = _csv(folder / "exchanges.csv")
    if ex is not None:
        data.exchanges = ex[["community", "time", "p_mw"]]
    dl = _csv(folder / "dlmp.csv")
    if dl is not None:
        data.dlmp = dl[["bus", "time", "dlmp_per_mwh"]]
    bat = _csv(folder / "batteries.csv")
    if bat is not None:
        data.battery_energy = bat.groupby(["community", "time"], as_index=False)["e_mwh"].sum()
    disp = _csv(folder / "mv_dispatch.csv")
    if disp is not None:
        d = disp.assign(source=disp["kind"].replace({"upstream": "substation"}))
        data.mv_dispatch = d.groupby(["source", "time"], as_index=False)["p_mw"].sum()
    ac = _csv(folder / "ac.csv")
    if ac is not None:
        data.voltages = _envelopes(ac, "{level}_vm_{how}_{model}_pu")
        data.violations = ac[["time", "converged", "vm_violations", "loading_violations"]]
    res = _csv(folder / "residuals.csv")
    if res is not None:
        data.residuals[summary.get("start", "")] = res
    below = _costs_below(folder)
    own = _cost_row(summary, "this run")
    data.costs = pd.concat([own, below], ignore_index=True) if len(below) else own
    return data


# -- simulate ---------------------------------------------------------------------------------
def _simulation(folder: Path, summary: dict) -> RunData:
    data = RunData(folder, "simulate", summary)
    comm = _csv(folder / "communities.csv")
    if comm is not None:
        data.step_h = _step_h(comm["time"])
        data.exchanges = comm.rename(columns={"entity": "community", "P[MW]": "p_mw",
                                              "P_scheduled[MW]": "p_scheduled_mw"})[
            ["community", "time", "p_mw", "p_scheduled_mw"]]
        if "E[MWh]" in comm:
            data.battery_energy = comm.rename(columns={"entity": "community",
                                                       "E[MWh]": "e_mwh"})[
                ["community", "time", "e_mwh"]]
    dl = _csv(folder / "market__dlmp_per_mwh.csv")
    if dl is not None:
        data.dlmp = dl.rename(columns={"key": "bus", "value": "dlmp_per_mwh"})[
            ["bus", "time", "dlmp_per_mwh"]]
    parts = []
    market = _csv(folder / "market.csv")
    if market is not None and "P_sub[MW]" in market:
        parts.append(market.assign(source="substation").rename(columns={"P_sub[MW]": "p_mw"}))
    for name, source in (("market__P_gen_MW.csv", "conventional"),
                         ("market__P_pv_plant_MW.csv", "pv")):
        t = _csv(folder / name)
        if t is not None:
            parts.append(t.assign(source=source).rename(columns={"value": "p_mw"}))
    if parts:
        d = pd.concat([p[["source", "time", "p_mw"]] for p in parts], ignore_index=True)
        data.mv_dispatch = d.groupby(["source", "time"], as_index=False)["p_mw"].sum()
    grid = _csv(folder / "grid.csv")
    if grid is not None:
        if "vm_mv_min[pu]" in grid:
            data.voltages = _envelopes(grid.rename(columns=lambda c: c.replace("[pu]", "")),
                                       "vm_{level}_{how}{ldf}")
        data.violations = grid[["time", "converged", "vm_violations", "loading_violations"]]
    data.costs = _costs_below(folder / "clearings", label="start")
    for path in sorted((folder / "clearings").glob("*/residuals.csv")):
        data.residuals[path.parent.name] = pd.read_csv(path)
    if summary.get("days"):
        data.days = pd.json_normalize(summary["days"])
    return data


# -- helpers ----------------------------------------------------------------------------------
def _envelopes(table: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Long voltage envelopes from wide columns named by ``pattern``."""
    rows = []
    for level in ("mv", "lv"):
        for model, tag, suffix in (("AC", "ac", ""), ("LinDistFlow", "ldf", "_ldf")):
            names = [pattern.format(level=level, how=how, model=tag, ldf=suffix)
                     for how in ("min", "max")]
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
        for path in sorted(folder.rglob("summary.json")):
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
