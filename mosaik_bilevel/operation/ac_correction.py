"""AC-corrected clearing: clear, check in AC, tighten LinDistFlow where AC disagrees, repeat.

LinDistFlow is lossless and linear; the AC power flow of its dispatch can break a bound the
clearing held (on the paper day the MV feeder's end sits 0.0045 pu lower in AC than in the
clearing, at 0.8955 pu). :func:`clear_ac_corrected` clears a horizon, runs the AC check
(:func:`~mosaik_bilevel.operation.ac_check.check_dispatch`) and, while a voltage lies below its
band by more than ``vm_tolerance_pu`` or a feeder transformer is loaded beyond 100 % +
``loading_tolerance_percent``, tightens the model where it was wrong and clears again, at most
``max_rounds`` times:

- a bus (MV or LV) whose AC voltage ``v`` lies below ``v_min``: its lower bound in that period
  rises by ``v_min − v`` plus :data:`MARGIN_PU` (LinDistFlow's error at that dispatch; if the
  next clearing sits at the new bound with the same error, AC lands at ``v_min + margin``);
- a transformer loaded at ``L`` > 100 %: its rating in that period scales by ``100 / L``
  (less :data:`MARGIN_LOADING`).

Bounds only tighten, so the rounds cannot cycle; each is a valid clearing of a more
conservative model, reported with its AC violations, costs and time. The last round's
clearing is the result; the first one's costs are kept beside it (the price of feasibility).

Left out: line loadings are checked and reported but do not correct the line ratings (none
is close to its rating on the paper case); voltages above the band do not correct the upper
bounds (lossless LinDistFlow sits above AC, so its upper bound is the conservative side).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..data.case import Case
from ..model.correction import MV, ACBounds
from ..results.result import ACCorrectionSummary, SolveResult
from ..solvers.highs import SolverOptions
from .ac_check import ACDetail, ac_summary, check_dispatch

#: Added to each raised voltage bound beyond the AC deficit (pu).
MARGIN_PU = 2e-4
#: Taken off each scaled transformer rating beyond the AC excess (fraction).
MARGIN_LOADING = 1e-3


def clear_ac_corrected(case: Case, clear: Callable[[ACBounds], SolveResult], *,
                       max_rounds: int, vm_tolerance_pu: float = 1e-3,
                       loading_tolerance_percent: float = 0.1,
                       options: SolverOptions | None = None) -> SolveResult:
    """Clear with ``clear(bounds)`` and correct in AC up to ``max_rounds`` times.

    Returns the last round's result, its AC check attached, with ``ac_correction`` (one row
    per round) and ``ac_correction_summary`` (the first round's costs beside the last's).
    A round whose tightened model has no dispatch ends the correction: the previous round's
    result is returned (``kept_round``), its AC violations reported, never lost.
    """
    t_all = time.perf_counter()
    bounds = ACBounds()
    rounds: list[dict] = []
    first: SolveResult | None = None
    result: SolveResult | None = None
    kept: SolveResult | None = None  # the last round with a dispatch
    kept_round = 0
    converged = False
    message = ""
    for k in range(max_rounds + 1):
        t0 = time.perf_counter()
        result = clear(bounds)
        solve_s = time.perf_counter() - t0
        first = first or result
        if not result.status.has_dispatch or result.exchange_p_mw is None:
            rounds.append(_row(k, result, None, solve_s, 0.0))
            if kept is not None:  # the tightened model has no dispatch: keep the last one
                message = (f"round {k}: the corrected clearing found no dispatch "
                           f"({result.status.value}); round {k - 1}'s dispatch is kept, "
                           f"with its AC violations")
                result = kept
                result.message = f"{result.message}; {message}"
            else:
                kept_round = k
                message = f"round {k}: the clearing found no dispatch ({result.status.value})"
            break
        kept, kept_round = result, k
        t0 = time.perf_counter()
        detail = ACDetail()
        result.ac = check_dispatch(case, result.exchange_p_mw, result.mv, options=options,
                                   detail=detail)
        detail.finish()
        result.ac_summary = ac_summary(result.ac, step_h=result.step_h,
                                       bands=case.voltage_bands())
        result.times_s["ac_validation"] = time.perf_counter() - t0
        worst = _violations(case, detail, result.ac)
        rounds.append(_row(k, result, worst, solve_s, result.times_s["ac_validation"]))
        if worst["not_converged"]:
            message = f"round {k}: {worst['not_converged']} AC power flows did not converge"
            break
        if (worst["vm_deficit_max_pu"] <= vm_tolerance_pu
                and worst["trafo_excess_max_percent"] <= loading_tolerance_percent
                and worst["line_excess_max_percent"] <= loading_tolerance_percent):
            converged = True
            break
        if k < max_rounds:
            _tighten(case, bounds, detail)
    table = pd.DataFrame(rounds)
    result.ac_correction = table
    if not converged and not message:
        left = rounds[-1]
        message = (f"AC violations left after {max_rounds} correction rounds: voltage "
                   f"{left['vm_deficit_max_pu']:.2g} pu below band, loading "
                   f"{max(left['trafo_excess_max_percent'], left['line_excess_max_percent']):.2g}"
                   f" % above rating")
    result.ac_correction_summary = ACCorrectionSummary(
        rounds=len(rounds) - 1, max_rounds=max_rounds, converged=converged,
        kept_round=kept_round,
        vm_tolerance_pu=vm_tolerance_pu, loading_tolerance_percent=loading_tolerance_percent,
        leader_cost_before=first.leader_cost, follower_cost_before=first.follower_cost,
        system_cost_before=first.system_cost,
        price_of_feasibility=result.system_cost - first.system_cost,
        time_s=time.perf_counter() - t_all, message=message)
    return result


def _row(k: int, result: SolveResult, worst: dict | None, solve_s: float,
         ac_s: float) -> dict:
    """One round of the table."""
    worst = worst or {"vm_deficit_max_pu": math.nan, "vm_violations": 0,
                      "trafo_excess_max_percent": math.nan,
                      "line_excess_max_percent": math.nan, "not_converged": 0}
    return {"round": k, "status": result.status.value, "leader_cost": result.leader_cost,
            "follower_cost": result.follower_cost, "system_cost": result.system_cost,
            **worst, "solve_s": solve_s, "ac_s": ac_s}


def _bands(case: Case) -> dict[str, pd.Series]:
    """The lower voltage band per network (indexed by the case's bus ids)."""
    out = {MV: pd.Series(case.mv_network.voltage_band()[0], index=case.mv_network.buses)}
    for c in case.communities:
        lv = c.lv_network
        out[c.name] = pd.Series(lv.voltage_band()[0], index=lv.buses)
    return out


def _deficits(case: Case, detail: ACDetail) -> dict[str, pd.DataFrame]:
    """How far each bus's AC voltage lies below its band (pu; bus × period; ≤ 0 inside)."""
    bands = _bands(case)
    out = {}
    for key, vm in detail.vm_pu.items():
        if key != MV:
            c = next(c for c in case.communities if c.name == key)
            if c.transformer_model != "fixed":  # the root is held by its tap changer
                vm = vm.drop(index=c.lv_network.root, errors="ignore")
        out[key] = vm.rsub(bands[key].reindex(vm.index), axis=0)
    return out


def _violations(case: Case, detail: ACDetail, ac: pd.DataFrame) -> dict:
    """The worst AC violations of a round (0 where there is none)."""
    deficits = _deficits(case, detail)
    values = np.concatenate([d.to_numpy(dtype=float).ravel() for d in deficits.values()])
    trafo = detail.trafo_loading_percent
    excess = trafo.to_numpy(dtype=float) - 100.0 if trafo is not None else np.zeros(0)
    lines = pd.to_numeric(ac["line_loading_max_percent"], errors="coerce").to_numpy() - 100.0
    converged = ac["converged"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return {
        "vm_deficit_max_pu": float(np.nanmax(values, initial=0.0)),
        "vm_violations": int(np.nansum(values > 0)),
        "trafo_excess_max_percent": float(np.nanmax(excess, initial=0.0)),
        "line_excess_max_percent": float(np.nanmax(lines, initial=0.0)),
        "not_converged": int((~converged).sum()),
    }


def _tighten(case: Case, bounds: ACBounds, detail: ACDetail) -> None:
    """Raise the bounds of the buses below their band, scale overloaded transformers."""
    bands = _bands(case)
    for key, deficit in _deficits(case, detail).items():
        low = deficit > 0
        if not low.to_numpy().any():
            continue
        old = bounds.vm_min_pu.get(key)
        base = pd.DataFrame(np.broadcast_to(bands[key].reindex(deficit.index).to_numpy()[
            :, None], deficit.shape), index=deficit.index, columns=deficit.columns)
        if old is not None:
            base = base.combine(old.reindex(index=deficit.index, columns=deficit.columns),
                                np.fmax)
        raised = (base + deficit + MARGIN_PU).where(low)
        bounds.raise_vm_min(key, raised)
    trafo = detail.trafo_loading_percent
    if trafo is not None:
        over = trafo > 100.0
        for name in trafo.columns[over.any(axis=0)]:
            factor = (100.0 / trafo[name]).where(over[name], 1.0) * (1 - MARGIN_LOADING)
            bounds.scale_rating(name, factor.where(over[name], 1.0))
