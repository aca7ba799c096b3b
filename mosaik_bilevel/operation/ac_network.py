"""The merged AC network: pandapower's power flow on the MV network with every LV feeder in.

:class:`ACNetwork` builds one pandapower net from a case: the MV network with its fixed loads,
one static generator per conventional unit and per PV plant (P and Q set-points from the
dispatch), and every community's LV feeder attached through its own transformer at its MV
bus, with one load per LV bus that carries anything (members, rooftop PV, batteries,
shiftable loads; load convention, net of generation). The feeders are *merged* rather than
split into separate power flows coupled by a fixed point: one Newton solve per step is exact
for the coupled system, needs no outer iterations, and the merged paper system (1,263 buses)
solves in milliseconds.

:meth:`ACNetwork.run` sets one step's injections, runs the power flow (recycling pandapower's
internal structures after the first run) and returns an :class:`ACStep`: voltages, loadings,
losses, the exchange measured at each feeder's transformer, band and rating violations, and
the LinDistFlow-vs-AC error of the step (LinDistFlow evaluated at the same injections: on the
MV network with the measured feeder exchanges, and on each feeder from its measured root
voltage). A power flow that does not converge is an outcome (``converged=False``), not an
exception.

Transformers follow their community's model (:mod:`mosaik_bilevel.data.transformer`): a
``fixed`` one stays at the data's tap position; a ``regulated`` one gets pandapower's
continuous tap controller, which moves its tap (continuously, within ``[tap_min, tap_max]``)
until the LV root sits at ``vm_set_pu``; :meth:`ACNetwork.run` then runs pandapower's control
loop (a power flow per control step, each recycling the last one's structures and voltages).
A transformer whose needed tap lies out of range stops at the range's end; the step reports
the taps used, the LV root voltages and how many regulated transformers miss their set-point
at a tap limit. Between steps the taps stay where the last step left them (a warm start);
:meth:`ACNetwork.restart` and a failed step put them back at the data's positions.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandas as pd
from pandapower.auxiliary import ControllerNotConverged, NetCalculationNotConverged
from pandapower.control import ContinuousTapControl, run_control
from pandapower.control.run_control import ctrl_variables_default

from ..data.case import Case
from ..errors import CaseError
from ..model.lindistflow import ldf_voltages
from ..results.files import json_float

#: pandapower's recycle options for a time series: only PQ injections change.
RECYCLE = {"bus_pq": True, "trafo": False, "gen": False}
#: The same while tap controllers move taps: the transformers' branch data are rebuilt too.
RECYCLE_TAPS = {"bus_pq": True, "trafo": True, "gen": False}
#: Relative tolerance of the tap controllers on their LV root voltage (|1 − set/vm|).
TAP_TOL = 1e-5
#: Power flows the control loop may run after its first before it gives up.
TAP_MAX_ITER = 30
#: A regulated transformer misses its set-point when its LV root is farther from it (pu).
VM_SET_MISS_PU = 1e-3


@dataclass
class ACStep:
    """One AC power flow: what the MV grid simulator reports for a step."""

    converged: bool
    vm_pu: pd.Series = field(default_factory=pd.Series)
    mv_vm_pu: pd.Series = field(default_factory=pd.Series)
    line_loading_percent: pd.Series = field(default_factory=pd.Series)
    trafo_loading_percent: pd.Series = field(default_factory=pd.Series)
    feeder_p_mw: pd.Series = field(default_factory=pd.Series)
    feeder_q_mvar: pd.Series = field(default_factory=pd.Series)
    p_loss_mw: float = math.nan
    p_sub_mw: float = math.nan
    q_sub_mvar: float = math.nan
    vm_violations: int = 0
    loading_violations: int = 0
    ldf_mv_error_pu: float = math.nan
    ldf_lv_error_pu: float = math.nan
    #: lowest and highest voltage (pu) per level ("mv", "lv") and model ("ac", "ldf": the
    #: LinDistFlow voltages at the same injections), e.g. ``envelope["lv", "ldf"]``
    envelope: dict = field(default_factory=dict)
    time_s: float = 0.0
    message: str = ""
    #: tap position per community (continuous where regulated; the data's, maybe NaN, for a
    #: transformer without a tap changer)
    tap_pos: pd.Series = field(default_factory=pd.Series)
    #: voltage of each community's LV root (the transformer's LV bus), pu
    lv_root_vm_pu: pd.Series = field(default_factory=pd.Series)
    #: regulated transformers at a tap limit whose LV root misses ``vm_set_pu`` by more than
    #: :data:`VM_SET_MISS_PU` (one whose range is a single position sits at its limit; one
    #: without a tap changer, ideally regulated in the clearing, is not counted)
    taps_at_limit: int = 0

    def summary(self) -> dict:
        """Scalars as plain JSON-ready values (None where the power flow failed)."""
        num = json_float

        def extreme(s, how):
            return num(getattr(s, how)()) if len(s) else None

        return {
            "converged": bool(self.converged),
            "vm_min_pu": extreme(self.vm_pu, "min"), "vm_max_pu": extreme(self.vm_pu, "max"),
            "mv_vm_min_pu": extreme(self.mv_vm_pu, "min"),
            "line_loading_max_percent": extreme(self.line_loading_percent, "max"),
            "trafo_loading_max_percent": extreme(self.trafo_loading_percent, "max"),
            "p_loss_mw": num(self.p_loss_mw), "p_sub_mw": num(self.p_sub_mw),
            "q_sub_mvar": num(self.q_sub_mvar),
            "vm_violations": int(self.vm_violations),
            "loading_violations": int(self.loading_violations),
            "taps_at_limit": int(self.taps_at_limit),
            "lv_root_vm_min_pu": extreme(self.lv_root_vm_pu, "min"),
            "lv_root_vm_max_pu": extreme(self.lv_root_vm_pu, "max"),
            "ldf_mv_error_pu": num(self.ldf_mv_error_pu),
            "ldf_lv_error_pu": num(self.ldf_lv_error_pu),
            **{f"{level}_vm_{how}_{model}_pu": num(values[i])
               for (level, model), values in self.envelope.items()
               for i, how in enumerate(("min", "max"))},
            "time_s": float(self.time_s), "message": self.message,
        }


class ACNetwork:
    """The merged AC network of a case (see the module docstring).

    Parameters
    ----------
    case
        The case; its MV network and the communities' LV networks are copied, not changed.
    """

    def __init__(self, case: Case):
        self.case = case
        self.net = self._build(case)
        self._recycle = False
        self._mv = case.mv_network
        self._lv = {c.name: c.lv_network for c in case.communities}
        self._add_tap_control(case)

    # -- building ---------------------------------------------------------------------------
    def _build(self, case: Case):
        net = self._mv_side(case)
        self.lv_bus_index: dict[str, pd.Series] = {}
        self.lv_load_index: dict[str, pd.Series] = {}
        self.trafo_index = pd.Series(dtype=int)
        mv_lo, mv_hi = case.mv_network.voltage_band()
        vm_min = [pd.Series(mv_lo, index=case.mv_network.buses)]
        vm_max = [pd.Series(mv_hi, index=case.mv_network.buses)]
        for c in case.communities:
            new = self._add_feeder(net, c)
            vmin, vmax = c.lv_network.voltage_band()
            vm_min.append(pd.Series(vmin, index=new))
            vm_max.append(pd.Series(vmax, index=new))
        self.vm_min_pu = pd.concat(vm_min)
        self.vm_max_pu = pd.concat(vm_max)
        self.load_position = {name: net.load.index.get_indexer(idx)
                              for name, idx in self.lv_load_index.items()}
        self._mv_load_position = net.load.index.get_indexer(self.mv_load_index)
        self._gen_position = net.sgen.index.get_indexer(self.gen_index)
        self._pv_position = net.sgen.index.get_indexer(self.pv_plant_index)
        return net

    def _mv_side(self, case: Case):
        """The MV network without its own injections, with one load per MV load bus and
        one static generator per unit and PV plant."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = copy.deepcopy(case.mv_net)
        for table in ("load", "sgen", "gen", "storage", "shunt", "controller"):
            if table in net and len(net[table]):
                net[table] = net[table].iloc[0:0]
        eg = net.ext_grid[net.ext_grid.in_service]
        if len(eg) != 1:
            raise CaseError(case.where("mv_network"), "ext_grid",
                            f"needs exactly one in-service ext_grid, found {len(eg)}")
        net.ext_grid.loc[eg.index, "vm_pu"] = case.substation.vm_set_pu
        self.mv_buses = pd.Index(case.mv_network.buses, name="bus")
        mv_load_buses = [int(b) for b in case.mv_load_p_mw.columns]
        self.mv_load_index = pd.Series(
            pp.create_loads(net, mv_load_buses, p_mw=0.0, q_mvar=0.0,
                            name=[f"mv load {b}" for b in mv_load_buses]), index=mv_load_buses)
        g, pv = case.generators, case.pv_plants
        self.gen_index = pd.Series(
            pp.create_sgens(net, g["bus"].astype(int).tolist(), p_mw=0.0, q_mvar=0.0,
                            name=list(g.index), type="conventional") if len(g) else [],
            index=g.index, dtype=int)
        self.pv_plant_index = pd.Series(
            pp.create_sgens(net, pv["bus"].astype(int).tolist(), p_mw=0.0, q_mvar=0.0,
                            name=list(pv.index), type="PV") if len(pv) else [],
            index=pv.index, dtype=int)
        return net

    def _add_feeder(self, net, c) -> np.ndarray:
        """One community's feeder: its buses, lines and transformer at its MV bus, and one
        load per LV bus that carries a device; returns the new bus indices."""
        lv = c.lv_network
        old = lv.buses
        new = pp.create_buses(net, len(old), vn_kv=c.net.bus.vn_kv.loc[old].to_numpy(),
                              name=[f"{c.name}/{b}" for b in old])
        bus_map = pd.Series(new, index=old)
        self.lv_bus_index[c.name] = bus_map
        lines = c.net.line.loc[lv.branches.loc[lv.branches.element == "line",
                                               "element_index"].to_numpy()]
        pp.create_lines_from_parameters(
            net, bus_map.loc[lines.from_bus].tolist(), bus_map.loc[lines.to_bus].tolist(),
            lines.length_km.to_numpy(float), lines.r_ohm_per_km.to_numpy(float),
            lines.x_ohm_per_km.to_numpy(float), lines.c_nf_per_km.to_numpy(float),
            lines.max_i_ka.to_numpy(float),
            name=[f"{c.name}/{n}" for n in lines["name"].astype(str)],
            g_us_per_km=lines.g_us_per_km.fillna(0.0).to_numpy(float),
            parallel=lines.parallel.to_numpy(int), df=lines.df.fillna(1.0).to_numpy(float))
        tr = c.transformer
        self.trafo_index.loc[c.name] = pp.create_transformer_from_parameters(
            net, c.mv_bus, int(bus_map.loc[int(tr.lv_bus)]), float(tr.sn_mva),
            float(tr.vn_hv_kv), float(tr.vn_lv_kv), float(tr.vkr_percent),
            float(tr.vk_percent), float(tr.pfe_kw), float(tr.i0_percent),
            shift_degree=float(tr.shift_degree), tap_side=tr.get("tap_side"),
            tap_neutral=tr.get("tap_neutral", np.nan), tap_max=tr.get("tap_max", np.nan),
            tap_min=tr.get("tap_min", np.nan),
            tap_step_percent=tr.get("tap_step_percent", np.nan),
            tap_step_degree=tr.get("tap_step_degree", np.nan),
            tap_pos=tr.get("tap_pos", np.nan), tap_changer_type=_tap_changer_type(tr),
            parallel=int(tr.parallel),
            df=float(tr.get("df", 1.0)), name=f"{c.name}/trafo")
        device_buses = sorted(set(c.members["bus"]) | set(c.pv["bus"])
                              | set(c.batteries["bus"]) | set(c.shiftable["bus"]))
        device_buses = [int(b) for b in device_buses]
        loads = pp.create_loads(net, bus_map.loc[device_buses].tolist(), p_mw=0.0,
                                q_mvar=0.0, name=[f"{c.name}/{b}" for b in device_buses])
        self.lv_load_index[c.name] = pd.Series(loads, index=device_buses)
        return new

    def _add_tap_control(self, case: Case) -> None:
        """One continuous tap controller over every regulated transformer that has a tap
        range (the others keep the data's tap)."""
        net = self.net
        net.trafo["tap_pos"] = net.trafo.tap_pos.astype(float)
        self._tap_data = net.trafo.loc[self.trafo_index.to_numpy(), "tap_pos"].to_numpy()
        self.regulated = pd.Index([c.name for c in case.communities
                                   if c.transformer_model == "regulated"], name="community")
        links = {c.name: c.transformer_link for c in case.communities}
        self.vm_set_pu = pd.Series({c.name: float(c.vm_set_pu) for c in case.communities},
                                   dtype=float)
        self.tap_min = pd.Series({n: link.tap_min for n, link in links.items()}, dtype=float)
        self.tap_max = pd.Series({n: link.tap_max for n, link in links.items()}, dtype=float)
        self._tap_link = pd.Series({n: link.tap_pos for n, link in links.items()}, dtype=float)
        # those with a tap changer (the clearing takes the others as ideally regulated)
        self._tapped = pd.Index([n for n in self.regulated if links[n].tap_step_percent != 0])
        movable = [n for n in self._tapped if links[n].tap_min < links[n].tap_max]
        self.controlled = pd.Index(movable, name="community")
        self._ctrl_variables = None
        if movable:
            ContinuousTapControl(net, self.trafo_index.loc[movable].to_numpy(),
                                 vm_set_pu=self.vm_set_pu.loc[movable].to_numpy(),
                                 side="lv", tol=TAP_TOL)
            self._ctrl_variables = ctrl_variables_default(net)
            self._ctrl_variables["run"] = self._power_flow

    # -- one step ---------------------------------------------------------------------------
    def set_mv(self, load_p_mw, load_q_mvar, gen_p_mw, gen_q_mvar, pv_p_mw) -> None:
        """Set the MV side: fixed loads (per bus) and the dispatch (per unit and plant)."""
        net = self.net
        p_col, q_col = net.load.columns.get_loc("p_mw"), net.load.columns.get_loc("q_mvar")
        net.load.iloc[self._mv_load_position, p_col] = _aligned(load_p_mw, self.mv_load_index)
        net.load.iloc[self._mv_load_position, q_col] = _aligned(load_q_mvar,
                                                                self.mv_load_index)
        sp_col, sq_col = net.sgen.columns.get_loc("p_mw"), net.sgen.columns.get_loc("q_mvar")
        if len(self.gen_index):
            net.sgen.iloc[self._gen_position, sp_col] = _aligned(gen_p_mw, self.gen_index)
            net.sgen.iloc[self._gen_position, sq_col] = _aligned(gen_q_mvar, self.gen_index)
        if len(self.pv_plant_index):
            net.sgen.iloc[self._pv_position, sp_col] = _aligned(pv_p_mw, self.pv_plant_index)

    def set_feeder(self, community: str, p_mw, q_mvar) -> None:
        """Set one feeder's net withdrawal per LV bus (load convention; missing buses: 0)."""
        net = self.net
        idx = self.lv_load_index[community]
        pos = self.load_position[community]
        net.load.iloc[pos, net.load.columns.get_loc("p_mw")] = _aligned(p_mw, idx)
        net.load.iloc[pos, net.load.columns.get_loc("q_mvar")] = _aligned(q_mvar, idx)

    def restart(self) -> None:
        """Start the next power flow from scratch (a DC initial point, the taps at the data's
        positions), not from the last one."""
        self._recycle = False
        self.net.trafo.loc[self.trafo_index.to_numpy(), "tap_pos"] = self._tap_data

    def run(self) -> ACStep:
        """Run the power flow on the injections set (with the tap control loop when a
        transformer is regulated); see :class:`ACStep`."""
        net = self.net
        t0 = time.perf_counter()
        try:
            if self._ctrl_variables is not None:
                run_control(net, ctrl_variables=self._ctrl_variables, max_iter=TAP_MAX_ITER)
            else:
                self._power_flow(net)
            converged = bool(net.converged)
            message = ""
        except pp.LoadflowNotConverged as err:
            converged, message = False, f"power flow did not converge: {err}"
        except ControllerNotConverged as err:
            converged, message = False, f"tap control did not converge: {err}"
        except NetCalculationNotConverged as err:
            converged, message = False, f"power flow did not converge (tap control): {err}"
        except Exception as err:
            converged, message = False, f"power flow failed: {type(err).__name__}: {err}"
        elapsed = time.perf_counter() - t0
        if not converged:
            self.restart()  # start the next step from scratch
            return ACStep(converged=False, time_s=elapsed, message=message or
                          "power flow did not converge")
        return self._read(elapsed)

    def _power_flow(self, net, **_) -> None:
        """One power flow (the control loop's ``run`` too): recycled after the first, with
        the transformers' branch data rebuilt only when a tap has moved since the last."""
        taps = net.trafo.tap_pos.to_numpy(dtype=float, copy=True)
        if self._recycle:
            moved = not np.array_equal(taps, self._taps_run, equal_nan=True)
            pp.runpp(net, recycle=RECYCLE_TAPS if moved else RECYCLE)
        else:
            pp.runpp(net, init="dc")
            self._recycle = True
        self._taps_run = taps

    # -- reading ----------------------------------------------------------------------------
    def _prepare_reading(self) -> None:
        """Positions (in the bus table's order) used every step, computed once."""
        net = self.net
        bus_pos = pd.Series(np.arange(len(net.bus)), index=net.bus.index)
        self._n_bus = len(net.bus)
        self._load_bus = bus_pos.loc[net.load.bus].to_numpy()
        self._sgen_bus = bus_pos.loc[net.sgen.bus].to_numpy()
        self._vm_lo = self.vm_min_pu.reindex(net.bus.index).to_numpy() - 1e-9
        self._vm_hi = self.vm_max_pu.reindex(net.bus.index).to_numpy() + 1e-9
        self._mv_pos = bus_pos.loc[self.mv_buses].to_numpy()
        mv = self._mv
        self._feeder_mv_pos = mv.position.loc[[c.mv_bus for c in self.case.communities]
                                              ].to_numpy()
        self._lv_pos = [bus_pos.loc[self.lv_bus_index[c.name].loc[self._lv[c.name].buses]
                                    ].to_numpy() for c in self.case.communities]
        self._trafo_pos = net.trafo.index.get_indexer(self.trafo_index.to_numpy())
        self._lv_root_pos = bus_pos.loc[net.trafo.lv_bus.iloc[self._trafo_pos]].to_numpy()

    def _read(self, elapsed: float) -> ACStep:
        net = self.net
        if not hasattr(self, "_n_bus"):
            self._prepare_reading()
        vm = net.res_bus.vm_pu
        vm_values = vm.to_numpy()
        line = net.res_line.loading_percent
        trafo = net.res_trafo.loading_percent
        tr = net.res_trafo.iloc[self._trafo_pos]
        names = self.trafo_index.index
        feeder_p = pd.Series(tr.p_hv_mw.to_numpy(), index=names)
        feeder_q = pd.Series(tr.q_hv_mvar.to_numpy(), index=names)
        vm_bad = int(((vm_values < self._vm_lo) | (vm_values > self._vm_hi)).sum())
        load_bad = int((line.to_numpy() > 100.0 + 1e-9).sum()
                       + (trafo.to_numpy() > 100.0 + 1e-9).sum())
        taps = pd.Series(net.trafo.tap_pos.iloc[self._trafo_pos].to_numpy(float), index=names)
        lv_root = pd.Series(vm_values[self._lv_root_pos], index=names)
        eg = net.res_ext_grid
        step = ACStep(
            converged=True, vm_pu=vm.copy(), mv_vm_pu=vm.iloc[self._mv_pos].copy(),
            line_loading_percent=line.copy(), trafo_loading_percent=trafo.copy(),
            feeder_p_mw=feeder_p, feeder_q_mvar=feeder_q,
            p_loss_mw=float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()),
            p_sub_mw=float(eg.p_mw.sum()), q_sub_mvar=float(eg.q_mvar.sum()),
            vm_violations=vm_bad, loading_violations=load_bad, tap_pos=taps,
            lv_root_vm_pu=lv_root, taps_at_limit=self._taps_at_limit(taps, lv_root),
            time_s=elapsed)
        self._compare_ldf(step, vm_values, feeder_p, feeder_q)
        return step

    def _taps_at_limit(self, taps: pd.Series, lv_root_vm_pu: pd.Series) -> int:
        """Regulated transformers with a tap changer at a tap limit whose LV root misses its
        set-point."""
        names = self._tapped
        if not len(names):
            return 0
        tap = taps.loc[names].fillna(self._tap_link.loc[names])
        at_limit = ((tap <= self.tap_min.loc[names] + 1e-9)
                    | (tap >= self.tap_max.loc[names] - 1e-9))
        miss = (lv_root_vm_pu.loc[names] - self.vm_set_pu.loc[names]).abs() > VM_SET_MISS_PU
        return int((at_limit & miss).sum())

    def _compare_ldf(self, step: ACStep, vm: np.ndarray, feeder_p: pd.Series,
                     feeder_q: pd.Series) -> None:
        """LinDistFlow at the step's injections: its largest error and both envelopes."""
        net, n = self.net, self._n_bus
        # every element is in service: one withdrawal per bus, in the bus table's order
        wp = (np.bincount(self._load_bus, net.load.p_mw.to_numpy(), n)
              - np.bincount(self._sgen_bus, net.sgen.p_mw.to_numpy(), n))
        wq = (np.bincount(self._load_bus, net.load.q_mvar.to_numpy(), n)
              - np.bincount(self._sgen_bus, net.sgen.q_mvar.to_numpy(), n))
        mv = self._mv
        p_mv, q_mv = wp[self._mv_pos], wq[self._mv_pos]
        np.add.at(p_mv, self._feeder_mv_pos, feeder_p.to_numpy())
        np.add.at(q_mv, self._feeder_mv_pos, feeder_q.to_numpy())
        vm_mv = vm[self._mv_pos]
        ldf_mv = ldf_voltages(mv, p_mv, q_mv, vm_mv[0])
        step.ldf_mv_error_pu = float(np.abs(ldf_mv - vm_mv).max())
        step.envelope["mv", "ac"] = (float(vm_mv.min()), float(vm_mv.max()))
        step.envelope["mv", "ldf"] = (float(ldf_mv.min()), float(ldf_mv.max()))
        if not self.case.communities:
            return
        ac_lv, ldf_lv = [], []
        for c, pos in zip(self.case.communities, self._lv_pos, strict=True):
            ac_lv.append(vm[pos])
            ldf_lv.append(ldf_voltages(self._lv[c.name], wp[pos], wq[pos], vm[pos][0]))
        ac_lv, ldf_lv = np.concatenate(ac_lv), np.concatenate(ldf_lv)
        step.ldf_lv_error_pu = float(np.abs(ldf_lv - ac_lv).max())
        step.envelope["lv", "ac"] = (float(ac_lv.min()), float(ac_lv.max()))
        step.envelope["lv", "ldf"] = (float(ldf_lv.min()), float(ldf_lv.max()))


def _tap_changer_type(tr: pd.Series) -> str | None:
    """The tap changer's type; pandapower ignores taps of a transformer without one, so a
    tap step without a type is a ratio tap changer (how the clearing reads it)."""
    kind = tr.get("tap_changer_type")
    if isinstance(kind, str) and kind:
        return kind
    step = tr.get("tap_step_percent")
    return "Ratio" if step is not None and np.isfinite(float(step)) and step else None


def _aligned(values, index: pd.Index | pd.Series) -> np.ndarray:
    """Values for every key of ``index`` (a dict, Series or sequence; missing keys: 0)."""
    keys = index.index if isinstance(index, pd.Series) else index
    if isinstance(values, dict):
        lookup = {str(k): float(v) for k, v in values.items()}
        return np.array([lookup.get(str(k), 0.0) for k in keys], dtype=float)
    if isinstance(values, pd.Series):
        return values.reindex(keys).fillna(0.0).to_numpy(dtype=float)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (len(keys),):
        raise ValueError(f"expected {len(keys)} values, got shape {arr.shape}")
    return arr
