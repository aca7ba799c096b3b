"""Does the dispatch hold in AC? The paper day under both transformer models, with and without
the AC correction (docs/transformer.md).

For each step length and transformer model, one exact solve with ``--ac-correction N``: its
round 0 is the clearing without correction, its last round the corrected one. Printed per
configuration: AC voltage deficit below the band (pu) and transformer/line loading above
100 % (percentage points), before and after, with the number of bus-periods below band; the
rounds; leader, follower and system cost before and after and the price of feasibility; the
clearing's time without (round 0) and with the correction (all rounds, AC checks included)
and their ratio; and how many regulated taps the clearing needs outside their range.

Usage::

    python benchmarks/transformer_ac.py                       # 60 and 15 min, both models
    python benchmarks/transformer_ac.py --steps 60 --models fixed --rounds 3

Timings on shared machines vary by tens of percent between runs; quote ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases.paper import DEFAULT_DAY, paper_case
from mosaik_bilevel.solvers.highs import SolverOptions


def run(step_minutes: int, model: str, rounds: int, day: str, time_limit: float) -> dict:
    case = paper_case(day, step_minutes=step_minutes).with_transformer_model(model)
    t0 = time.perf_counter()
    result = solve(case, "exact", "dlmp", options=SolverOptions(time_limit_s=time_limit),
                   ac_correction=rounds)
    wall = time.perf_counter() - t0
    table = result.ac_correction
    first, last = table.iloc[0], table.iloc[-1]
    kept = table.iloc[result.ac_correction_summary.kept_round]
    summary = result.summary()
    corr = summary["ac_correction"]
    return {
        "step_min": step_minutes, "model": model, "status": result.status.value,
        "rounds": corr["rounds"], "within_tolerance": corr["converged"],
        "vm_deficit_before_pu": float(first.vm_deficit_max_pu),
        "vm_deficit_after_pu": float(kept.vm_deficit_max_pu),
        "bus_periods_below_band_before": int(first.vm_violations),
        "bus_periods_below_band_after": int(kept.vm_violations),
        "loading_excess_before_pp": float(max(first.trafo_excess_max_percent,
                                              first.line_excess_max_percent)),
        "loading_excess_after_pp": float(max(kept.trafo_excess_max_percent,
                                             kept.line_excess_max_percent)),
        "leader_before": corr["leader_cost_before"], "leader_after": result.leader_cost,
        "follower_before": corr["follower_cost_before"],
        "follower_after": result.follower_cost,
        "system_before": corr["system_cost_before"], "system_after": result.system_cost,
        "price_of_feasibility": corr["price_of_feasibility"],
        "clearing_s_without": float(first.solve_s),
        "clearing_s_with": float(table.solve_s.sum() + table.ac_s.sum()),
        "ratio_with_without": float((table.solve_s.sum() + table.ac_s.sum())
                                    / first.solve_s),
        "taps_out_of_range": (summary.get("transformers") or {}).get("taps_out_of_range"),
        "last_round_status": str(last.status), "wall_s": wall,
        "message": corr.get("message", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 15])
    parser.add_argument("--models", nargs="+", default=["fixed", "regulated"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--day", default=DEFAULT_DAY)
    parser.add_argument("--time-limit", type=float, default=3600.0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for step in args.steps:
        for model in args.models:
            row = run(step, model, args.rounds, args.day, args.time_limit)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
