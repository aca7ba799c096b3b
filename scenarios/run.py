"""Rolling-horizon simulations of the whole system: one call, tables on disk, a summary.

:func:`simulate` builds a World (:func:`~.system.add_system`), runs ``days`` days and writes
into ``out``: the recorder's tables (appended as each day finishes), every clearing's result
(``clearings/<start>/``, written as soon as it is done) and ``summary.json`` per day and in
total (clearings, AC validation, communities' imbalance, wall time split).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import mosaik
import pandas as pd

from mosaik_bilevel.cases import case_options, load_case
from mosaik_bilevel.errors import OutputFolderError
from mosaik_bilevel.operation.ac_check import ac_summary
from mosaik_bilevel.results.files import (
    CLEARINGS_FOLDER,
    SIM_IDS,
    SUMMARY_FILE,
    json_float,
    recorder_file,
)
from mosaik_bilevel.results.run_folder import RunFolder

from .system import QUIET, add_system, run_world, sim_config


def simulate(case: str = "paper", case_options: dict | None = None, *, days: int = 1,
             method: str = "exact", pricing: str = "dlmp", out: str | Path,
             mode: str = "python", addresses: dict | None = None, progress: bool = False,
             resume: bool = False, overwrite: bool = False, **system_options) -> dict:
    """Simulate ``days`` days and write the results to ``out``; returns the summary.

    The run owns ``out`` while it runs (:class:`~mosaik_bilevel.results.run_folder.RunFolder`):
    a folder with another run's results is refused unless ``resume`` (continue that run from
    its last finished day, same case and options; ``days`` may grow) or ``overwrite``.
    ``system_options`` go to :func:`~.system.add_system` (solver, admm, load_sigma,
    pv_sigma, seed, track_exchange, clearing). The summary's ``status`` is ``finished``
    (every day cleared), ``failed`` (a clearing failed on some day: ``failed_days``); a run
    that stops raises (:class:`~.supervision.SimulationError`, ``KeyboardInterrupt``) after
    writing the summary of the days it finished, with ``aborted`` or ``interrupted``.
    """
    out = Path(out)
    t0 = time.perf_counter()
    the_case = load_case(case, **dict(case_options or {}))
    run = _run_description(case, case_options, days, method, pricing, system_options)
    if resume and (system_options.get("clearing") or {}).get("lead_h"):
        raise OutputFolderError(f"{out}: --resume: a run with a day-ahead gate cannot be "
                                f"resumed (its next day was cleared during the killed one); "
                                f"rerun it with --overwrite")
    with RunFolder(out, run, resume=resume, overwrite=overwrite) as folder:
        point = folder.open(the_case.step_h)
        done = 0 if point.start is None else (
            the_case.timeline.get_loc(pd.Timestamp(point.start)) // the_case.horizon_periods)
        header = {"method": method, "pricing": pricing, **the_case.voltage_bands(),
                  "resumed_from": point.start}
        if done >= days:  # nothing left to run
            return _finish(folder, out, header, {"setup": 0.0, "run": 0.0})
        times = {"setup": 0.0, "run": 0.0}
        status, reason = "aborted", None
        try:
            world = mosaik.World(sim_config(mode, addresses), max_loop_iterations=10_000,
                                 **QUIET)
            try:
                system = add_system(world, case, case_options, days=days - done,
                                    method=method, pricing=pricing, out=str(out),
                                    start=point.start, initial_state=point.state,
                                    **system_options)
            except BaseException:
                world.shutdown()  # stop whatever was started
                raise
            times["setup"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            try:
                run_world(world, system.until, step=system.step, progress=progress)
            finally:
                times["run"] = time.perf_counter() - t1
            status = "finished"
        except KeyboardInterrupt as stop:
            status, reason = "interrupted", f"stopped by {stop.args[0] if stop.args else 'SIGINT'}"
            raise
        except BaseException as err:
            reason = f"{type(err).__name__}: {err}"
            raise
        finally:
            try:
                summary = _finish(folder, out, header, times, status, reason)
            except Exception:
                if status == "finished":
                    raise
                # never let the summary of a stopped run hide why it stopped
                logging.getLogger(__name__).exception("no summary of the stopped run")
    return summary


def _run_description(case, case_options, days, method, pricing, system_options) -> dict:
    """What a run is, as plain JSON (``run.json``; a resumed run must match it)."""
    return json.loads(json.dumps({
        "case": str(case), "case_options": dict(case_options or {}), "days": days,
        "method": method, "pricing": pricing,
        **{k: v for k, v in sorted(system_options.items())}}, default=str))


def _finish(folder: RunFolder, out: Path, header: dict, times: dict, status: str = "finished",
            reason: str | None = None) -> dict:
    """Write the summary of what is on disk and the run's outcome; return the summary."""
    summary = summarize(out, **header, setup_s=times["setup"], run_s=times["run"])
    failed = [d["day"] for d in summary["days"]
              if d.get("clearing", {}).get("failed", 0)]
    if status == "finished" and failed:
        status, reason = "failed", f"a clearing failed on {', '.join(failed)}"
    summary.update(status=status, reason=reason, failed_days=failed)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False))
    folder.finish(status, reason)
    return summary


def paper_scenario(*, days: int = 1, day: str | None = None, step_minutes: int = 60,
                   method: str = "exact", out: str | Path, **options) -> dict:
    """Simulate ``days`` days of the paper case from ``day`` (default 2016-05-24); see
    :func:`simulate` (the command line: ``mosaik-bilevel simulate --case paper``)."""
    return simulate("paper", case_options("paper", day=day, days=days,
                                          step_minutes=step_minutes),
                    days=days, method=method, out=out, **options)


def summarize(out: Path, **header) -> dict:
    """Per-day and total figures from the tables in ``out``."""
    out = Path(out)
    summary: dict = {**header, "days": []}
    clearings = sorted((out / CLEARINGS_FOLDER).glob(f"*/{SUMMARY_FILE}"))
    by_day: dict[str, dict] = {}
    for path in clearings:  # by the day their horizon starts
        s = json.loads(path.read_text())
        day = s["start"][:10]
        by_day.setdefault(day, {}).setdefault("clearings", []).append(s)
    for figures in by_day.values():
        figures["clearing"] = _clearings(figures.pop("clearings"))
    grid = _read(out / f"{recorder_file(SIM_IDS['grid'])}.csv")
    if grid is not None:
        grid["day"] = grid["time"].str[:10]
        step_h = _step_h(grid)
        for day, g in grid.groupby("day"):
            by_day.setdefault(day, {})["ac"] = ac_summary(g, step_h=step_h).as_dict()
    comm = _read(out / f"{recorder_file(SIM_IDS['community'])}.csv")
    if comm is not None:
        comm["day"] = comm["time"].str[:10]
        step_h = _step_h(comm)
        for day, g in comm.groupby("day"):
            by_day.setdefault(day, {})["communities"] = {
                "imbalance_abs_mwh": _f(g["imbalance[MW]"].abs().sum() * step_h),
                "import_mwh": _f(g["P[MW]"].clip(lower=0).sum() * step_h),
                "export_mwh": _f(-g["P[MW]"].clip(upper=0).sum() * step_h),
                "battery_limited_steps": int(g["battery_limited"].astype(str).str.lower()
                                             .eq("true").sum()),
                "without_schedule_steps": int((g["schedule_status"] == "no_schedule").sum())}
    summary["days"] = [{"day": d, **v} for d, v in sorted(by_day.items())]
    solve = sum((d.get("clearing", {}).get("solve_s") or 0.0) for d in summary["days"])
    pf = sum((d.get("ac", {}).get("power_flow_s") or 0.0) for d in summary["days"])
    summary["times_s"] = {"clearing": solve, "power_flow": pf}
    return summary


def _clearings(found: list[dict]) -> dict:
    """One day's clearings: the single one's figures, or counts and totals of several.

    Costs of overlapping horizons (rolling clearing) do not add up; they are given for a
    day with one clearing only. A clearing failed when it sent no schedule (``failed``,
    with each one's start, status and reason under ``failures``).
    """
    statuses = [s["status"] for s in found]
    failures = [{"start": s["start"], "status": s["status"], "reason": s.get("message")}
                for s in found if not s.get("scheduled", s["status"] == "optimal")]
    figures = {
        "count": len(found),
        "failed": len(failures),
        "failures": failures,
        "status": statuses[0] if len(set(statuses)) == 1 else ",".join(sorted(set(statuses))),
        "solve_s": sum((s.get("times_s") or {}).get("total") or 0.0 for s in found),
        "iterations": sum(s.get("iterations", 0) or 0 for s in found)}
    corrected = [s["ac_correction"] for s in found if s.get("ac_correction")]
    if corrected:  # the clearing's time is all its rounds'
        figures["solve_s"] = sum(c.get("time_s") or 0.0 for c in corrected)
        figures["ac_correction_rounds"] = sum(c["rounds"] for c in corrected)
        figures["ac_correction_converged"] = all(c["converged"] for c in corrected)
    if len(found) == 1:
        figures["leader_cost"] = found[0].get("leader_cost")
        figures["follower_cost"] = found[0].get("follower_cost")
        if corrected:  # the price of feasibility (docs/transformer.md)
            c = corrected[0]
            figures["system_cost"] = found[0].get("system_cost")
            figures["leader_cost_before_correction"] = c["leader_cost_before"]
            figures["follower_cost_before_correction"] = c["follower_cost_before"]
            figures["system_cost_before_correction"] = c["system_cost_before"]
            figures["price_of_feasibility"] = c["price_of_feasibility"]
    return figures


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def _step_h(frame: pd.DataFrame) -> float:
    times = pd.to_datetime(frame["time"].drop_duplicates().sort_values())
    return float((times.iloc[1] - times.iloc[0]).total_seconds() / 3600) if len(times) > 1 \
        else 1.0


_f = json_float
