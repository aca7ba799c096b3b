"""The MV grid simulator: pandapower's AC power flow every step (thin over the core).

One ``Grid`` entity with one ``Feeder`` child per community and one ``Bus`` child per MV bus.
Every step it takes the follower's dispatch (units and utility PV) and each feeder's withdrawals
per LV bus, sets the case's fixed MV loads of the period, and runs the AC power flow on the MV
network with the LV feeders merged in (:class:`mosaik_bilevel.operation.ac_network.ACNetwork`;
merged rather than split: one exact Newton solve per step, no fixed-point iterations). A power
flow that does not converge is reported (``converged`` false, no voltages), never a crash.
Attributes: :mod:`.attributes`.

Run it in-process (``{"python": "mosaik_bilevel.simulators.grid:GridSimulator"}``), as a
separate process (``mosaik-bilevel-grid %(addr)s`` or ``python -m
mosaik_bilevel.simulators.grid %(addr)s``) or by ``connect``.
"""

from __future__ import annotations

import mosaik_api_v3

from mosaik_bilevel.operation.ac_network import ACNetwork, ACStep

from .attributes import meta
from .common import Clock, create_once, num, open_case, single

GRID_EID = "grid"


class GridSimulator(mosaik_api_v3.Simulator):
    """See the module docstring. ``sim_params``: ``case``, ``case_options``, ``start``."""

    def __init__(self):
        super().__init__(meta("grid"))
        self.last: ACStep | None = None

    def init(self, sid, time_resolution=1.0, *, case="paper", case_options=None, start=None):
        self.sid = sid
        self.case = open_case(case, case_options)
        self.clock = Clock(self.case, time_resolution, start)
        self.ac = ACNetwork(self.case)
        return self.meta

    def create(self, num_entities, model):
        create_once(self, num_entities, model, "Grid")
        children = [{"eid": f"feeder-{c.name}", "type": "Feeder"}
                    for c in self.case.communities]
        children += [{"eid": f"bus-{b}", "type": "Bus"} for b in self.ac.mv_buses]
        return [{"eid": GRID_EID, "type": model, "children": children}]

    def step(self, time, inputs, max_advance):
        ts = self.clock.timestamp(time)
        case = self.case
        if self.clock.index(time) % case.horizon_periods == 0:
            self.ac.restart()  # each horizon from a flat start: the same in a resumed run
        given = inputs.get(GRID_EID, {})
        self.ac.set_mv(case.mv_load_p_mw.loc[ts], case.mv_load_q_mvar.loc[ts],
                       single(given.get("P_gen[MW]")) or {},
                       single(given.get("Q_gen[MVar]")) or {},
                       single(given.get("P_pv_plant[MW]")) or {})
        for c in case.communities:
            feeder = inputs.get(f"feeder-{c.name}", {})
            self.ac.set_feeder(c.name, single(feeder.get("P_lv[MW]")) or {},
                               single(feeder.get("Q_lv[MVar]")) or {})
        self.last = self.ac.run()
        return time + self.clock.step

    def get_data(self, outputs):
        s = self.last
        data = {}
        for eid, attrs in outputs.items():
            data[eid] = {a: (None if s is None else self._value(eid, a, s)) for a in attrs}
        return data

    def _value(self, eid, attr, s: ACStep):
        if eid == GRID_EID:
            summary = s.summary()
            names = {"converged": "converged", "vm_min[pu]": "vm_min_pu",
                     "vm_max[pu]": "vm_max_pu", "P_loss[MW]": "p_loss_mw",
                     "P_sub[MW]": "p_sub_mw", "Q_sub[MVar]": "q_sub_mvar",
                     "vm_violations": "vm_violations",
                     "loading_violations": "loading_violations",
                     "ldf_error_mv[pu]": "ldf_mv_error_pu", "ldf_error_lv[pu]": "ldf_lv_error_pu",
                     "pf_time[s]": "time_s"}
            if attr in names:
                return summary[names[attr]]
            if attr.startswith(("vm_mv_", "vm_lv_")):  # vm_<level>_<min|max>[_ldf][pu]
                level, how, *ldf = attr[:-len("[pu]")].split("_")[1:]
                return summary.get(f"{level}_vm_{how}_{'ldf' if ldf else 'ac'}_pu")
            if attr == "loading_max[%]":
                values = [v for v in (summary["line_loading_max_percent"],
                                      summary["trafo_loading_max_percent"]) if v is not None]
                return max(values) if values else None
            if attr in ("P_gen[MW]", "Q_gen[MVar]", "P_pv_plant[MW]"):
                return None  # inputs only
            raise ValueError(f"unknown attribute {attr!r} of Grid")
        if not s.converged:
            return None
        if eid.startswith("feeder-"):
            name = eid[len("feeder-"):]
            if attr == "P[MW]":
                return num(s.feeder_p_mw.loc[name])
            if attr == "Q[MVar]":
                return num(s.feeder_q_mvar.loc[name])
            buses = self.ac.lv_bus_index[name].to_numpy()
            if attr == "vm_min[pu]":
                return num(s.vm_pu.loc[buses].min())
            if attr == "vm_max[pu]":
                return num(s.vm_pu.loc[buses].max())
            if attr == "loading[%]":
                return num(s.trafo_loading_percent.loc[self.ac.trafo_index.loc[name]])
            return None  # inputs
        if eid.startswith("bus-") and attr == "Vm[pu]":
            return num(s.mv_vm_pu.loc[int(eid[len("bus-"):])])
        raise ValueError(f"unknown attribute {attr!r} of {eid}")


def main():
    """Console script: run the simulator as a separate process (``%(addr)s``)."""
    return mosaik_api_v3.start_simulation(GridSimulator(), "mosaik_bilevel MV grid")


if __name__ == "__main__":
    main()
