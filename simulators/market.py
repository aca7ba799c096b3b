"""The market operator simulator: the leader's clearings in a co-simulation (thin over the core).

One ``MarketOperator`` entity with one ``Port`` child per community. In a step where its
clearing rule says so (:class:`mosaik_bilevel.operation.market_operator.ClearingRule`: daily at
the day's start, daily at a day-ahead gate, or every hour over a look-ahead), it clears a
horizon (:class:`mosaik_bilevel.operation.market_operator.MarketOperator`) from the state the
communities measured at the end of the previous step (time-shifted connections: battery energy
and shiftable-load progress; for a day-ahead gate, their planned battery energy at the end of
the running schedule) and sends each community its exchange schedule through its port; every
step it outputs the follower's dispatch, the DLMPs and each community's scheduled exchange and
price of the step. Attributes: :mod:`.attributes`.

Run it in-process (``{"python": "mosaik_bilevel.simulators.market:MarketSimulator"}``), as a
separate process (``mosaik-bilevel-market %(addr)s`` or ``python -m
mosaik_bilevel.simulators.market %(addr)s``) or by ``connect``.
"""

from __future__ import annotations

import dataclasses
import threading

import mosaik_api_v3

from mosaik_bilevel.methods.registry import method_name
from mosaik_bilevel.operation.market_operator import ClearingRule, MarketOperator
from mosaik_bilevel.solvers.highs import SolverOptions

from .attributes import meta
from .common import Clock, create_once, num, open_case, plain_dict, single
from .relay import RelayBackend

OPERATOR_EID = "market"
PORT_PREFIX = "port-"


class MarketSimulator(mosaik_api_v3.Simulator):
    """See the module docstring. ``sim_params`` of :meth:`init`:

    case, case_options, start
        As for the community simulator.
    method, pricing
        ``exact`` or ``ldd_admm``; ``dlmp`` or ``tariff``.
    mip_rel_gap, time_limit_s, threads
        HiGHS options.
    admm
        LDD-ADMM options: ``backend`` (``sequential``, ``process``, ``dask``), ``workers``,
        ``max_iterations``.
    clearing
        When to clear: ``{"interval_h", "lookahead_h", "lead_h"}`` (any may be left out;
        :class:`~mosaik_bilevel.operation.market_operator.ClearingRule`); default daily at the
        day's start.
    out
        Folder that receives every clearing's result as soon as it is done.
    units_output_before_mw
        The units' output in the period before ``start`` (``{unit: MW}``; a resumed run's).
    """

    def __init__(self):
        super().__init__(meta("market"))
        self.operator: MarketOperator | None = None
        self.cleared_now = False
        self.in_loop = False
        self._relay: RelayBackend | None = None
        self._request = None
        self._seq = 0
        self._cleared_at = None
        self._loop_error: BaseException | None = None

    def init(self, sid, time_resolution=1.0, *, case="paper", case_options=None, start=None,
             method="exact", pricing="dlmp", mip_rel_gap=1e-4, time_limit_s=None,
             threads=None, admm=None, out=None, clearing=None, units_output_before_mw=None,
             ac_correction=0):
        self.sid = sid
        self.case = open_case(case, case_options)
        self._communities_by_name = {c.name: c for c in self.case.communities}
        self.clock = Clock(self.case, time_resolution, start)
        options = SolverOptions(mip_rel_gap=float(mip_rel_gap),
                                time_limit_s=float("inf") if time_limit_s is None
                                else float(time_limit_s),
                                threads=None if threads is None else int(threads))
        admm = dict(admm or {})
        self.in_loop = bool(admm.pop("in_loop", False))
        if self.in_loop and method_name(method) != "ldd_admm":
            raise ValueError("admm in_loop needs method 'ldd_admm'")
        rule = ClearingRule(**(clearing or {}))
        self.operator = MarketOperator(self.case, method, pricing, options=options,
                                       admm=_admm_kwargs(admm), out=out, rule=rule,
                                       start=self.clock.start,
                                       units_output_before_mw=units_output_before_mw,
                                       ac_correction=int(ac_correction))
        return self.meta

    def create(self, num_entities, model):
        create_once(self, num_entities, model, "MarketOperator")
        ports = [{"eid": f"{PORT_PREFIX}{c.name}", "type": "Port"}
                 for c in self.case.communities]
        return [{"eid": OPERATOR_EID, "type": model, "children": ports}]

    def step(self, time, inputs, max_advance):
        if self._relay is not None:  # a same-time pass of an LDD-ADMM clearing
            self._collect(inputs)
            return time + self.clock.step
        ts = self.clock.timestamp(time)
        self.now = ts
        self.cleared_now = False
        if self.operator.clears_at(ts) and self._cleared_at != time:
            self._cleared_at = time
            start = self.operator.delivery_start(ts)
            # at the delivery start: the measured state; at a gate before it, the planned
            # battery energy (the delivery day starts a new shiftable-load cycle)
            if start == ts:
                read = {"initial_energy_mwh": "E_batteries[MWh]",
                        "shiftable_done": "shiftable_done"}
            else:
                read = {"initial_energy_mwh": "E_batteries_planned[MWh]"}
            state = {key: {} for key in read}
            for c in self.case.communities:
                given = inputs.get(f"{PORT_PREFIX}{c.name}", {})
                for key, attr in read.items():
                    value = single(given.get(attr))
                    if value is not None:
                        state[key][c.name] = value
            if self.in_loop:
                self._start_loop(start, state)
            else:
                self.operator.clear(start, **state)
                self.cleared_now = True
        return time + self.clock.step

    # -- LDD-ADMM as same-time loops ------------------------------------------------------
    def _start_loop(self, start, state: dict) -> None:
        """Run the clearing in a thread whose community calls become mosaik passes."""
        relay = self._relay = RelayBackend()
        self._loop_error = None

        def clear():
            try:
                self.operator.clear(start, **state, backend=relay)
            except BaseException as err:  # raised again in the simulator's own step
                self._loop_error = err
            finally:
                relay.requests.put(None)

        threading.Thread(target=clear, name=f"clearing {start}", daemon=True).start()
        self._advance()

    def _collect(self, inputs) -> None:
        """Hand the communities' answers of this pass to the clearing and take its next call."""
        _method, batch = self._request
        replies = {}
        for name in batch:
            answer = single(inputs.get(f"{PORT_PREFIX}{name}", {}).get("admm_reply"))
            if answer is not None and answer["seq"] == self._seq:
                replies[name] = answer["reply"]
        if len(replies) < len(batch):
            return  # not everyone has answered yet
        self._relay.replies.put(replies)
        self._advance()

    def _advance(self) -> None:
        item = self._relay.requests.get()
        if item is None:  # the clearing has finished
            self._relay, self._request = None, None
            if self._loop_error is not None:
                raise RuntimeError(f"LDD-ADMM clearing failed: {self._loop_error}"
                                   ) from self._loop_error
            self.cleared_now = True
            return
        self._seq += 1
        self._request = item

    def get_data(self, outputs):
        current = self.operator.current(self.now)
        last = self.operator.clearings[-1] if self.operator.clearings else None
        data = {}
        for eid, attrs in outputs.items():
            values = {}
            for a in attrs:
                v = self._value(eid, a, current, last)
                if v is not None or a not in ("schedule", "admm"):  # events only when due
                    values[a] = v
            data[eid] = values
        return data

    def _value(self, eid, attr, current, last):
        if eid == OPERATOR_EID:
            return self._operator_value(attr, current, last)
        return self._port_value(eid[len(PORT_PREFIX):], attr, current, last)

    def _operator_value(self, attr, current, last):
        if attr == "cleared":
            return self.cleared_now
        if attr in LAST_CLEARING:
            return None if last is None else LAST_CLEARING[attr](last)
        if attr not in STEP_DISPATCH:
            raise ValueError(f"unknown attribute {attr!r} of MarketOperator")
        table = None if current is None else getattr(current, STEP_DISPATCH[attr])
        if table is None:
            return None
        row = table.loc[self.now]
        return num(row) if attr == "P_sub[MW]" else plain_dict(row)

    def _port_value(self, name, attr, current, last):
        if attr == "admm":
            return self._admm_request(name)
        if attr == "schedule":
            if not (self.cleared_now and last is not None and last.ok):
                return None
            values = last.schedules[name]
            horizon = self.clock.horizon(values.to_numpy(), values.index[0])
            vm_mv = self._planned_mv_voltage(name, last)
            if vm_mv is not None:  # a fixed-tap feeder's LV voltages follow its MV bus
                horizon["vm_mv_pu"] = [num(v) for v in vm_mv]
            return horizon
        if attr not in PORT_STEP:
            raise ValueError(f"unknown attribute {attr!r} of Port")
        if current is None:
            return None
        return num(getattr(current, PORT_STEP[attr]).at[self.now, name])

    def _planned_mv_voltage(self, name, clearing):
        """The clearing's MV voltage at a fixed-tap community's bus (None otherwise)."""
        community = self._communities_by_name.get(name)
        mv = clearing.result.mv if clearing.result is not None else None
        if community is None or mv is None or community.transformer_model != "fixed":
            return None
        return mv.vm_pu[community.mv_bus].to_numpy()

    def _admm_request(self, name):
        """This community's part of the running LDD-ADMM call (an event), or None."""
        if self._request is None or name not in self._request[1]:
            return None
        method, batch = self._request
        request = {"seq": self._seq, "method": method, "args": list(batch[name])}
        if method == "open":
            request["terms"] = dataclasses.asdict(self._relay.terms)
        return request


#: MarketOperator outputs read from the last clearing (None before the first).
LAST_CLEARING = {
    "delivery_start": lambda c: c.start.isoformat(),
    "status": lambda c: str(c.status),
    "leader_cost": lambda c: None if c.result is None else num(c.result.leader_cost),
    "follower_cost": lambda c: None if c.result is None else num(c.result.follower_cost),
    "solve_time[s]": lambda c: num(c.wall_s),
    "iterations": lambda c: c.iterations,
}
#: MarketOperator outputs of the step, from the clearing that covers it (its frames).
STEP_DISPATCH = {"dlmp[$/MWh]": "dlmp", "P_gen[MW]": "p_gen", "Q_gen[MVar]": "q_gen",
                 "P_pv_plant[MW]": "p_pv_plant", "P_sub[MW]": "p_sub"}
#: Port outputs of the step, from the clearing that covers it (time × community frames).
PORT_STEP = {"price[$/MWh]": "prices", "P_scheduled[MW]": "schedules"}


def _admm_kwargs(admm: dict | None) -> dict:
    """LDD-ADMM keyword arguments from plain sim params."""
    if not admm:
        return {}
    admm = dict(admm)
    kwargs = {}
    if "backend" in admm:
        kwargs["backend"] = str(admm.pop("backend"))
    if "workers" in admm:
        kwargs["workers"] = int(admm.pop("workers"))
    if admm:
        from mosaik_bilevel.methods.ldd_admm import ADMMOptions

        kwargs["options"] = ADMMOptions(**admm)
    return kwargs


def main():
    """Console script: run the simulator as a separate process (``%(addr)s``)."""
    return mosaik_api_v3.start_simulation(MarketSimulator(), "mosaik_bilevel market operator")


if __name__ == "__main__":
    main()
