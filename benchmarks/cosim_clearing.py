"""The paper case under the three clearing rules: what re-clearing costs and what it buys.

Simulates ``--days`` days (in-process, exact method) with the market clearing

- ``daily``: at each day's first period, that day;
- ``gate``: at 12:00 the day before (day-ahead), from the communities' planned state;
- ``hourly``: every hour, the next 24 h (the case holds one more day than is simulated, so
  no horizon shrinks);

and prints per rule: clearings, their statuses, clearing time (total and per clearing), the
communities' absolute imbalance against their schedules, steps with a battery at a limit,
and the AC figures (lowest voltage, violations, convergence).

Usage::

    python benchmarks/cosim_clearing.py                 # 2 days at 1 h
    python benchmarks/cosim_clearing.py --rules daily hourly --step-minutes 15

Timings on shared machines vary between runs; quote ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings

from mosaik_bilevel.scenarios.run import simulate

RULES = {"daily": None, "gate": {"lead_h": 12.0}, "hourly": {"interval_h": 1.0}}


def run(rule: str, args) -> dict:
    case_options = {"day": args.day, "days": args.days + 1, "step_minutes": args.step_minutes}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = simulate("paper", case_options, days=args.days, out=out,
                           clearing=RULES[rule], load_sigma=args.load_sigma,
                           pv_sigma=args.pv_sigma, seed=args.seed)
        wall = time.perf_counter() - t0
    days = summary["days"]
    clearings = [d["clearing"] for d in days if "clearing" in d]
    count = sum(c["count"] for c in clearings)
    solve = sum(c["solve_s"] for c in clearings)
    simulated = days[:args.days]  # a gate's last clearing is for the day after the run
    return {
        "rule": rule, "clearings": count,
        "statuses": sorted({s for c in clearings for s in c["status"].split(",")}),
        "clearing_s": solve, "per_clearing_s": solve / max(count, 1), "wall_s": wall,
        "imbalance_abs_mwh": sum(d["communities"]["imbalance_abs_mwh"] for d in simulated),
        "battery_limited_steps": sum(d["communities"]["battery_limited_steps"]
                                     for d in simulated),
        "vm_min_pu": min(d["ac"]["vm_min_pu"] for d in simulated),
        "steps_with_vm_violation": sum(d["ac"]["steps_with_vm_violation"] for d in simulated),
        "ac_not_converged": sum(d["ac"]["not_converged"] for d in simulated),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2016-05-24")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--step-minutes", type=int, default=60)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--load-sigma", type=float, default=0.1)
    parser.add_argument("--pv-sigma", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = [run(rule, args) for rule in args.rules]
    print(json.dumps(rows, indent=1, default=float))
    base = next((r for r in rows if r["rule"] == "daily"), None)
    if base is not None:
        for r in rows:
            if r is not base:
                print(f"{r['rule']} vs daily: clearing time "
                      f"{r['clearing_s'] / base['clearing_s']:.2f}x, imbalance "
                      f"{r['imbalance_abs_mwh'] / base['imbalance_abs_mwh']:.2f}x")


if __name__ == "__main__":
    main()
