"""The ``mosaik-bilevel`` command.

``mosaik-bilevel solve --case paper --method exact --out DIR`` solves one horizon and writes
``summary.json`` and the result tables as CSV; ``mosaik-bilevel simulate --case paper --days N
--method exact|ldd-admm --out DIR`` runs the rolling-horizon co-simulation (mosaik) and
writes its tables as each day finishes; ``mosaik-bilevel export-case --case paper --out DIR``
writes a built-in case as a case folder to start one's own from.

Exit codes (docs/reliability.md): 0 solved and certified, every day of a simulation cleared;
1 finished, but without an optimal certified answer or with a failed clearing on some day (the
summary says which and why; every table is written all the same); 2 bad input or a refused
output folder (one line naming file, field and reason); 3 run aborted: a simulator failed or
its process died (one line naming it; every finished day is on disk); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import warnings
from pathlib import Path

from .api import solve
from .cases import case_options, load_case
from .data.folder import save_case
from .data.transformer import TRANSFORMER_MODELS
from .errors import CertificateError, MosaikBilevelError, OptionsError, RunAbortedError
from .methods.ldd_admm import ADMMOptions, PenaltySpec
from .methods.ldd_admm.backends import BACKENDS, default_backend
from .methods.registry import CLEARING_METHODS, PRICINGS, cli_choices, method_name
from .solvers.highs import SolverOptions

ADMM_DEFAULTS = ADMMOptions()
#: Exit codes (128 + the signal for a run stopped by SIGINT or SIGTERM).
EXIT_OK, EXIT_FAILED_OUTCOME, EXIT_BAD_INPUT, EXIT_ABORTED = 0, 1, 2, 3


def _case_options(args) -> dict:
    return case_options(args.case, day=args.day, days=args.days,
                        step_minutes=args.step_minutes, seed=args.seed)


def _case(args):
    options = _case_options(args)
    if getattr(args, "transformer", None):
        options["transformer"] = args.transformer
    return load_case(args.case, **options)


# -- checked option values: argparse exits 2 with "argument --x: <reason>" ----------------
def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number in ``[low, high]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            rng = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be a whole number {rng}, got {text}")
        return value
    return parse


def _real(low: float, *, strict: bool = False, allow_inf: bool = False):
    """An argparse type: a number ``>= low`` (``> low`` if ``strict``), finite unless
    ``allow_inf``; NaN never."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        ok = not math.isnan(value) and (allow_inf or math.isfinite(value)) and (
            value > low if strict else value >= low)
        if not ok:
            raise argparse.ArgumentTypeError(
                f"must be a {'' if allow_inf else 'finite '}number {'>' if strict else '>='} "
                f"{low:g}, got {text}")
        return value
    return parse


def _time_of_day(text: str) -> str:
    """An argparse type: ``HH:MM`` (the text itself)."""
    try:
        hours, minutes = (int(v) for v in text.split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"give the time of day as HH:MM, got {text!r}") \
            from None
    return text


_COUNT = _whole(1)            # iterations, workers, threads, days
_SEED = _whole(0, 2**63 - 1)
_GAP = _real(0.0)             # a relative MIP gap, a relative error


def _add_case_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="paper",
                   help="built-in case (paper, tiny, random) or a case folder")
    p.add_argument("--day", default=None, help="paper: first day (2016; default 05-24)")
    p.add_argument("--days", type=_whole(1, 366), default=1,
                   help="paper: number of days in the case")
    p.add_argument("--step-minutes", type=_whole(1, 1440), default=None,
                   help="paper: 60 (default) or 15")
    p.add_argument("--seed", type=_SEED, default=None, help="random: seed (default 0)")


def _add_ac_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transformer", choices=TRANSFORMER_MODELS, default=None,
                   help="model every MV/LV transformer as regulated (on-load tap changer "
                        "holding vm_set_pu) or fixed (off-load tap; the LV voltage follows "
                        "the MV bus); default: the case's (paper: fixed)")
    p.add_argument("--ac-correction", type=_whole(0), default=0, metavar="N",
                   help="after a clearing, tighten LinDistFlow where the AC power flow "
                        "breaks a voltage or transformer limit and clear again, at most N "
                        "times (ac_correction.csv); default 0: off")


def _solve(args) -> int:
    case = _case(args)
    method = method_name(args.method)
    options = SolverOptions(mip_rel_gap=args.mip_gap, time_limit_s=args.time_limit,
                            threads=args.threads, log=args.log)
    extra = {}
    if method == "ldd_admm":
        extra = {"backend": args.backend or default_backend(args.workers),
                 "workers": args.workers, "compare_exact": args.compare_exact,
                 "admm_options": ADMMOptions(
                     max_iterations=args.max_iterations,
                     penalty=PenaltySpec(miqp_solver=args.miqp_solver))}
    try:
        result = solve(case, method, args.pricing, start=args.start, options=options,
                       ac=args.ac, ac_correction=args.ac_correction, **extra)
    except CertificateError as exc:  # the rejected result is written, and exit code 1
        result = exc.result
    out = Path(args.out)
    result.write(out)
    summary = result.summary()
    if not args.quiet:
        cert = summary["certificate"]
        print(f"{summary['method']}/{summary['pricing']} on {summary['case']} from "
              f"{summary['start']}: {summary['status']}")
        for key in ("leader_cost", "follower_cost", "system_cost", "mip_gap"):
            if summary[key] is not None:
                print(f"  {key:<15} {summary[key]:.6g}")
        for key in ("iterations", "deviation_leader_cost", "average_relative_deviation_cost",
                    "average_relative_deviation_exchange"):
            if summary.get(key) is not None:
                print(f"  {key:<15} {summary[key]:.6g}")
        if cert is not None:
            print(f"  certificate     {'passed' if cert['passed'] else 'FAILED'} "
                  f"(relative error {_fmt(cert.get('relative_error'), '.2g')})")
        ac = summary.get("ac")
        if ac:
            print(f"  AC validation   {ac['steps']} periods, {ac['not_converged']} not "
                  f"converged, vm {_fmt(ac.get('vm_min_pu'), '.4f')}.."
                  f"{_fmt(ac.get('vm_max_pu'), '.4f')} pu, "
                  f"{ac.get('steps_with_vm_violation', 'n/a')} with a voltage violation")
        corr = summary.get("ac_correction")
        if corr:
            print(f"  AC correction   {corr['rounds']} of {corr['max_rounds']} rounds, "
                  f"{'within tolerance' if corr['converged'] else 'NOT within tolerance'}; "
                  f"system cost {corr['system_cost_before']:.6g} before, price of "
                  f"feasibility {corr['price_of_feasibility']:.4g}")
        times = summary["times_s"]
        if times.get("solve") is not None:
            print(f"  solve time      {times['solve']:.3g} s")
        print(f"  total time      {times.get('total') or float('nan'):.3g} s")
        print(f"  written to      {out}")
    return 0 if result.ok else 1


def _fmt(value, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``n/a`` when there is none (e.g. the voltage
    extremes when no AC power flow converged)."""
    return "n/a" if value is None else format(value, spec)


def _simulate(args) -> int:
    from loguru import logger

    from .scenarios.run import simulate

    # mosaik logs through loguru; on the command line only its warnings and errors show
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    options = _case_options(args)
    if args.transformer:
        options["transformer"] = args.transformer
    admm = None
    if method_name(args.method) == "ldd_admm":
        admm = {"max_iterations": args.max_iterations}
        if args.admm_in_loop:
            admm["in_loop"] = True
        else:
            admm.update(workers=args.workers,
                        backend=args.backend or default_backend(args.workers))
    summary = simulate(args.case, options, days=args.days, method=args.method,
                       pricing=args.pricing, out=args.out, mode=args.mode,
                       progress=not args.quiet, admm=admm,
                       solver={"mip_rel_gap": args.mip_gap, "threads": args.threads},
                       load_sigma=args.load_sigma, pv_sigma=args.pv_sigma,
                       seed=args.error_seed, clearing=_clearing_rule(args),
                       resume=args.resume, overwrite=args.overwrite,
                       ac_correction=args.ac_correction)
    failed = [d["day"] for d in summary["days"]
              if d.get("clearing", {}).get("status") not in ("optimal", None)
              or d.get("clearing", {}).get("failed")]
    if not args.quiet:
        for d in summary["days"]:
            cl, ac = d.get("clearing", {}), d.get("ac", {})
            what = (f"leader {cl.get('leader_cost')}" if cl.get("count", 1) == 1
                    else f"{cl['count']} clearings")
            print(f"{d['day']}: clearing {cl.get('status')} ({what}, "
                  f"{cl.get('solve_s') or 0:.3g} s); AC {ac.get('steps', 0)} steps, "
                  f"{ac.get('not_converged', 0)} not converged, vm "
                  f"{ac.get('vm_min_pu')}..{ac.get('vm_max_pu')} pu")
            for f in cl.get("failures", []):
                print(f"  clearing from {f['start']} failed ({f['status']}): {f['reason']}; "
                      f"fallback: the covering schedule, else none")
        print(f"  written to      {args.out}")
    return EXIT_FAILED_OUTCOME if failed else EXIT_OK


def _clearing_rule(args) -> dict | None:
    """``--clearing``/``--gate``/``--lookahead-h`` as a clearing rule (plain dict)."""
    if args.clearing == "hourly":
        if args.gate:
            raise OptionsError("--gate", "goes with --clearing daily")
        rule = {"interval_h": 1.0}
        if args.lookahead_h is not None:
            rule["lookahead_h"] = args.lookahead_h
        return rule
    if args.lookahead_h is not None:
        raise OptionsError("--lookahead-h", "goes with --clearing hourly")
    if not args.gate:
        return None
    try:
        hours, minutes = (int(v) for v in args.gate.split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise OptionsError("--gate", f"{args.gate!r}: give the time of day as HH:MM") from None
    gate_h = hours + minutes / 60
    return {"lead_h": (24.0 - gate_h) % 24.0}


def _report(args) -> int:
    from .analysis.report import write_report

    report = write_report(args.folder, args.out)
    if not args.quiet:
        print(f"report of {args.folder}: {len(report.figures)} figures "
              f"({', '.join(report.figures)}), {report.seconds:.3g} s")
        for stem, why in report.omitted.items():
            print(f"  not shown: {stem} ({why})")
        print(f"  written to      {report.path}")
    return 0


def _experiments(args) -> int:
    import pandas as pd

    from .analysis.experiments import run_experiments
    from .analysis.report import write_report

    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    exp = run_experiments(args.case, args.out, days=args.days, day_list=args.day,
                          step_minutes=args.step_minutes, workers=args.workers,
                          max_iterations=args.max_iterations,
                          options=SolverOptions(mip_rel_gap=args.mip_gap), progress=say)
    for day in exp.days:  # a report per run, linked from the findings' report
        for run in ("exact", "ldd_admm", "integrated", "hpr"):
            write_report(Path(args.out) / day.day / run)
    write_report(args.out)
    if not args.quiet:
        def g(v):
            return "n/a" if v is None or pd.isna(v) else f"{v:.3g}"

        for row in exp.tables["deviation_by_day"].itertuples():
            print(f"{row.day} ({row.why}): LDD-ADMM {row.status} in {row.iterations} "
                  f"iterations, average relative deviation from the nearest exact optimum: "
                  f"cost {g(row.average_relative_deviation_cost_nearest)}, exchanges "
                  f"{g(row.average_relative_deviation_exchange_nearest)} (from the exact "
                  f"solver's own solution, ties included: "
                  f"{g(row.average_relative_deviation_cost)}, "
                  f"{g(row.average_relative_deviation_exchange)}); {row.periods_deviating} "
                  f"of {row.periods} periods deviate ({row.deviating_with_pv_at_limit} with "
                  f"utility PV at its limit)")
        for row in exp.tables["follower_cost_by_day"].itertuples():
            print(f"{row.day}: follower cost bilevel {row.follower_cost_bilevel:.6g}, "
                  f"integrated {row.follower_cost_integrated:.6g} "
                  f"({row.relative_difference:+.2%})")
        for row in exp.tables["hpr"].itertuples():
            print(f"{row.day}: hpr exchanges met: {row.exchanges_met}; follower cost hpr "
                  f"dispatch {row.follower_cost_hpr_dispatch:.6g}, bilevel "
                  f"{row.follower_cost_bilevel:.6g}")
        print(f"  {exp.seconds:.3g} s; written to {args.out} (report: "
              f"{Path(args.out) / 'report' / 'report.html'})")
    return 0


def _export(args) -> int:
    case = _case(args)
    path = save_case(case, args.out)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (exit code 2; ``--help`` shows usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mosaik-bilevel",
        description="Bilevel coordination of LV energy communities and the MV network.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_solve_command(sub)
    _add_simulate_command(sub)
    _add_experiments_command(sub)
    _add_report_command(sub)
    _add_export_case_command(sub)
    return parser


def _add_solve_command(sub) -> None:
    """The ``solve`` command's arguments."""
    p = sub.add_parser("solve", help="solve one horizon and write summary.json and tables")
    _add_case_arguments(p)
    p.add_argument("--method", default="exact", choices=cli_choices())
    p.add_argument("--pricing", default="dlmp", choices=PRICINGS)
    p.add_argument("--start", default=None, help="first period (default: the case's first)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mip-gap", type=_GAP, default=1e-4, help="relative MIP gap")
    p.add_argument("--time-limit", type=_real(0.0, allow_inf=True),
                   default=float("inf"), help="seconds")
    p.add_argument("--threads", type=_COUNT, default=None, help="HiGHS threads")
    p.add_argument("--log", action="store_true", help="show HiGHS's log")
    p.add_argument("--workers", type=_COUNT, default=1,
                   help="ldd-admm: processes (or Dask workers) for the community steps")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="ldd-admm: where communities run (default: sequential for 1 worker, "
                        "else process)")
    p.add_argument("--max-iterations", type=_COUNT, default=ADMM_DEFAULTS.max_iterations,
                   help="ldd-admm: iteration cap")
    p.add_argument("--miqp-solver", default=None,
                   help="ldd-admm: a Pyomo MIQP solver (e.g. scip_direct) for the exact "
                        "quadratic penalty instead of HiGHS with tangents")
    p.add_argument("--compare-exact", action="store_true",
                   help="ldd-admm: also solve exactly and report the deviation")
    p.add_argument("--no-ac", dest="ac", action="store_false",
                   help="skip the AC validation of the dispatch (ac.csv)")
    _add_ac_arguments(p)
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(run=_solve)


def _add_simulate_command(sub) -> None:
    """The ``simulate`` command's arguments."""
    p = sub.add_parser("simulate", help="rolling-horizon co-simulation with mosaik")
    _add_case_arguments(p)
    p.add_argument("--method", default="exact", choices=cli_choices(CLEARING_METHODS))
    p.add_argument("--pricing", default="dlmp", choices=PRICINGS)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", default="python", choices=["python", "cmd"],
                   help="simulators in-process (python) or each in its own process (cmd)")
    p.add_argument("--mip-gap", type=_GAP, default=1e-4, help="relative MIP gap")
    p.add_argument("--threads", type=_COUNT, default=None, help="HiGHS threads")
    p.add_argument("--workers", type=_COUNT, default=1, help="ldd-admm: worker processes")
    p.add_argument("--backend", default=None, choices=BACKENDS, help="ldd-admm: backend")
    p.add_argument("--max-iterations", type=_COUNT, default=ADMM_DEFAULTS.max_iterations,
                   help="ldd-admm: iteration cap")
    p.add_argument("--admm-in-loop", action="store_true",
                   help="ldd-admm: each iteration a mosaik same-time pass in which the "
                        "community simulators solve their own steps")
    p.add_argument("--load-sigma", type=_GAP, default=0.1,
                   help="relative error of realised load against its forecast")
    p.add_argument("--pv-sigma", type=_GAP, default=0.15,
                   help="relative error of realised PV against its forecast")
    p.add_argument("--error-seed", type=_SEED, default=0, help="seed of the realisations")
    p.add_argument("--clearing", default="daily", choices=["daily", "hourly"],
                   help="daily: one horizon a day; hourly: every hour over a look-ahead")
    p.add_argument("--gate", type=_time_of_day, default=None, metavar="HH:MM",
                   help="daily: clear each day at this time the day before (day-ahead gate; "
                        "default at the day's start)")
    p.add_argument("--lookahead-h", type=_real(0.0, strict=True), default=None,
                   help="hourly: hours each clearing looks ahead (default the case's "
                        "horizon, 24 h)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished day (same case and "
                        "options; --days may grow)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of another run in --out")
    _add_ac_arguments(p)
    p.add_argument("--quiet", action="store_true", help="print nothing, no progress bar")
    p.set_defaults(run=_simulate)


def _add_experiments_command(sub) -> None:
    """The ``experiments`` command's arguments."""
    p = sub.add_parser("experiments", help="the paper's three findings as tables and figures")
    p.add_argument("case", help="paper (days picked by utility PV), tiny, random or a folder")
    p.add_argument("--days", type=_whole(1, 366), default=2,
                   help="paper: number of days (sunniest and darkest of May 2016, alternating)")
    p.add_argument("--day", action="append", default=None,
                   help="paper: a given day instead (repeatable)")
    p.add_argument("--step-minutes", type=_whole(1, 1440), default=60, help="paper: 60 or 15")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--workers", type=_COUNT, default=1, help="LDD-ADMM worker processes")
    p.add_argument("--max-iterations", type=_COUNT, default=ADMM_DEFAULTS.max_iterations,
                   help="LDD-ADMM iteration cap")
    p.add_argument("--mip-gap", type=_GAP, default=1e-4, help="relative MIP gap")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(run=_experiments)


def _add_report_command(sub) -> None:
    """The ``report`` command's arguments."""
    p = sub.add_parser("report", help="an HTML report (figures as PNG) of an output folder")
    p.add_argument("folder", help="output folder of solve, simulate or experiments")
    p.add_argument("--out", default=None, help="report folder (default: FOLDER/report)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(run=_report)


def _add_export_case_command(sub) -> None:
    """The ``export-case`` command's arguments."""
    p = sub.add_parser("export-case", help="write a case as a case folder")
    _add_case_arguments(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_export)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mosaik-bilevel`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", module="pandapower")
    warnings.filterwarnings("ignore", message=".*numba.*")
    try:
        return args.run(args)
    except MosaikBilevelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ABORTED if isinstance(exc, RunAbortedError) else EXIT_BAD_INPUT
    except KeyboardInterrupt as stop:
        name = stop.args[0] if stop.args and stop.args[0] in ("SIGINT", "SIGTERM") else "SIGINT"
        print(f"error: stopped by {name}; every finished day is on disk (--resume continues)",
              file=sys.stderr)
        return 128 + signal.Signals[name].value
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

