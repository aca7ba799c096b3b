"""The community simulator: LV energy communities in operation (thin over the core).

Each ``Community`` entity holds one community's private data and real-world state
(:class:`mosaik_bilevel.operation.community_operation.CommunityOperation`). It takes its
exchange schedule (a horizon) from the market operator, dispatches its own devices to meet it,
meets reality every step and publishes what it did, its forecasts and its measured state.
Attributes: :mod:`.attributes`.

Run it in-process (``{"python": "mosaik_bilevel.simulators.community:CommunitySimulator"}``),
as a separate process (``mosaik-bilevel-community %(addr)s`` or ``python -m
mosaik_bilevel.simulators.community %(addr)s``) or by ``connect``.
"""

from __future__ import annotations

import mosaik_api_v3

from mosaik_bilevel.operation.community_operation import CommunityOperation, ForecastError

from .attributes import meta
from .common import Clock, num, open_case, plain_dict, single, total
from .relay import AgentTerms


class CommunitySimulator(mosaik_api_v3.Simulator):
    """See the module docstring. ``sim_params`` of :meth:`init`:

    case, case_options
        A built-in case name or case folder, and the built-in case's options.
    start
        The case period at mosaik time 0 (ISO; default the case's first).
    load_sigma, pv_sigma, seed
        Relative forecast errors of realised load and PV (:class:`ForecastError`).
    track_exchange
        Batteries absorb each step's imbalance within their limits.
    initial_energy_mwh
        Battery energy at ``start`` per community and battery (``{community: {battery:
        MWh}}``; default the case's): a resumed run's measured state.
    """

    def __init__(self):
        super().__init__(meta("community"))
        self.ops: dict[str, CommunityOperation] = {}
        self.outcomes: dict = {}
        self.agents: dict = {}  # LDD-ADMM agents, built here where the data live
        self.replies: dict = {}
        self.operated: dict[str, int] = {}

    def init(self, sid, time_resolution=1.0, *, case="paper", case_options=None, start=None,
             load_sigma=0.1, pv_sigma=0.15, seed=0, track_exchange=True,
             initial_energy_mwh=None):
        self.sid = sid
        self.case = open_case(case, case_options)
        self.clock = Clock(self.case, time_resolution, start)
        self.error = ForecastError(float(load_sigma), float(pv_sigma), int(seed))
        self.track_exchange = bool(track_exchange)
        self.by_name = {c.name: c for c in self.case.communities}
        self.initial_energy_mwh = dict(initial_energy_mwh or {})
        return self.meta

    def create(self, num_entities, model, name=None):
        names = [name] if isinstance(name, str) else list(name or [])
        if len(names) != num_entities:
            raise ValueError(f"create {num_entities} Community entities with as many names "
                             f"(got {names})")
        out = []
        for n in names:
            if n not in self.by_name:
                raise ValueError(f"no community {n!r} in case {self.case.name} "
                                 f"(has {sorted(self.by_name)})")
            if n in self.ops:
                raise ValueError(f"community {n!r} exists already in {self.sid}")
            self.ops[n] = CommunityOperation(self.by_name[n], self.case.community_settings,
                                             error=self.error,
                                             track_exchange=self.track_exchange)
            if n in self.initial_energy_mwh:
                self.ops[n].set_energy(self.initial_energy_mwh[n])
            out.append({"eid": n, "type": model})
        return out

    def step(self, time, inputs, max_advance):
        ts = self.clock.timestamp(time)
        last = self.case.timeline[-1]
        if ts > last:
            raise ValueError(f"{self.sid}: time {time} ({ts}) lies beyond the case's last "
                             f"period {last}")
        self.replies = {}
        for eid, op in self.ops.items():
            given = inputs.get(eid, {})
            request = single(given.get("admm"))
            if request is not None:  # a pass of an LDD-ADMM clearing: answer, do not operate
                self.replies[eid] = self._answer(eid, request)
                continue
            schedule = single(given.get("schedule"))
            if schedule is not None:
                op.accept(schedule["start"], schedule["values"],
                          vm_mv_pu=schedule.get("vm_mv_pu"))
            if self.operated.get(eid) == time:
                continue
            self.outcomes[eid] = op.step(
                ts, step_index=self.clock.index(time),
                load_p_mw=total(given.get("P_load[MW]")),
                pv_available_mw=total(given.get("P_pv_available[MW]")))
            self.operated[eid] = time
        return time + self.clock.step

    def _answer(self, eid: str, request: dict) -> dict:
        """Run one LDD-ADMM protocol call on this community's own agent."""
        method, args = request["method"], request["args"]
        if method == "open":
            terms = AgentTerms(**request["terms"])
            tariff = self.case.prices[["tariff_buy_per_mwh", "tariff_sell_per_mwh"]]
            self.agents[eid] = terms.build(self.by_name[eid], self.case.community_settings,
                                           tariff)
        reply = getattr(self.agents[eid], method)(*args)
        return {"seq": request["seq"], "reply": reply}

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            o = self.outcomes.get(eid)
            values = {}
            for attr in attrs:
                if attr == "admm_reply":
                    if eid in self.replies:  # an event: only when there is an answer
                        values[attr] = self.replies[eid]
                    continue
                values[attr] = None if o is None else self._value(eid, o, attr)
            data[eid] = values
        return data

    def _value(self, eid, o, attr):
        if attr == "forecast_P[MW]":
            c = self.by_name[eid]
            timeline = c.member_p_mw.index
            i = timeline.get_indexer([o.time])[0]
            window = c.member_p_mw.iloc[i:i + self.case.horizon_periods].sum(axis=1)
            return self.clock.horizon(window.to_numpy(), o.time)
        scalar = {
            "P[MW]": o.p_ex_mw, "Q[MVar]": o.q_ex_mvar, "P_scheduled[MW]": o.p_ex_scheduled_mw,
            "imbalance[MW]": o.imbalance_mw, "P_load[MW]": o.p_load_mw,
            "P_load_forecast[MW]": o.p_load_forecast_mw,
            "P_pv_available[MW]": o.p_pv_available_mw, "P_pv_forecast[MW]": o.p_pv_forecast_mw,
            "P_pv[MW]": o.p_pv_mw, "P_battery[MW]": o.p_battery_mw,
            "P_shiftable[MW]": o.p_shiftable_mw, "E[MWh]": float(o.e_mwh.sum()),
        }
        if attr in scalar:
            return num(scalar[attr])
        if attr == "E_batteries[MWh]":
            return plain_dict(o.e_mwh)
        if attr == "E_batteries_planned[MWh]":
            return plain_dict(self.ops[eid].planned_energy_mwh())
        if attr == "shiftable_done":
            return {str(k): int(v) for k, v in o.shiftable_done.items()}
        if attr == "P_lv[MW]":
            return plain_dict(o.lv_p_mw)
        if attr == "Q_lv[MVar]":
            return plain_dict(o.lv_q_mvar)
        if attr == "schedule_status":
            return o.schedule_status
        if attr == "battery_limited":
            return bool(o.battery_limited)
        raise ValueError(f"unknown attribute {attr!r} of Community")


def main():
    """Console script: run the simulator as a separate process (``%(addr)s``)."""
    return mosaik_api_v3.start_simulation(CommunitySimulator(), "mosaik_bilevel communities")


if __name__ == "__main__":
    main()
