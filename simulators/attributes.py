"""The one declarative table of every simulator's models, attributes and parameters.

``meta`` of each simulator, the README's attribute table and the tests all read
:data:`ATTRIBUTES`. Units are in the names (mosaik-pandapower-2's convention: a community's
``P[MW]``/``Q[MVar]`` connect to a mosaik-pandapower-2 ``Bus``'s ``P_load[MW]``/
``Q_load[MVar]``).
``direction`` is ``in``, ``out`` or ``in/out`` (an input that overrides what the simulator
would otherwise compute, reported back as output). Values are plain JSON: numbers, strings,
booleans, ``None`` when there is no value, lists, and dicts with string keys.
A *horizon* is ``{"start": ISO time, "step_s": seconds, "values": [...]}``.
"""

from __future__ import annotations

from typing import NamedTuple


class Attribute(NamedTuple):
    simulator: str
    model: str
    name: str
    unit: str
    sign: str
    direction: str
    description: str


_A = Attribute
ATTRIBUTES: tuple[Attribute, ...] = (
    # -- community simulator ----------------------------------------------------------------
    _A("community", "Community", "P[MW]", "MW", "import (consumer) positive", "out",
       "realised exchange at the MV bus (lossless sum over the feeder)"),
    _A("community", "Community", "Q[MVar]", "Mvar", "consumer positive", "out",
       "realised reactive exchange at the MV bus"),
    _A("community", "Community", "P_scheduled[MW]", "MW", "import positive", "out",
       "the cleared exchange of the step"),
    _A("community", "Community", "imbalance[MW]", "MW", "import positive", "out",
       "realised minus scheduled exchange"),
    _A("community", "Community", "P_load[MW]", "MW", "consumer positive", "in/out",
       "members' realised load; an input overrides the forecast-plus-error realisation"),
    _A("community", "Community", "P_load_forecast[MW]", "MW", "consumer positive", "out",
       "members' forecast load"),
    _A("community", "Community", "P_pv_available[MW]", "MW", "generator positive", "in/out",
       "realised rooftop PV availability; an input overrides the realisation"),
    _A("community", "Community", "P_pv_forecast[MW]", "MW", "generator positive", "out",
       "forecast rooftop PV availability"),
    _A("community", "Community", "P_pv[MW]", "MW", "generator positive", "out",
       "rooftop PV produced (scheduled, at most what is available)"),
    _A("community", "Community", "P_battery[MW]", "MW", "charging positive", "out",
       "net battery power"),
    _A("community", "Community", "P_shiftable[MW]", "MW", "consumer positive", "out",
       "shiftable loads running"),
    _A("community", "Community", "E[MWh]", "MWh", "", "out",
       "battery energy at the end of the step, summed"),
    _A("community", "Community", "E_batteries[MWh]", "MWh", "", "out",
       "battery energy at the end of the step, per battery (measured state)"),
    _A("community", "Community", "shiftable_done", "periods", "", "out",
       "periods each shiftable load has run in the current cycle of horizon_h (measured "
       "state)"),
    _A("community", "Community", "E_batteries_planned[MWh]", "MWh", "", "out",
       "battery energy per battery at the end of the current schedule if the rest goes "
       "to plan (the state a day-ahead clearing starts from)"),
    _A("community", "Community", "forecast_P[MW]", "MW", "consumer positive", "out",
       "horizon: members' forecast load from the step on (24 h)"),
    _A("community", "Community", "P_lv[MW]", "MW", "consumer positive", "out",
       "net withdrawal per LV bus (dict by LV bus)"),
    _A("community", "Community", "Q_lv[MVar]", "Mvar", "consumer positive", "out",
       "reactive withdrawal per LV bus (dict by LV bus)"),
    _A("community", "Community", "schedule_status", "", "", "out",
       "status of the community's own dispatch of its schedule (no_schedule before one)"),
    _A("community", "Community", "battery_limited", "", "", "out",
       "a battery set-point was clipped to its power or energy limit"),
    _A("community", "Community", "schedule", "MW", "import positive", "in",
       "horizon: the exchange schedule cleared by the market operator"),
    _A("community", "Community", "admm", "", "", "in",
       "LDD-ADMM as co-simulation: the operator's request (method, arguments)"),
    _A("community", "Community", "admm_reply", "", "", "out",
       "LDD-ADMM as co-simulation: this community's answer (exchange profile only)"),
    # -- market operator simulator ----------------------------------------------------------
    _A("market", "MarketOperator", "cleared", "", "", "out",
       "a clearing ran in this step"),
    _A("market", "MarketOperator", "delivery_start", "ISO time", "", "out",
       "first period of the last clearing's horizon"),
    _A("market", "MarketOperator", "status", "", "", "out",
       "status of the last clearing (optimal, not_converged, infeasible, ...)"),
    _A("market", "MarketOperator", "leader_cost", "cost units", "", "out",
       "leader's cost of the last clearing over its horizon"),
    _A("market", "MarketOperator", "follower_cost", "cost units", "", "out",
       "follower's cost of the last clearing over its horizon"),
    _A("market", "MarketOperator", "solve_time[s]", "s", "", "out",
       "wall time of the last clearing"),
    _A("market", "MarketOperator", "iterations", "", "", "out",
       "LDD-ADMM iterations of the last clearing (0 for exact)"),
    _A("market", "MarketOperator", "dlmp[$/MWh]", "cost units/MWh", "", "out",
       "DLMP per MV bus in the step (dict by bus)"),
    _A("market", "MarketOperator", "P_gen[MW]", "MW", "generator positive", "out",
       "dispatch of the conventional units in the step (dict by unit)"),
    _A("market", "MarketOperator", "Q_gen[MVar]", "Mvar", "generator positive", "out",
       "reactive dispatch of the conventional units (dict by unit)"),
    _A("market", "MarketOperator", "P_pv_plant[MW]", "MW", "generator positive", "out",
       "dispatch of the utility PV plants (dict by plant)"),
    _A("market", "MarketOperator", "P_sub[MW]", "MW", "import positive", "out",
       "scheduled import from the upstream grid in the step"),
    _A("market", "Port", "schedule", "MW", "import positive", "out",
       "horizon: this community's exchange schedule (only in a step that cleared)"),
    _A("market", "Port", "price[$/MWh]", "cost units/MWh", "", "out",
       "this community's settlement price in the step"),
    _A("market", "Port", "P_scheduled[MW]", "MW", "import positive", "out",
       "this community's scheduled exchange in the step"),
    _A("market", "Port", "admm", "", "", "out",
       "LDD-ADMM as co-simulation: request to this community (same-time loop)"),
    _A("market", "Port", "admm_reply", "", "", "in",
       "LDD-ADMM as co-simulation: this community's answer (weak connection)"),
    _A("market", "Port", "E_batteries[MWh]", "MWh", "", "in",
       "the community's measured battery energy (time-shifted: end of the previous step)"),
    _A("market", "Port", "shiftable_done", "periods", "", "in",
       "the community's measured shiftable-load progress (time-shifted)"),
    _A("market", "Port", "E_batteries_planned[MWh]", "MWh", "", "in",
       "the community's planned battery energy at the end of its schedule (time-shifted; "
       "used by a day-ahead gate)"),
    # -- MV grid simulator ------------------------------------------------------------------
    _A("grid", "Grid", "P_gen[MW]", "MW", "generator positive", "in",
       "conventional units' active set-points (dict by unit)"),
    _A("grid", "Grid", "Q_gen[MVar]", "Mvar", "generator positive", "in",
       "conventional units' reactive set-points (dict by unit)"),
    _A("grid", "Grid", "P_pv_plant[MW]", "MW", "generator positive", "in",
       "utility PV plants' set-points (dict by plant)"),
    _A("grid", "Grid", "converged", "", "", "out", "the AC power flow converged"),
    _A("grid", "Grid", "vm_min[pu]", "pu", "", "out", "lowest voltage, MV and LV"),
    _A("grid", "Grid", "vm_max[pu]", "pu", "", "out", "highest voltage, MV and LV"),
    _A("grid", "Grid", "loading_max[%]", "%", "", "out",
       "highest line or transformer loading"),
    _A("grid", "Grid", "P_loss[MW]", "MW", "", "out", "active losses, MV and LV"),
    _A("grid", "Grid", "P_sub[MW]", "MW", "import positive", "out",
       "active import from the upstream grid (AC)"),
    _A("grid", "Grid", "Q_sub[MVar]", "Mvar", "import positive", "out",
       "reactive import from the upstream grid (AC)"),
    _A("grid", "Grid", "vm_violations", "buses", "", "out",
       "buses outside their voltage band"),
    _A("grid", "Grid", "loading_violations", "branches", "", "out",
       "lines and transformers above 100 %"),
    _A("grid", "Grid", "ldf_error_mv[pu]", "pu", "", "out",
       "largest |Vm AC − Vm LinDistFlow| on the MV network at the step's injections"),
    _A("grid", "Grid", "ldf_error_lv[pu]", "pu", "", "out",
       "the same on the LV feeders, each from its measured root voltage"),
    *(_A("grid", "Grid", f"vm_{level}_{how}{suffix}[pu]", "pu", "", "out",
         f"{'lowest' if how == 'min' else 'highest'} {level.upper()} voltage"
         + (", LinDistFlow at the step's injections" if suffix else ", AC"))
      for suffix in ("", "_ldf") for level in ("mv", "lv") for how in ("min", "max")),
    _A("grid", "Grid", "pf_time[s]", "s", "", "out", "wall time of the power flow"),
    _A("grid", "Feeder", "P_lv[MW]", "MW", "consumer positive", "in",
       "the community's net withdrawal per LV bus (dict by LV bus)"),
    _A("grid", "Feeder", "Q_lv[MVar]", "Mvar", "consumer positive", "in",
       "the community's reactive withdrawal per LV bus (dict by LV bus)"),
    _A("grid", "Feeder", "P[MW]", "MW", "import positive", "out",
       "AC exchange at the transformer's MV terminal (LV losses included)"),
    _A("grid", "Feeder", "Q[MVar]", "Mvar", "import positive", "out",
       "AC reactive exchange at the transformer's MV terminal"),
    _A("grid", "Feeder", "vm_min[pu]", "pu", "", "out", "lowest LV voltage of the feeder"),
    _A("grid", "Feeder", "vm_max[pu]", "pu", "", "out", "highest LV voltage of the feeder"),
    _A("grid", "Feeder", "loading[%]", "%", "", "out", "transformer loading"),
    _A("grid", "Bus", "Vm[pu]", "pu", "", "out", "voltage magnitude of an MV bus"),
)

#: Model parameters (``create`` keywords) per simulator and model.
MODEL_PARAMS: dict[tuple[str, str], list[str]] = {
    ("community", "Community"): ["name"],
    ("market", "MarketOperator"): [],
    ("grid", "Grid"): [],
}

#: mosaik simulator type per simulator: the communities and the market step every period and
#: also when an LDD-ADMM request or answer arrives (same-time loops).
SIMULATOR_TYPE = {"community": "hybrid", "market": "hybrid", "grid": "time-based"}
#: Inputs that make a hybrid simulator step at once, and outputs that are events.
TRIGGERS = {("community", "Community"): ["admm", "schedule"],
            ("market", "Port"): ["admm_reply"]}
EVENTS = {("community", "Community"): ["admm_reply"], ("market", "Port"): ["admm", "schedule"]}


def meta(simulator: str) -> dict:
    """mosaik ``meta`` of one simulator, built from :data:`ATTRIBUTES`."""
    models: dict[str, dict] = {}
    for a in ATTRIBUTES:
        if a.simulator != simulator:
            continue
        m = models.setdefault(a.model, {
            "public": (simulator, a.model) in MODEL_PARAMS,
            "params": MODEL_PARAMS.get((simulator, a.model), []),
            "attrs": []})
        if a.name not in m["attrs"]:
            m["attrs"].append(a.name)
    for (sim, model), names in TRIGGERS.items():
        if sim == simulator:
            models[model]["trigger"] = list(names)
    for (sim, model), names in EVENTS.items():
        if sim == simulator:
            models[model]["non-persistent"] = list(names)
    return {"api_version": "3.0", "type": SIMULATOR_TYPE[simulator], "models": models}


def attributes(simulator: str, model: str, direction: str) -> list[str]:
    """Attribute names of one model that are inputs (``in``) or outputs (``out``)."""
    return [a.name for a in ATTRIBUTES if a.simulator == simulator and a.model == model
            and direction in a.direction.split("/")]


def markdown_table() -> str:
    """The README's attribute table."""
    lines = ["| simulator | model | attribute | unit | sign | in/out | meaning |",
             "|---|---|---|---|---|---|---|"]
    for a in ATTRIBUTES:
        lines.append(f"| {a.simulator} | {a.model} | `{a.name}` | {a.unit} | {a.sign} | "
                     f"{a.direction} | {a.description} |")
    return "\n".join(lines)
