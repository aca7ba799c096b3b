"""The whole system in a user's ``mosaik.World``: communities, market operator, MV grid.

:func:`sim_config` says how to start each simulator (``python`` in-process, ``cmd`` as a
separate process, or ``connect`` to running ones); :func:`add_system` starts them in a World,
creates the entities, connects them and returns them (:class:`System`) so a user can connect
further components; :func:`run_world` runs the World and fails loudly when a simulator in
another process failed (mosaik itself only logs that).

Data flow of a step (no same-time loop): the market operator clears when its clearing rule
says (daily at the day's start by default, at a day-ahead gate, or every hour over a
look-ahead), from the state the communities measured at the end of the previous step
(time-shifted: battery energy, shiftable-load progress, planned end-of-schedule energy), and
sends each community its schedule; the communities operate the step; the MV grid runs the AC
power flow on their realised withdrawals and the operator's dispatch.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import pandas as pd

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.data.case import Case
from mosaik_bilevel.errors import CaseError, OptionsError
from mosaik_bilevel.methods.registry import method_name
from mosaik_bilevel.operation.market_operator import ClearingRule
from mosaik_bilevel.results.files import CLEARINGS_FOLDER, SIM_IDS
from mosaik_bilevel.simulators.attributes import attributes

from .supervision import RECORDER_SID, SimulationError, run_world

__all__ = ["QUIET", "SIMULATORS", "SimulationError", "System", "add_system", "run_world",
           "sim_config"]

#: Names of our simulators in a World's sim_config.
SIMULATORS = {
    "community": ("BilevelCommunity", "mosaik_bilevel.simulators.community",
                  "CommunitySimulator"),
    "market": ("BilevelMarket", "mosaik_bilevel.simulators.market", "MarketSimulator"),
    "grid": ("BilevelGrid", "mosaik_bilevel.simulators.grid", "GridSimulator"),
}
RECORDER = ("BilevelRecorder", "mosaik_bilevel.simulators.recorder", "RecorderSimulator")
#: Seconds a simulator in its own process may take to connect and answer ``init`` (mosaik's
#: default, 10 s, was exceeded on a 2-core machine with both cores busy: Python, pandapower
#: and the case load first).
START_TIMEOUT_S = 120
#: mosaik options for library use: no banner, no logging set-up, the start timeout above.
QUIET = {"skip_greetings": True, "configure_logging": False,
         "mosaik_config": {"start_timeout": START_TIMEOUT_S}}


def sim_config(mode: str = "python", addresses: dict[str, str] | None = None) -> dict:
    """sim_config entries for our simulators (and the recorder, always in-process).

    Parameters
    ----------
    mode
        ``python`` (in-process), ``cmd`` (each a separate process started by mosaik) or
        ``connect`` (to simulators already running at ``addresses[kind]``, kind one of
        ``community``, ``market``, ``grid``).
    """
    config = {RECORDER[0]: {"python": f"{RECORDER[1]}:{RECORDER[2]}"}}
    for kind, (name, module, cls) in SIMULATORS.items():
        if mode == "python":
            config[name] = {"python": f"{module}:{cls}"}
        elif mode == "cmd":
            config[name] = {"cmd": f'"{sys.executable}" -m {module} %(addr)s', "posix": True}
        elif mode == "connect":
            if not addresses or kind not in addresses:
                raise ValueError(f"mode 'connect' needs an address for the {kind} simulator")
            config[name] = {"connect": addresses[kind]}
        else:
            raise ValueError(f"unknown mode {mode!r}: python, cmd or connect")
    return config


@dataclass
class System:
    """The entities :func:`add_system` created."""

    communities: dict
    market: object
    ports: dict
    grid: object
    feeders: dict
    buses: dict
    recorder: object | None = None
    until: int = 0
    step: int = 0
    case_name: str = ""
    vm_bands: dict | None = None  # the case's voltage band per level (for reports)


def add_system(world, case: str = "paper", case_options: dict | None = None, *,
               days: int = 1, method: str = "exact", pricing: str = "dlmp",
               solver: dict | None = None, admm: dict | None = None,
               load_sigma: float = 0.1, pv_sigma: float = 0.15, seed: int = 0,
               track_exchange: bool = True, out: str | None = None,
               time_resolution: float = 1.0, grid: bool = True,
               clearing: dict | None = None, start: str | None = None,
               initial_state: dict | None = None, ac_correction: int = 0) -> System:
    """Start, create and connect the whole system in ``world``.

    Parameters
    ----------
    world
        A ``mosaik.World`` whose ``sim_config`` has our simulators (see :func:`sim_config`;
        missing entries are added in-process).
    case, case_options
        A built-in case name or case folder, and the built-in case's options (for ``paper``:
        ``day``, ``days``, ``step_minutes``). Every simulator loads it itself.
    days
        Horizons to simulate, one clearing each (days, for a case with a 24 h horizon); sets
        :attr:`System.until`.
    method, pricing, solver, admm
        How the market operator clears (``solver``: ``mip_rel_gap``, ``time_limit_s``,
        ``threads``; ``admm``: ``backend``, ``workers``, ``max_iterations``, ..., or
        ``in_loop: True`` to run the iterations as same-time-loop passes in which the
        community simulators solve their own subproblems; create the World with
        ``max_loop_iterations`` above the iterations plus three, mosaik's default is 100).
    load_sigma, pv_sigma, seed, track_exchange
        How the communities meet reality.
    out
        Folder for the recorder's tables and the clearings (None: nothing recorded).
    grid
        Start our MV grid simulator (False: connect the communities' ``P[MW]``/``Q[MVar]``
        and the operator's dispatch to another grid component yourself).
    clearing
        When the operator clears: ``{"interval_h", "lookahead_h", "lead_h"}``
        (:class:`~mosaik_bilevel.operation.market_operator.ClearingRule`; default daily at the
        day's start). E.g. ``{"interval_h": 1}``: every hour, the next 24 h; ``{"lead_h": 12}``:
        each day at 12:00 the day before.
    start, initial_state
        Where mosaik time 0 lies (a period of the case, ISO; default its first) and the
        measured state at the end of the period before it: ``{"E_batteries[MWh]",
        "E_batteries_planned[MWh]", "shiftable_done": {community: {key: value}},
        "P_gen[MW]": {"market": {unit: MW}}}`` (a resumed run's, from
        :mod:`mosaik_bilevel.results.run_folder`).
    """
    if ac_correction and method_name(method) != "exact":
        raise OptionsError("ac_correction", "goes with the exact method in a simulation")
    for name, entry in sim_config("python").items():
        world.sim_config.setdefault(name, entry)
    case_options = dict(case_options or {})
    clearing = dict(clearing or {})
    the_case = _checked_case(case, case_options, days, clearing, start)
    state = dict(initial_state or {})
    common = {"case": str(case), "case_options": case_options}
    if start is not None:
        common["start"] = str(start)
    step = round(the_case.step_h * 3600.0 / time_resolution)
    in_loop = bool((admm or {}).get("in_loop"))
    # LDD-ADMM as same-time loops needs the two simulators in one mosaik group
    with world.group() if in_loop else contextlib.nullcontext():
        csim = world.start(SIMULATORS["community"][0], sim_id=SIM_IDS["community"], **common,
                           load_sigma=load_sigma, pv_sigma=pv_sigma, seed=seed,
                           track_exchange=track_exchange,
                           initial_energy_mwh=state.get("E_batteries[MWh]"))
        msim = world.start(SIMULATORS["market"][0], sim_id=SIM_IDS["market"], **common,
                           method=method, pricing=pricing, admm=admm, **(solver or {}),
                           out=None if out is None else f"{out}/{CLEARINGS_FOLDER}",
                           clearing=clearing or None, ac_correction=int(ac_correction),
                           units_output_before_mw=next(iter(state.get("P_gen[MW]", {})
                                                            .values()), None))
    communities = {c.name: csim.Community(name=c.name) for c in the_case.communities}
    market = msim.MarketOperator()
    system = System(communities=communities, market=market,
                    ports={e.eid[len("port-"):]: e for e in market.children},
                    grid=None, feeders={}, buses={},
                    until=round(days * the_case.horizon_h * 3600 / time_resolution),
                    step=step, case_name=the_case.name, vm_bands=the_case.voltage_bands())
    if grid:
        _start_grid(world, system, common)
    _connect(world, system, the_case, in_loop, state)
    if out is not None:
        _add_recorder(world, system, str(out), start or the_case.timeline[0].isoformat(),
                      flush_every=round(the_case.horizon_h * 3600 / time_resolution))
    return system


def _checked_case(case, case_options: dict, days: int, clearing: dict,
                  start: str | None) -> Case:
    """The case, with the run's length and clearing rule checked before anything starts."""
    the_case = load_case(case, **case_options)
    source = the_case.source or the_case.name
    first = 0
    if start is not None:
        first = the_case.timeline.get_indexer([_timestamp(start)])[0]
        if first < 0 or first % the_case.horizon_periods:
            raise CaseError(source, "start", f"{start} is not the start of one of the case's "
                            f"horizons")
    available = len(the_case.days) - first // the_case.horizon_periods
    if not 1 <= days <= available:
        raise CaseError(source, "days", f"{days} horizons asked, the case has {available}"
                        + ("" if start is None else f" from {start}"))
    try:
        ClearingRule(**clearing).periods(the_case)
    except (TypeError, ValueError) as err:
        raise CaseError(the_case.source or the_case.name, "clearing", str(err)) from None
    return the_case


def _start_grid(world, system: System, common: dict) -> None:
    """Our MV grid simulator and its entities (the grid, a feeder per community, MV buses)."""
    gsim = world.start(SIMULATORS["grid"][0], sim_id=SIM_IDS["grid"], **common)
    system.grid = gsim.Grid()
    system.feeders = {e.eid[len("feeder-"):]: e for e in system.grid.children
                      if e.type == "Feeder"}
    system.buses = {int(e.eid[len("bus-"):]): e for e in system.grid.children
                    if e.type == "Bus"}


def _timestamp(value):
    try:
        return pd.Timestamp(value)
    except (TypeError, ValueError):
        return pd.NaT


def _connect(world, system: System, the_case: Case, in_loop: bool, state: dict) -> None:
    """Schedules to the communities, their measured state back (time-shifted), their
    withdrawals and the operator's dispatch to the grid."""
    for c in the_case.communities:
        community, port = system.communities[c.name], system.ports[c.name]
        if in_loop:  # each LDD-ADMM iteration a same-time pass: operator ↔ community
            world.connect(port, community, "schedule", "admm")
            world.connect(community, port, "admm_reply", weak=True)
        else:
            world.connect(port, community, "schedule")
        initial = {str(k): float(v) for k, v in c.batteries["e_init_mwh"].items()}
        measured = {"E_batteries[MWh]": initial, "E_batteries_planned[MWh]": initial,
                    "shiftable_done": {}}
        for attr in measured:  # a resumed run's state at the end of the period before
            if c.name in state.get(attr, {}):
                measured[attr] = state[attr][c.name]
        world.connect(community, port, "E_batteries[MWh]", "E_batteries_planned[MWh]",
                      "shiftable_done", time_shifted=True, initial_data=measured)
        if system.grid is not None:
            world.connect(community, system.feeders[c.name], "P_lv[MW]", "Q_lv[MVar]")
    if system.grid is not None:
        world.connect(system.market, system.grid, "P_gen[MW]", "Q_gen[MVar]",
                      "P_pv_plant[MW]")


def _add_recorder(world, system: System, out: str, start: str, flush_every: int) -> None:
    """The recorder, with what it takes of every entity (:func:`_record`)."""
    rsim = world.start(RECORDER[0], sim_id=RECORDER_SID, out=out, start=start,
                       step=system.step, flush_every=flush_every)
    recorder = system.recorder = rsim.Recorder()
    for name, community in system.communities.items():
        world.connect(community, recorder, *_record(attributes(
            "community", "Community", "out")))
        world.connect(system.ports[name], recorder, "price[$/MWh]")
        if system.grid is not None:
            world.connect(system.feeders[name], recorder, "P[MW]", "Q[MVar]", "vm_min[pu]",
                          "vm_max[pu]", "loading[%]")
    world.connect(system.market, recorder, *_record(attributes("market", "MarketOperator",
                                                               "out")))
    if system.grid is not None:
        world.connect(system.grid, recorder, *_record(attributes("grid", "Grid", "out")))
    for bus in system.buses.values():
        world.connect(bus, recorder, "Vm[pu]")


def _record(attrs: list[str]) -> list[str]:
    """What the recorder takes: everything but horizons and per-LV-bus withdrawals."""
    return [a for a in attrs
            if a not in ("forecast_P[MW]", "P_lv[MW]", "Q_lv[MVar]", "admm_reply")]
