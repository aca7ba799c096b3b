"""The solution's frames: wide in memory (period × element), long on disk.

Wide frames are indexed by ``time`` with one column per element (community, MV bus, unit);
the long views have one row per element and period, element-major, with units in the
column names, as the CSV files of a solve folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _long(values: np.ndarray, names: dict[str, pd.Index], column: str) -> pd.DataFrame:
    index = pd.MultiIndex.from_product(list(names.values()), names=list(names))
    return pd.DataFrame({column: np.asarray(values).ravel()}, index=index)


def wide(values: np.ndarray, periods, columns, name: str) -> pd.DataFrame:
    """A wide frame (period × element) from an element × period array."""
    return pd.DataFrame(np.asarray(values, dtype=float).reshape(len(columns), len(periods)).T,
                        index=pd.Index(periods, name="time"),
                        columns=pd.Index(list(columns), name=name))


def exchanges_long(p_mw: pd.DataFrame, q_mvar: pd.DataFrame, price: pd.DataFrame,
                   mv_bus: pd.Series, step_h: float) -> pd.DataFrame:
    """``community, time, p_mw, q_mvar, mv_bus, price_per_mwh, payment`` (community-major)."""
    p = p_mw.to_numpy().T
    pr = price.to_numpy().T
    names = {"community": pd.Index(p_mw.columns, name="community"),
             "time": pd.Index(p_mw.index, name="time")}
    ex = _long(p, names, "p_mw")
    ex["q_mvar"] = q_mvar.to_numpy().T.ravel()
    ex["mv_bus"] = np.repeat(mv_bus.reindex(p_mw.columns).to_numpy(), len(p_mw.index))
    ex["price_per_mwh"] = pr.ravel()
    ex["payment"] = (pr * p * step_h).ravel()
    return ex.reset_index()


def dlmp_long(dlmp: pd.DataFrame, lp_dlmp: pd.DataFrame | None) -> pd.DataFrame:
    """``bus, time, dlmp_per_mwh, dlmp_lp_per_mwh, deviation_per_mwh`` (bus-major)."""
    names = {"bus": pd.Index(dlmp.columns, name="bus"),
             "time": pd.Index(dlmp.index, name="time")}
    table = _long(dlmp.to_numpy().T, names, "dlmp_per_mwh")
    table["dlmp_lp_per_mwh"] = np.nan if lp_dlmp is None else lp_dlmp.to_numpy().T.ravel()
    table["deviation_per_mwh"] = table["dlmp_per_mwh"] - table["dlmp_lp_per_mwh"]
    return table.reset_index()


@dataclass
class MVDispatch:
    """The follower's dispatch and LinDistFlow voltages over a horizon (wide frames).

    ``units`` describes every MV source (index: unit name; ``kind`` ``conventional`` or
    ``pv``, ``bus``, ``cost_per_mwh``); the upstream grid is at ``root_bus`` and costs
    ``upstream_per_mwh`` per period.
    """

    p_sub_mw: pd.Series
    q_sub_mvar: pd.Series
    p_gen_mw: pd.DataFrame
    q_gen_mvar: pd.DataFrame
    p_pv_mw: pd.DataFrame
    pv_available_mw: pd.DataFrame
    vm_pu: pd.DataFrame
    units: pd.DataFrame
    root_bus: int
    upstream_per_mwh: pd.Series

    def source_p_mw(self) -> pd.DataFrame:
        """Active power per source kind and period: ``substation``, ``conventional``,
        ``pv`` (summed over units)."""
        return pd.DataFrame({"substation": self.p_sub_mw,
                             "conventional": self.p_gen_mw.sum(axis=1),
                             "pv": self.p_pv_mw.sum(axis=1)})

    def cost_by_period(self, step_h: float) -> pd.Series:
        """The follower's cost per period (every MV source at its price)."""
        units = self.units
        gen = self.p_gen_mw * units.loc[self.p_gen_mw.columns, "cost_per_mwh"].to_numpy()
        pv = self.p_pv_mw * units.loc[self.p_pv_mw.columns, "cost_per_mwh"].to_numpy()
        return step_h * (self.p_sub_mw * self.upstream_per_mwh + gen.sum(axis=1)
                         + pv.sum(axis=1))

    def dispatch_long(self) -> pd.DataFrame:
        """``unit, kind, bus, time, p_mw, q_mvar, cost_per_mwh[, available_mw]``: the
        substation first, then the conventional units, then the PV plants."""
        periods = self.p_sub_mw.index
        rows = [pd.DataFrame({"unit": "substation", "kind": "upstream", "bus": self.root_bus,
                              "time": periods, "p_mw": self.p_sub_mw.to_numpy(),
                              "q_mvar": self.q_sub_mvar.to_numpy(),
                              "cost_per_mwh": self.upstream_per_mwh.to_numpy()})]
        for p, q, kind in ((self.p_gen_mw, self.q_gen_mvar, "conventional"),
                           (self.p_pv_mw, None, "pv")):
            for name in p.columns:
                unit = self.units.loc[name]
                rows.append(pd.DataFrame({
                    "unit": name, "kind": kind, "bus": int(unit["bus"]), "time": periods,
                    "p_mw": p[name].to_numpy(),
                    "q_mvar": 0.0 if q is None else q[name].to_numpy(),
                    "cost_per_mwh": float(unit["cost_per_mwh"])}))
        disp = pd.concat(rows, ignore_index=True)
        if len(self.p_pv_mw.columns):
            disp["available_mw"] = np.nan
            for name in self.p_pv_mw.columns:
                mask = (disp["unit"] == name) & (disp["kind"] == "pv")
                disp.loc[mask, "available_mw"] = self.pv_available_mw[name].to_numpy()
        return disp

    def voltage_long(self) -> pd.DataFrame:
        """``bus, time, vm_pu`` (bus-major)."""
        names = {"bus": pd.Index(self.vm_pu.columns, name="bus"),
                 "time": pd.Index(self.vm_pu.index, name="time")}
        return _long(self.vm_pu.to_numpy().T, names, "vm_pu").reset_index()

    def at(self, ts) -> dict:
        """One period's set-points as plain dicts: ``p_gen``, ``q_gen``, ``p_pv_plant``
        (by unit) and ``p_sub`` (MW)."""
        return {"p_gen": self.p_gen_mw.loc[ts].to_dict(),
                "q_gen": self.q_gen_mvar.loc[ts].to_dict(),
                "p_pv_plant": self.p_pv_mw.loc[ts].to_dict(),
                "p_sub": float(self.p_sub_mw.loc[ts])}
