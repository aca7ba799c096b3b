"""AC validation of a solved horizon: pandapower's power flow at every period's dispatch.

The solve's tables give the MV side (units, utility PV; the fixed MV loads are the case's) and
each community's exchange. Each community turns its exchange into device set-points on its own
(:func:`~mosaik_bilevel.operation.community_operation.local_dispatch`, as in the co-simulation:
what a method does not disclose, e.g. LDD-ADMM's device schedules, is never needed), and the LV
withdrawals per bus follow at the forecast (no forecast error). The merged AC network
(:class:`~mosaik_bilevel.operation.ac_network.ACNetwork`) is then solved period by period. A
community may meet its exchange with other device set-points than the solve's own (alternative
optima): the exchanges at the MV buses are the solve's, the LV voltages those of the community's
choice.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..data.case import Case
from ..results.result import SolveResult
from ..solvers.highs import SolverOptions
from .ac_network import ACNetwork, voltage_bands
from .community_operation import CommunityOperation, ForecastError

#: Columns of the validation table (one row per period).
AC_COLUMNS = ("time", "converged", "p_sub_mw", "p_sub_planned_mw", "p_loss_mw",
              "mv_vm_min_ac_pu", "mv_vm_max_ac_pu", "lv_vm_min_ac_pu", "lv_vm_max_ac_pu",
              "mv_vm_min_ldf_pu", "mv_vm_max_ldf_pu", "lv_vm_min_ldf_pu", "lv_vm_max_ldf_pu",
              "ldf_mv_error_pu", "ldf_lv_error_pu", "line_loading_max_percent",
              "trafo_loading_max_percent", "vm_violations", "loading_violations",
              "schedule_shortfall_mw", "message")


def validate_dispatch(case: Case, exchanges: pd.DataFrame, mv_dispatch: pd.DataFrame | None,
                      *, options: SolverOptions | None = None) -> pd.DataFrame:
    """AC power flow at every period of a solved horizon (columns :data:`AC_COLUMNS`).

    Parameters
    ----------
    exchanges
        The solve's ``exchanges`` table (``community``, ``time``, ``p_mw``).
    mv_dispatch
        Its ``mv_dispatch`` table (``unit``, ``kind``, ``time``, ``p_mw``, ``q_mvar``); None
        leaves units and utility PV at zero.
    """
    times = pd.DatetimeIndex(sorted(pd.to_datetime(exchanges["time"]).unique()))
    ex = exchanges.assign(time=pd.to_datetime(exchanges["time"])).pivot(
        index="time", columns="community", values="p_mw").reindex(times)
    lv: dict[str, list] = {}
    shortfall = np.zeros(len(times))
    start_pos = case.timeline.get_loc(times[0])
    for c in case.communities:
        op = CommunityOperation(c, case.community_settings, track_exchange=False,
                                error=ForecastError(0.0, 0.0), options=options)
        target = ex[c.name].to_numpy(dtype=float)
        schedule = op.accept(times[0], target)
        # how far the community's own dispatch misses its exchange (0 for a consistent solve)
        shortfall = np.fmax(shortfall, np.abs(schedule.p_ex_mw - target))
        lv[c.name] = [op.step(t, step_index=start_pos + k) for k, t in enumerate(times)]
    dispatch = _mv_dispatch(mv_dispatch, times)
    ac = ACNetwork(case)
    rows = []
    for k, t in enumerate(times):
        gen_p, gen_q, pv_p, planned = dispatch[k]
        ac.set_mv(case.mv_load_p_mw.loc[t], case.mv_load_q_mvar.loc[t], gen_p, gen_q, pv_p)
        for c in case.communities:
            outcome = lv[c.name][k]
            ac.set_feeder(c.name, outcome.lv_p_mw, outcome.lv_q_mvar)
        s = ac.run().summary()
        rows.append({**{col: s.get(col) for col in AC_COLUMNS}, "time": t,
                     "p_sub_planned_mw": planned, "schedule_shortfall_mw": shortfall[k]})
    return pd.DataFrame(rows, columns=list(AC_COLUMNS))


def ac_summary(table: pd.DataFrame) -> dict:
    """The validation's scalars (JSON-ready): steps, failures, extremes, violations."""

    def col(name):
        return pd.to_numeric(table[name], errors="coerce")

    def extreme(values, how):
        v = getattr(values, how)()
        return None if pd.isna(v) else float(v)

    ok = table["converged"].astype(bool)
    return {
        "steps": len(table), "not_converged": int((~ok).sum()),
        "vm_min_pu": extreme(pd.concat([col("mv_vm_min_ac_pu"), col("lv_vm_min_ac_pu")]),
                             "min"),
        "vm_max_pu": extreme(pd.concat([col("mv_vm_max_ac_pu"), col("lv_vm_max_ac_pu")]),
                             "max"),
        "steps_with_vm_violation": int((col("vm_violations") > 0).sum()),
        "steps_with_loading_violation": int((col("loading_violations") > 0).sum()),
        "ldf_error_mv_max_pu": extreme(col("ldf_mv_error_pu"), "max"),
        "ldf_error_lv_max_pu": extreme(col("ldf_lv_error_pu"), "max"),
        "p_sub_deviation_max_mw": extreme(
            (col("p_sub_mw") - col("p_sub_planned_mw")).abs(), "max"),
        "schedule_shortfall_max_mw": extreme(col("schedule_shortfall_mw"), "max"),
    }


def _mv_dispatch(table: pd.DataFrame | None, times: pd.DatetimeIndex) -> list[tuple]:
    """Per period: (unit P dict, unit Q dict, PV plant P dict, planned substation P)."""
    if table is None:
        return [({}, {}, {}, np.nan)] * len(times)
    t = table.assign(time=pd.to_datetime(table["time"]))
    out = []
    for when in times:
        rows = t[t["time"] == when]
        gen = rows[rows["kind"] == "conventional"]
        pv = rows[rows["kind"] == "pv"]
        sub = rows.loc[rows["kind"] == "upstream", "p_mw"]
        out.append((dict(zip(gen["unit"], gen["p_mw"], strict=True)),
                    dict(zip(gen["unit"], gen["q_mvar"], strict=True)),
                    dict(zip(pv["unit"], pv["p_mw"], strict=True)),
                    float(sub.sum()) if len(sub) else np.nan))
    return out


def attach_ac_check(case: Case, result: SolveResult,
                    options: SolverOptions | None = None) -> SolveResult:
    """Run :func:`validate_dispatch` on a solve's dispatch and record it on the result.

    Sets ``result.ac`` (the per-period table), the summary under ``ac`` (with the case's
    voltage bands) and the time it took (``times_s["ac_validation"]``). A result without
    exchanges (no solution) is left as it is.
    """
    if result.exchanges is None:
        return result
    t0 = time.perf_counter()
    result.ac = validate_dispatch(case, result.exchanges, result.mv_dispatch, options=options)
    result.extra["ac"] = {**ac_summary(result.ac), **voltage_bands(case)}
    result.times_s["ac_validation"] = time.perf_counter() - t0
    return result
