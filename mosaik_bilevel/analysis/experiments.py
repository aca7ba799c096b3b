"""The paper's three findings on our case: ``mosaik-bilevel experiments paper --days N``.

Per day, four solves of one horizon (``dlmp`` pricing): the exact bilevel method, LDD-ADMM
(compared with the exact method period by period), the integrated optimum and the
feasibility-based relaxation ``hpr``. Then:

1. **exact vs LDD-ADMM**: the per-period relative deviation of the leader's cost and of the
   exchanges (definitions: docs/ldd_admm.md), its average, and which periods deviate (by more
   than 1e-3 from the nearest exact optimum; from the exact solver's own solution, which
   also counts ties between equally good solutions, in a second column), beside
   the scarcity of the cheap resource: utility PV at its limit (all it could produce is
   used) and a degenerate DLMP (the bilevel price differs from the follower LP's own dual);
2. **what the leader's decisions cost the MV side**: the follower's cost under the bilevel
   solution against under the integrated optimum, per period and in total;
3. **hpr vs bilevel**: whether the relaxation's exchanges are met by the follower (its LP at
   those exchanges), the follower's cost of the relaxation's own dispatch and of its best
   response, against the bilevel solution.

For the paper case, days are picked by the energy the utility PV plants could produce
(:func:`~mosaik_bilevel.cases.paper.utility_pv_by_day`, May 2016): the sunniest day, then
the darkest, alternating, so that both abundant and scarce PV are shown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cases import load_case
from ..cases.paper import utility_pv_by_day
from ..errors import OptionsError
from ..methods.exact import Solver
from ..methods.ldd_admm import ADMMOptions, solve_ldd_admm
from ..methods.ldd_admm.backends import default_backend
from ..results.files import json_float
from ..results.result import SolveResult
from ..solvers.highs import SolverOptions
from .deviation import compare_with_exact
from .report.findings import DEVIATES, draw_findings

#: Utility PV is at its limit when it produces within this of what it could (MW).
AT_LIMIT_MW = 1e-6


@dataclass
class DayRuns:
    """One day's four solves."""

    day: str
    label: str  # why the day was chosen
    exact: SolveResult
    admm: SolveResult
    integrated: SolveResult
    hpr: SolveResult


@dataclass
class Experiments:
    """What ``experiments`` wrote: its tables (also on disk) and the runs."""

    out: Path
    days: list[DayRuns] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0


def pick_days(n: int, first: str = "2016-05-01", last: str = "2016-05-31") -> list[tuple]:
    """``n`` paper days alternating the sunniest and the darkest (utility PV energy)."""
    energy = utility_pv_by_day(first, last).sort_values()
    sunny, dark = list(energy.index[::-1]), list(energy.index)
    picked: list[tuple] = []
    while len(picked) < n:
        source, label = (sunny, "abundant PV") if len(picked) % 2 == 0 else (dark, "scarce PV")
        day = next(d for d in source if d not in [p[0] for p in picked])
        picked.append((day, f"{label} ({energy[day]:.1f} MWh of utility PV available)"))
    return picked


def run_experiments(case: str, out, *, days: int = 2, day_list: list[str] | None = None,
                    step_minutes: int = 60, workers: int = 1, max_iterations: int = 100,
                    options: SolverOptions | None = None, progress=None) -> Experiments:
    """Run the three findings (see the module docstring) and write them to ``out``."""
    if day_list and case != "paper":
        raise OptionsError("--day", f"goes with the paper case, not {case!r} (whose first "
                                    f"horizon is solved)")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    if case == "paper":
        chosen = ([(d, "given") for d in day_list] if day_list else pick_days(days))
    else:
        chosen = [(None, "the case's first horizon")]
    exp = Experiments(out)
    for day, label in chosen:
        the_case = (load_case("paper", day=day, step_minutes=step_minutes) if day
                    else load_case(case))
        name = day or the_case.timeline[0].strftime("%Y-%m-%d")
        runs = {}
        for method in ("exact", "integrated", "hpr"):
            say(f"{name}: {method}")
            runs[method] = Solver(the_case, method, "dlmp", options=options).solve()
        say(f"{name}: ldd-admm")
        runs["admm"] = solve_ldd_admm(
            the_case, "dlmp", backend=default_backend(workers),
            workers=workers, options=ADMMOptions(max_iterations=max_iterations),
            solver_options=options, compare=compare_with_exact)
        for key, result in runs.items():
            result.write(out / name / ("ldd_admm" if key == "admm" else key))
        exp.days.append(DayRuns(name, label, runs["exact"], runs["admm"], runs["integrated"],
                                runs["hpr"]))
    deviation = deviation_table(exp.days)
    exp.tables = {"deviation": deviation,
                  "deviation_by_day": deviation_by_day(exp.days, deviation),
                  "follower_cost": follower_cost_table(exp.days),
                  "follower_cost_by_day": follower_cost_by_day(exp.days),
                  "hpr": hpr_table(exp.days)}
    for name, table in exp.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    exp.seconds = time.perf_counter() - t0
    summary = {"case": case, "days": [{"day": d.day, "why": d.label} for d in exp.days],
               "seconds": exp.seconds,
               **{k: _records(v) for k, v in exp.tables.items() if k.endswith("by_day")},
               "hpr": _records(exp.tables["hpr"])}
    (out / "experiments.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    draw_findings(out)
    return exp


# -- finding 1: exact vs LDD-ADMM -------------------------------------------------------------
def scarcity(result: SolveResult) -> pd.DataFrame:
    """Per period: utility PV at its limit and a degenerate DLMP."""
    per = result.periods_table[["time"]].copy()
    per["time"] = pd.to_datetime(per["time"])
    mv = result.mv
    if len(mv.p_pv_mw.columns):
        short = (mv.pv_available_mw - mv.p_pv_mw).max(axis=1)
        avail = mv.pv_available_mw.sum(axis=1)
        per["pv_at_limit"] = per["time"].map((short <= AT_LIMIT_MW) & (avail > AT_LIMIT_MW)
                                             ).fillna(False).astype(bool)
    else:
        per["pv_at_limit"] = False
    table = result.periods_table
    per["degenerate_dlmp"] = (table["price_differs_from_lp"].astype(bool).to_numpy()
                              if "price_differs_from_lp" in table else False)
    return per


def deviation_table(days: list[DayRuns]) -> pd.DataFrame:
    parts = []
    for d in days:
        if d.admm.deviation is None:  # LDD-ADMM found no iterate to compare: say so per period
            dev = pd.DataFrame({"time": d.exact.periods_table["time"],
                                "relative_deviation_cost": np.nan,
                                "relative_deviation_exchange": np.nan})
        else:
            dev = d.admm.deviation.copy()
        dev["time"] = pd.to_datetime(dev["time"])
        dev = dev.merge(scarcity(d.exact), on="time", how="left")
        dev["deviates_from_solver"] = ((dev["relative_deviation_cost"] > DEVIATES)
                                       | (dev["relative_deviation_exchange"] > DEVIATES))
        # the method's own deviation is the one from the nearest exact optimum (ties aside)
        nearest = ("relative_deviation_cost_nearest", "relative_deviation_exchange_nearest")
        if all(c in dev for c in nearest):
            dev["deviates"] = (dev[nearest[0]] > DEVIATES) | (dev[nearest[1]] > DEVIATES)
        else:
            dev["deviates"] = dev["deviates_from_solver"]
        dev.insert(0, "day", d.day)
        parts.append(dev)
    return pd.concat(parts, ignore_index=True)


def deviation_by_day(days: list[DayRuns], table: pd.DataFrame) -> pd.DataFrame:
    """Per day: LDD-ADMM's averages and its deviating periods (``table``: the
    :func:`deviation_table` of ``days``)."""
    rows = []
    for d in days:
        t = table[table["day"] == d.day]
        dev = t[t["deviates"]]
        e = d.admm.deviation_summary
        rows.append({
            "day": d.day, "why": d.label, "status": d.admm.status.value,
            "iterations": d.admm.admm.iterations,
            **{name: getattr(e, name, None) for name in (
                "average_relative_deviation_cost", "average_relative_deviation_exchange",
                "average_relative_deviation_cost_nearest", "deviation_leader_cost",
                "average_relative_deviation_exchange_nearest")},
            "periods": len(t), "periods_deviating": len(dev),
            "periods_deviating_from_solver": int(t["deviates_from_solver"].sum()),
            "deviating_with_pv_at_limit": int(dev["pv_at_limit"].sum()),
            "deviating_with_degenerate_dlmp": int(dev["degenerate_dlmp"].sum()),
            "periods_pv_at_limit": int(t["pv_at_limit"].sum()),
            "periods_degenerate_dlmp": int(t["degenerate_dlmp"].sum()),
            "deviating_hours": ", ".join(pd.to_datetime(dev["time"]).dt.strftime("%H:%M")),
            "ldd_admm_s": d.admm.times_s.get("total"),
            "exact_s": d.exact.times_s.get("total")})
    return pd.DataFrame(rows)


# -- finding 2: the follower's cost, bilevel vs integrated ------------------------------------
def follower_cost_by_period(result: SolveResult) -> pd.Series:
    """The follower's cost per period from its dispatch (cost of every MV source)."""
    return result.mv.cost_by_period(result.step_h)


def follower_cost_table(days: list[DayRuns]) -> pd.DataFrame:
    parts = []
    for d in days:
        bi, opt = follower_cost_by_period(d.exact), follower_cost_by_period(d.integrated)
        parts.append(pd.DataFrame({
            "day": d.day, "time": bi.index, "follower_cost_bilevel": bi.to_numpy(),
            "follower_cost_integrated": opt.reindex(bi.index).to_numpy(),
            "difference": (bi - opt.reindex(bi.index)).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def follower_cost_by_day(days: list[DayRuns]) -> pd.DataFrame:
    rows = []
    for d in days:
        b, i = d.exact, d.integrated
        rows.append({"day": d.day, "why": d.label,
                     "follower_cost_bilevel": b.follower_cost,
                     "follower_cost_integrated": i.follower_cost,
                     "difference": b.follower_cost - i.follower_cost,
                     "relative_difference": (b.follower_cost - i.follower_cost)
                     / abs(i.follower_cost),
                     "system_cost_bilevel": b.system_cost,
                     "system_cost_integrated": i.system_cost,
                     "leader_cost_bilevel": b.leader_cost,
                     "leader_cost_integrated": i.leader_cost})
    return pd.DataFrame(rows)


# -- finding 3: hpr vs bilevel ----------------------------------------------------------------
def _exchange_energy(result: SolveResult) -> tuple[float, float, np.ndarray]:
    p = result.exchange_p_mw.to_numpy()
    return (float(np.clip(p, 0, None).sum() * result.step_h),
            float(-np.clip(p, None, 0).sum() * result.step_h), p)


def hpr_table(days: list[DayRuns]) -> pd.DataFrame:
    rows = []
    for d in days:
        h, b = d.hpr, d.exact
        h_imp, h_exp, hp = _exchange_energy(h)
        b_imp, b_exp, bp = _exchange_energy(b)
        rows.append({
            "day": d.day, "why": d.label,
            "exchanges_met": h.solver.follower_status_at_exchanges == "optimal",
            "follower_status_at_hpr_exchanges": h.solver.follower_status_at_exchanges,
            "follower_cost_hpr_dispatch": h.follower_cost,
            "follower_cost_at_hpr_exchanges": h.solver.follower_cost_at_best_response,
            "follower_cost_bilevel": b.follower_cost,
            "leader_cost_hpr": h.leader_cost, "leader_cost_bilevel": b.leader_cost,
            "import_mwh_hpr": h_imp, "import_mwh_bilevel": b_imp,
            "export_mwh_hpr": h_exp, "export_mwh_bilevel": b_exp,
            "max_exchange_difference_mw": float(np.abs(hp - bp).max())})
    return pd.DataFrame(rows)


def _records(table: pd.DataFrame) -> list[dict]:
    out = []
    for row in table.to_dict("records"):
        out.append({k: (json_float(v) if isinstance(v, float) else
                        (v.item() if hasattr(v, "item") else v)) for k, v in row.items()})
    return out
