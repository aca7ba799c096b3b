"""The AC check of a solved horizon: pandapower's power flow at every period's dispatch.

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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.case import Case
from ..model.correction import MV
from ..results.files import GRID_TO_AC, json_float
from ..results.result import ACSummary, SolveResult
from ..results.tables import MVDispatch
from ..solvers.highs import SolverOptions
from .ac_network import ACNetwork
from .community_operation import CommunityOperation, ForecastError

#: Columns of the validation table (one row per period).
AC_COLUMNS = ("time", "converged", "p_sub_mw", "p_sub_planned_mw", "p_loss_mw",
              "mv_vm_min_ac_pu", "mv_vm_max_ac_pu", "lv_vm_min_ac_pu", "lv_vm_max_ac_pu",
              "mv_vm_min_ldf_pu", "mv_vm_max_ldf_pu", "lv_vm_min_ldf_pu", "lv_vm_max_ldf_pu",
              "ldf_mv_error_pu", "ldf_lv_error_pu", "line_loading_max_percent",
              "trafo_loading_max_percent", "vm_violations", "loading_violations",
              "schedule_shortfall_mw", "taps_at_limit", "lv_root_vm_min_pu",
              "lv_root_vm_max_pu", "message")


def check_dispatch(case: Case, exchange_p_mw: pd.DataFrame, mv: MVDispatch | None = None,
                      *, options: SolverOptions | None = None,
                      detail: ACDetail | None = None) -> pd.DataFrame:
    """AC power flow at every period of a solved horizon (columns :data:`AC_COLUMNS`).

    Parameters
    ----------
    exchange_p_mw
        The solve's exchanges (period × community, MW; ``SolveResult.exchange_p_mw``).
    mv
        Its MV dispatch (``SolveResult.mv``); None leaves units and utility PV at zero;
        its LinDistFlow voltages give each fixed-tap community the MV voltage its local
        dispatch assumes.
    detail
        Filled with every bus's voltage and every transformer's loading (for an AC
        correction).
    """
    times = pd.DatetimeIndex(exchange_p_mw.index)
    lv: dict[str, list] = {}
    shortfall = np.zeros(len(times))
    start_pos = case.timeline.get_loc(times[0])
    for c in case.communities:
        op = CommunityOperation(c, case.community_settings, track_exchange=False,
                                error=ForecastError(0.0, 0.0), options=options)
        target = exchange_p_mw[c.name].to_numpy(dtype=float)
        vm_mv = None
        if mv is not None and c.transformer_model == "fixed":
            vm_mv = mv.vm_pu[c.mv_bus].reindex(times).to_numpy(dtype=float)
        schedule = op.accept(times[0], target, vm_mv_pu=vm_mv)
        # how far the community's own dispatch misses its exchange (0 for a consistent solve)
        shortfall = np.fmax(shortfall, np.abs(schedule.p_ex_mw - target))
        lv[c.name] = [op.step(t, step_index=start_pos + k) for k, t in enumerate(times)]
    ac = ACNetwork(case)
    rows = []
    for k, t in enumerate(times):
        dispatch = mv.at(t) if mv is not None else {"p_gen": {}, "q_gen": {},
                                                    "p_pv_plant": {}, "p_sub": np.nan}
        ac.set_mv(case.mv_load_p_mw.loc[t], case.mv_load_q_mvar.loc[t], dispatch["p_gen"],
                  dispatch["q_gen"], dispatch["p_pv_plant"])
        for c in case.communities:
            outcome = lv[c.name][k]
            ac.set_feeder(c.name, outcome.lv_p_mw, outcome.lv_q_mvar)
        step = ac.run()
        if detail is not None:
            detail.add(t, ac, step)
        s = step.summary()
        rows.append({**{col: s.get(col) for col in AC_COLUMNS}, "time": t,
                     "p_sub_planned_mw": dispatch["p_sub"],
                     "schedule_shortfall_mw": shortfall[k]})
    return pd.DataFrame(rows, columns=list(AC_COLUMNS))


@dataclass
class ACDetail:
    """Every bus's AC voltage and every feeder transformer's loading, per period.

    ``vm_pu``: ``"mv"`` or a community's name → bus × period (pu; the case's bus ids);
    ``trafo_loading_percent``: period × community; NaN where a power flow failed.
    """

    vm_pu: dict[str, pd.DataFrame] = field(default_factory=dict)
    trafo_loading_percent: pd.DataFrame | None = None
    _vm: dict = field(default_factory=dict)  # key → {time: voltages of its buses}
    _trafo: dict = field(default_factory=dict)  # time → loading per community

    def add(self, time, ac: ACNetwork, step) -> None:
        """Record one period's power flow."""
        vm = step.vm_pu if step.converged else pd.Series(dtype=float)
        for key, buses, merged in self._networks(ac):
            self._vm.setdefault(key, (buses, {}))[1][time] = (
                vm.reindex(merged).to_numpy(dtype=float) if len(vm)
                else np.full(len(buses), np.nan))
        trafos = ac.trafo_index
        loading = (step.trafo_loading_percent.reindex(trafos.to_numpy()).to_numpy(dtype=float)
                   if step.converged else np.full(len(trafos), np.nan))
        self._trafo[time] = pd.Series(loading, index=trafos.index)

    @staticmethod
    def _networks(ac: ACNetwork):
        """``(key, the case's bus ids, the merged net's bus ids)`` of every network."""
        yield MV, list(ac.mv_buses), ac.mv_buses
        for name, index in ac.lv_bus_index.items():
            yield name, list(index.index), index.to_numpy()

    def finish(self) -> ACDetail:
        """Turn the recorded periods into the tables."""
        for key, (buses, columns) in self._vm.items():
            self.vm_pu[key] = pd.DataFrame(columns, index=pd.Index(buses, name="bus"))
        if self._trafo:
            self.trafo_loading_percent = pd.DataFrame(self._trafo).T
        self._vm, self._trafo = {}, {}
        return self


def ac_summary(table: pd.DataFrame, *, step_h: float | None = None,
               bands: dict | None = None) -> ACSummary:
    """The AC check summed up, from a solve's ``ac.csv`` table or from the grid simulator's
    steps (``grid.csv``, whose columns :data:`~mosaik_bilevel.results.files.GRID_TO_AC`
    renames to the former's): what either has of steps, failed power flows, voltage and
    loading extremes, violations, losses (with ``step_h``), LinDistFlow's error, time.
    ``bands``: the case's voltage bands (:meth:`~mosaik_bilevel.data.case.Case.voltage_bands`).
    """
    table = table.rename(columns=GRID_TO_AC)

    def col(*names) -> pd.Series | None:
        cols = [pd.to_numeric(table[n], errors="coerce") for n in names if n in table]
        return pd.concat(cols) if cols else None

    def extreme(values: pd.Series | None, how: str):
        if values is None:
            return None
        v = getattr(values, how)()
        return None if pd.isna(v) else float(v)

    def count(name: str) -> int | None:
        values = col(name)
        return None if values is None else int((values > 0).sum())

    ok = table["converged"].astype(str).str.lower().isin(["true", "1", "1.0"])
    loss, pf_time = col("p_loss_mw"), col("time_s")
    planned = col("p_sub_planned_mw")
    bands = bands or {}
    return ACSummary(
        steps=len(table), not_converged=int((~ok).sum()),
        vm_min_pu=extreme(col("mv_vm_min_ac_pu", "lv_vm_min_ac_pu"), "min"),
        vm_max_pu=extreme(col("mv_vm_max_ac_pu", "lv_vm_max_ac_pu"), "max"),
        steps_with_vm_violation=count("vm_violations"),
        steps_with_loading_violation=count("loading_violations"),
        loading_max_percent=extreme(col("line_loading_max_percent",
                                        "trafo_loading_max_percent", "loading_max_percent"),
                                    "max"),
        loss_mwh=None if loss is None or step_h is None else json_float(loss.sum() * step_h),
        ldf_error_mv_max_pu=extreme(col("ldf_mv_error_pu"), "max"),
        ldf_error_lv_max_pu=extreme(col("ldf_lv_error_pu"), "max"),
        power_flow_s=None if pf_time is None else json_float(pf_time.sum()),
        p_sub_deviation_max_mw=None if planned is None else extreme(
            (col("p_sub_mw") - planned).abs(), "max"),
        schedule_shortfall_max_mw=extreme(col("schedule_shortfall_mw"), "max"),
        mv_vm_band_pu=bands.get("mv_vm_band_pu"), lv_vm_band_pu=bands.get("lv_vm_band_pu"))


def attach_ac_check(case: Case, result: SolveResult,
                    options: SolverOptions | None = None) -> SolveResult:
    """Run :func:`check_dispatch` on a solve's dispatch and record it on the result.

    Sets ``result.ac`` (the per-period table), ``result.ac_summary`` (with the case's
    voltage bands) and the time it took (``times_s["ac_validation"]``). A result without
    exchanges (no solution) is left as it is.
    """
    if result.exchange_p_mw is None:
        return result
    t0 = time.perf_counter()
    result.ac = check_dispatch(case, result.exchange_p_mw, result.mv, options=options)
    result.ac_summary = ac_summary(result.ac, step_h=result.step_h,
                                   bands=case.voltage_bands())
    result.times_s["ac_validation"] = time.perf_counter() - t0
    return result
