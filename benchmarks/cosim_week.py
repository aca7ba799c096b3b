"""A simulated week of the paper case: where the wall time goes, and AC validation's cost.

Runs ``mosaik-bilevel simulate``'s scenario (simulators in-process) for ``--days`` days at
``--step-minutes`` with daily clearing, timing every call into each simulator. Printed:

- wall time of the run, split into optimisation (the market operator's clearings), the
  communities (their own dispatch and operation), power flow (the MV grid simulator), I/O
  (the recorder), and mosaik's own overhead (the rest of the run's wall time);
- AC validation against a bare pandapower loop: the same merged network and the very same
  injections of every step, ``runpp`` with ``recycle`` and nothing else, against the grid
  simulator's steps (setting injections, power flow, reading results, LinDistFlow error).

Usage::

    python benchmarks/cosim_week.py                      # 7 days, 15 min, exact
    python benchmarks/cosim_week.py --days 1 --method ldd-admm --step-minutes 60

Timings on shared machines vary between runs; quote ratios from one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import warnings
from collections import defaultdict

import numpy as np
import pandapower as pp

from mosaik_bilevel.methods.ldd_admm.backends import default_backend
from mosaik_bilevel.operation.ac_network import RECYCLE
from mosaik_bilevel.scenarios.run import simulate
from mosaik_bilevel.simulators import community, grid, market, recorder

BUSY: dict[str, float] = defaultdict(float)
GRID_STEPS: list[np.ndarray] = []
GRID: dict = {}


def _timed(cls, name: str, label: str, capture=None):
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            BUSY[label] += time.perf_counter() - t0
            if capture is not None:
                capture(self)

    setattr(cls, name, wrapper)


def _capture_grid(sim) -> None:
    """The load vector of the step just run (for the bare loop); a line per simulated day."""
    GRID["net"] = sim.ac.net
    GRID_STEPS.append(sim.ac.net.load[["p_mw", "q_mvar"]].to_numpy().copy())
    GRID.setdefault("sgen", []).append(sim.ac.net.sgen[["p_mw", "q_mvar"]].to_numpy().copy())
    per_day = GRID.get("steps_per_day")
    if per_day and len(GRID_STEPS) % per_day == 0:
        parts = {k: round(BUSY[k], 1) for k in ("market", "communities", "grid", "recorder")}
        elapsed = time.perf_counter() - GRID["t0"]
        print(f"day {len(GRID_STEPS) // per_day} simulated: {elapsed:.0f} s since start, "
              f"busy s {parts}", flush=True)


def instrument() -> None:
    for cls, label in ((community.CommunitySimulator, "communities"),
                       (market.MarketSimulator, "market"), (grid.GridSimulator, "grid"),
                       (recorder.RecorderSimulator, "recorder")):
        for name in ("init", "create"):
            _timed(cls, name, f"{label}.setup")
        _timed(cls, "get_data", label)
    _timed(community.CommunitySimulator, "step", "communities")
    _timed(market.MarketSimulator, "step", "market")
    _timed(grid.GridSimulator, "step", "grid", capture=_capture_grid)
    _timed(recorder.RecorderSimulator, "step", "recorder")
    _timed(recorder.RecorderSimulator, "finalize", "recorder")


def bare_loop() -> float:
    """Seconds for runpp with recycle over the same steps and injections, nothing else."""
    net = copy.deepcopy(GRID["net"])
    p_col, q_col = net.load.columns.get_loc("p_mw"), net.load.columns.get_loc("q_mvar")
    sp, sq = net.sgen.columns.get_loc("p_mw"), net.sgen.columns.get_loc("q_mvar")
    t0 = time.perf_counter()
    for k, loads in enumerate(GRID_STEPS):
        net.load.iloc[:, p_col] = loads[:, 0]
        net.load.iloc[:, q_col] = loads[:, 1]
        net.sgen.iloc[:, sp] = GRID["sgen"][k][:, 0]
        net.sgen.iloc[:, sq] = GRID["sgen"][k][:, 1]
        if k == 0:
            pp.runpp(net, init="dc")
        else:
            pp.runpp(net, recycle=RECYCLE)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="2016-05-23")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--step-minutes", type=int, default=15)
    parser.add_argument("--method", default="exact", choices=["exact", "ldd-admm"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", help="keep the simulation's results here (default: discard)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    instrument()
    admm = None
    if args.method == "ldd-admm":
        admm = {"workers": args.workers,
                "backend": default_backend(args.workers)}
    GRID["steps_per_day"] = 24 * 60 // args.step_minutes
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or scratch
        t0 = GRID["t0"] = time.perf_counter()
        summary = simulate("paper", {"day": args.day, "days": args.days,
                                     "step_minutes": args.step_minutes},
                           days=args.days, method=args.method, out=out, admm=admm)
        wall = time.perf_counter() - t0
    setup = sum(v for k, v in BUSY.items() if k.endswith(".setup"))
    run = summary["run_s"]
    parts = {k: BUSY[k] for k in ("market", "communities", "grid", "recorder")}
    overhead = run - sum(parts.values())
    bare = bare_loop()
    steps = len(GRID_STEPS)
    figures = {
        "days": args.days, "step_minutes": args.step_minutes, "method": args.method,
        "steps": steps, "wall_s": wall, "setup_s": summary["setup_s"],
        "setup_in_simulators_s": setup, "run_s": run,
        "optimisation_s": parts["market"], "communities_s": parts["communities"],
        "power_flow_s": parts["grid"], "io_s": parts["recorder"],
        "mosaik_overhead_s": overhead, "mosaik_overhead_share_of_run": overhead / run,
        "mosaik_overhead_per_step_ms": 1e3 * overhead / max(steps, 1),
        "bare_pandapower_loop_s": bare,
        "ac_validation_over_bare_loop": parts["grid"] / bare,
        "clearings": [d.get("clearing", {}).get("status") for d in summary["days"]],
        "ac_not_converged": sum(d.get("ac", {}).get("not_converged", 0)
                                for d in summary["days"]),
    }
    print(json.dumps(figures, indent=1, default=float))


if __name__ == "__main__":
    main()
