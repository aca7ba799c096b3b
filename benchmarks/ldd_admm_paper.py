"""Benchmark of LDD-ADMM against the exact method on the paper case.

Part 1 (one day, 1 h steps, ``dlmp``): the exact method, then LDD-ADMM with one and with two
worker processes (the same algorithm and iterations; each community's HiGHS single-threaded).
Printed: leader cost and its deviation, the average relative deviations per period (against
the exact solver's solution and against the nearest exact optimum, see docs/ldd_admm.md),
iterations, wall time, time in the community step, and the community-step speed-up of two
workers over one.

Part 2 (scaling): 6, 12 and 24 communities (the generator duplicates feeders at further MV
buses). The exact method's wall time, and LDD-ADMM's wall time for a fixed number of
iterations (``--scaling-iterations``) at fixed workers, so that the cost of the method's
work grows visibly apart from how many iterations a case happens to need; the iterations to
convergence are printed too when ``--scaling-iterations 0`` (full runs).

Usage::

    python benchmarks/ldd_admm_paper.py                        # both parts
    python benchmarks/ldd_admm_paper.py --part 1 --out dev.csv # and keep the per-period table

Timings on shared machines vary by tens of percent between runs; quote ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases.paper import paper_case
from mosaik_bilevel.methods.ldd_admm import ADMMOptions, ProcessBackend, solve_ldd_admm


def part1(day: str, max_iterations: int, out: str | None) -> dict:
    case = paper_case(day)
    t0 = time.perf_counter()
    exact = solve(case, "exact", "dlmp", ac=False)
    exact_s = time.perf_counter() - t0
    rows = {}
    options = ADMMOptions(max_iterations=max_iterations)
    for workers in (1, 2):
        backend = ProcessBackend(workers)
        t0 = time.perf_counter()
        result = solve(case, "ldd_admm", "dlmp", backend=backend, admm_options=options,
                       compare_exact=(workers == 1), ac=False)
        wall = time.perf_counter() - t0
        rows[workers] = result, wall, len(backend.moves)
    r1, wall1, _ = rows[1]
    r2, wall2, moves2 = rows[2]
    e = {**r1.admm.as_dict(), **r1.deviation_summary.as_dict()}
    figures = {
        "day": day, "exact_status": exact.status, "exact_leader_cost": exact.leader_cost,
        "exact_wall_s": exact_s,
        "admm_status": r1.status, "admm_leader_cost": r1.leader_cost,
        "iterations": e["iterations"], "chosen_iteration": e["chosen_iteration"],
        "deviation_leader_cost": e["deviation_leader_cost"],
        "deviation_follower_cost": e["deviation_follower_cost"],
        "average_relative_deviation_cost": e["average_relative_deviation_cost"],
        "average_relative_deviation_exchange": e["average_relative_deviation_exchange"],
        "average_relative_deviation_cost_nearest": e.get(
            "average_relative_deviation_cost_nearest"),
        "average_relative_deviation_exchange_nearest": e.get(
            "average_relative_deviation_exchange_nearest"),
        "wall_1_worker_s": wall1 - r1.times_s.get("compare_exact", 0.0),
        "wall_2_workers_s": wall2,
        "community_step_1_worker_s": r1.times_s["community"],
        "community_step_2_workers_s": r2.times_s["community"],
        "coordinator_step_s": r1.times_s["coordinator"],
        "same_iterations_1_and_2_workers": r1.admm.iterations == r2.admm.iterations,
        "same_leader_cost_1_and_2_workers": r1.leader_cost == r2.leader_cost,
        "communities_moved_2_workers": moves2,
        "community_busy_s": r1.admm.community_busy_s,
        "community_step_speedup_2_over_1": r1.times_s["community"] / r2.times_s["community"],
        "wall_speedup_2_over_1": (wall1 - r1.times_s.get("compare_exact", 0.0)) / wall2,
    }
    dev = r1.deviation
    cols = [c for c in dev.columns if c.startswith("relative_deviation")]
    print(dev[["time", *cols, "marginal_resource_exact"]].to_string(index=False))
    if out:
        dev.to_csv(out, index=False)
    return figures


def part2(day: str, sizes: list[int], workers: int, iterations: int,
          exact_too: bool = True) -> list[dict]:
    rows = []
    for n in sizes:
        case = paper_case(day, n_communities=n)
        t0 = time.perf_counter()
        exact = solve(case, "exact", "dlmp", ac=False) if exact_too else None
        exact_s = time.perf_counter() - t0 if exact_too else math.nan
        options = ADMMOptions(max_iterations=iterations) if iterations else ADMMOptions()
        t0 = time.perf_counter()
        result = solve_ldd_admm(case, "dlmp", backend=ProcessBackend(workers), options=options)
        wall = time.perf_counter() - t0
        rows.append({
            "communities": n, "exact_status": exact.status if exact else None,
            "exact_wall_s": exact_s,
            "admm_status": result.status, "admm_iterations": result.admm.iterations,
            "admm_wall_s": wall, "admm_wall_per_iteration_s": wall / result.admm.iterations,
            "community_step_s": result.times_s["community"],
            "coordinator_step_s": result.times_s["coordinator"],
            "admm_leader_cost": result.leader_cost,
            "exact_leader_cost": exact.leader_cost if exact else None,
        })
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for row in rows:
        k = row["communities"] / base["communities"]
        row["admm_wall_ratio_over_size_ratio"] = row["admm_wall_s"] / base["admm_wall_s"] / k
        row["exact_wall_ratio_over_size_ratio"] = row["exact_wall_s"] / base["exact_wall_s"] / k
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2016-05-24")
    parser.add_argument("--part", type=int, choices=(1, 2), default=None)
    parser.add_argument("--max-iterations", type=int, default=ADMMOptions().max_iterations)
    parser.add_argument("--sizes", default="6,12,24")
    parser.add_argument("--workers", type=int, default=2, help="part 2: worker processes")
    parser.add_argument("--scaling-iterations", type=int, default=10,
                        help="part 2: iterations per LDD-ADMM run (0: run to convergence)")
    parser.add_argument("--skip-exact", action="store_true",
                        help="part 2: time LDD-ADMM only (the exact method is unchanged)")
    parser.add_argument("--out", default=None, help="part 1: write the per-period table")
    parser.add_argument("--verbose", action="store_true", help="log every iteration")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.part in (None, 1):
        print(json.dumps(part1(args.day, args.max_iterations, args.out), indent=1,
                         default=float), flush=True)
    if args.part in (None, 2):
        rows = part2(args.day, [int(s) for s in args.sizes.split(",")], args.workers,
                     args.scaling_iterations, exact_too=not args.skip_exact)
        for row in rows:
            print(json.dumps(row, default=float))


if __name__ == "__main__":
    main()
