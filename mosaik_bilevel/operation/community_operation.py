"""A community in operation: its own dispatch of a cleared exchange, and each step's reality.

The market operator sends a community only its **exchange schedule** (MW per period, import
positive). :func:`local_dispatch` turns it into the community's device schedule privately:
the community's own model (model.md §4) with the exchange held at the schedule, minimising
its own cost (a schedule that cannot be met exactly is met as closely as possible, the
shortfall reported). The cleared solution is one such dispatch, so nothing is lost by not
sending device schedules, and nothing private crosses the boundary.

:class:`CommunityOperation` then meets reality step by step: realised member loads and PV
availability differ from the forecast (the case's time series) by a seeded relative error
(:class:`ForecastError`) or come from outside (e.g. a CSV); shiftable loads run as scheduled;
rooftop PV produces what was scheduled or what the sun allows, whichever is less; batteries
follow their set-points, optionally correcting the step's imbalance (``track_exchange``), and
always stay within their power and energy limits. It keeps the measured state that the next
clearing starts from: battery energy and shiftable-load progress.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.case import Community, CommunitySettings
from ..errors import OptionsError
from ..model.linear import LinearModel
from ..model.lv_community import add_community
from ..solvers.highs import HighsSolver, SolverOptions
from ..solvers.lazy import LazyBinaries, solve_lazily

#: Cost per MWh of missing the exchange schedule in the local dispatch (far above own costs).
SCHEDULE_PENALTY_PER_MWH = 1e4


@dataclass(frozen=True)
class ForecastError:
    """Seeded relative errors of realised load and PV against their forecasts.

    Realised member load is ``forecast · max(0, 1 + load_sigma · ε)`` (reactive load scaled
    alike) and realised PV availability ``clip(forecast · max(0, 1 + pv_sigma · ε), 0, 1)``,
    ε standard normal, drawn per member or PV unit and step from a generator seeded by
    ``(seed, community name, step)``: the same in any process and any run.
    """

    load_sigma: float = 0.1
    pv_sigma: float = 0.15
    seed: int = 0

    def __post_init__(self):
        """Finite relative errors >= 0 and a seed >= 0 (NaN would drop every load)."""
        for name in ("load_sigma", "pv_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise OptionsError(name, f"must be a finite number >= 0, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise OptionsError("seed", f"must be a whole number >= 0, got {self.seed!r}")

    def factors(self, community: str, step: int, n_members: int, n_pv: int):
        """(load factors per member, PV factors per unit) of one step."""
        rng = np.random.default_rng([self.seed, zlib.crc32(community.encode()), int(step)])
        load = np.maximum(0.0, 1.0 + self.load_sigma * rng.standard_normal(n_members))
        pv = np.maximum(0.0, 1.0 + self.pv_sigma * rng.standard_normal(n_pv))
        return load, pv


@dataclass
class DeviceSchedule:
    """A community's own plan for one horizon (private to the community)."""

    periods: pd.DatetimeIndex
    p_ex_mw: np.ndarray
    p_ch_mw: np.ndarray
    p_dis_mw: np.ndarray
    p_pv_mw: np.ndarray
    on: np.ndarray
    status: str
    own_cost: float = math.nan
    max_shortfall_mw: float = 0.0

    @property
    def p_battery_mw(self) -> np.ndarray:
        """Net battery power per battery and period (charging positive)."""
        return self.p_ch_mw - self.p_dis_mw


def local_dispatch(community: Community, settings: CommunitySettings,
                   periods: pd.DatetimeIndex, p_ex_mw, *,
                   initial_energy_mwh: pd.Series | None = None,
                   shiftable_done: pd.Series | None = None,
                   options: SolverOptions | None = None,
                   vm_mv_pu=None) -> DeviceSchedule:
    """The community's device schedule that meets the exchange ``p_ex_mw`` at least own cost.

    ``vm_mv_pu``: a fixed-tap community's MV bus voltage per period as the clearing planned
    it (its LV voltages follow it); without it the LV root follows the MV bus wherever it
    needs to within :data:`~mosaik_bilevel.model.lv_community.W_MV_RANGE`.

    The exchange may deviate from the schedule at :data:`SCHEDULE_PENALTY_PER_MWH`; the
    largest deviation is ``max_shortfall_mw`` (zero for a schedule the community proposed or
    the market cleared from its model and state).
    """
    c = community
    target = np.asarray(p_ex_mw, dtype=float)
    if target.shape != (len(periods),):
        raise ValueError(f"community {c.name}: the schedule has {target.size} values for "
                         f"{len(periods)} periods")
    model = LinearModel(f"local dispatch {c.name}")
    blocks = add_community(model, settings, c, periods, name=f"c[{c.name}]",
                           initial_energy_mwh=initial_energy_mwh, shiftable_done=shiftable_done)
    if blocks.w_mv is not None and vm_mv_pu is not None:
        w = np.asarray(vm_mv_pu, dtype=float) ** 2
        if np.isfinite(w).all():
            model.set_bounds(blocks.w_mv, w, w)
    up = model.add_variables("shortfall_up_mw", (periods,), 0.0, np.inf)
    down = model.add_variables("shortfall_down_mw", (periods,), 0.0, np.inf)
    track = model.add_constraints("track_schedule", (periods,), "==", target)
    model.add_terms(track.ids, blocks.p_ex.ids, 1.0)
    model.add_terms(track.ids, up.ids, -1.0)
    model.add_terms(track.ids, down.ids, 1.0)
    penalty = SCHEDULE_PENALTY_PER_MWH * settings.step_h
    model.add_objective(np.concatenate([up.ids, down.ids]), np.full(2 * len(periods), penalty))
    highs = HighsSolver(options or SolverOptions())
    highs.load(model)
    lazy = LazyBinaries.of([blocks], None)
    outcome = solve_lazily(highs, lazy, model.arrays.integer, polish=True)
    res, x = outcome.result, outcome.x
    nb, ns, npv = len(c.batteries), len(c.shiftable), len(c.pv)
    nt = len(periods)
    if x is None:
        zero = np.zeros  # no plan: batteries idle, PV uncurtailed, shiftable loads off
        return DeviceSchedule(periods, np.full(nt, np.nan), zero((nb, nt)), zero((nb, nt)),
                              c.pv_available_mw.loc[periods].to_numpy().T.reshape(npv, nt),
                              zero((ns, nt)), status=res.status.value,
                              max_shortfall_mw=math.inf)

    def values(block, rows):
        return x[block.ids] if block is not None else np.zeros((rows, nt))

    shortfall = np.abs(x[up.ids] - x[down.ids])
    return DeviceSchedule(
        periods=periods, p_ex_mw=x[blocks.p_ex.ids], p_ch_mw=values(blocks.p_ch, nb),
        p_dis_mw=values(blocks.p_dis, nb), p_pv_mw=values(blocks.p_pv, npv),
        on=np.round(values(blocks.on, ns)), status=res.status.value,
        own_cost=blocks.own_cost(x), max_shortfall_mw=float(shortfall.max(initial=0.0)))


@dataclass(frozen=True)
class _Reality:
    """One step's realised member load (P, Q) and PV availability, and their forecasts."""

    load: np.ndarray
    load_q: np.ndarray
    pv: np.ndarray
    load_forecast: np.ndarray
    pv_forecast: np.ndarray


@dataclass
class StepOutcome:
    """What one community did in one step (realised, with the plan beside it)."""

    time: pd.Timestamp
    p_ex_mw: float
    q_ex_mvar: float
    p_ex_scheduled_mw: float
    p_load_mw: float
    p_load_forecast_mw: float
    p_pv_available_mw: float
    p_pv_forecast_mw: float
    p_pv_mw: float
    p_battery_mw: float
    p_shiftable_mw: float
    e_mwh: pd.Series
    shiftable_done: pd.Series
    lv_p_mw: pd.Series
    lv_q_mvar: pd.Series
    schedule_status: str
    battery_limited: bool = False

    @property
    def imbalance_mw(self) -> float:
        """Realised minus scheduled exchange."""
        return self.p_ex_mw - self.p_ex_scheduled_mw


class CommunityOperation:
    """One community's real-world state and operation (see the module docstring).

    Parameters
    ----------
    community, settings
        The community's data (its forecasts) and the case's public settings.
    error
        How reality differs from the forecast.
    track_exchange
        Batteries absorb the step's imbalance within their limits (else they follow their
        set-points, clipped to their limits).
    """

    def __init__(self, community: Community, settings: CommunitySettings, *,
                 error: ForecastError | None = None, track_exchange: bool = True,
                 options: SolverOptions | None = None):
        self.community = community
        self.settings = settings
        self.error = error or ForecastError()
        self.track_exchange = track_exchange
        self.options = options or SolverOptions()
        b = community.batteries
        self.e_mwh = b["e_init_mwh"].astype(float).copy()
        self.shiftable_done = pd.Series(0, index=community.shiftable.index, dtype=int)
        self.schedule: DeviceSchedule | None = None
        self._timeline = community.member_p_mw.index
        self._next: int | None = None  # timeline position of the next period to operate
        self._pending: dict[int, tuple] = {}  # schedules (and MV voltages) before their start

    def set_energy(self, energy_mwh: dict) -> None:
        """Set the batteries' measured energy (``{battery: MWh}``; e.g. a resumed run's)."""
        given = pd.Series({str(k): float(v) for k, v in energy_mwh.items()}, dtype=float)
        names = self.e_mwh.index.astype(str)
        unknown = sorted(set(given.index) - set(names))
        if unknown:
            raise ValueError(f"community {self.community.name}: no battery {unknown}")
        self.e_mwh = pd.Series([given.get(n, e) for n, e in zip(names, self.e_mwh, strict=True)],
                               index=self.e_mwh.index, dtype=float)

    # -- planning ---------------------------------------------------------------------------
    def accept(self, start, p_ex_mw, vm_mv_pu=None) -> DeviceSchedule | None:
        """Take an exchange schedule from ``start``; dispatch the devices to meet it.

        The devices are dispatched from the state measured when the schedule begins: at once
        when it begins with the next period to operate, else at its first period (a
        day-ahead schedule received before midnight). Returns the device schedule, or None
        while it waits. ``vm_mv_pu``: the planned MV voltage at its bus (fixed-tap
        transformer; see :func:`local_dispatch`).
        """
        first = self._timeline.get_indexer([pd.Timestamp(start)])[0]
        if first < 0:
            raise ValueError(f"community {self.community.name}: schedule start {start} is not "
                             f"a period of the case")
        values = np.asarray(p_ex_mw, dtype=float)
        if first + len(values) > len(self._timeline):
            raise ValueError(f"community {self.community.name}: the schedule from {start} "
                             f"runs past the case's last period")
        if self._next is not None and first > self._next:
            self._pending[first] = (values, vm_mv_pu)
            return None
        return self._dispatch(first, values, vm_mv_pu)

    def _dispatch(self, first: int, values: np.ndarray, vm_mv_pu=None) -> DeviceSchedule:
        periods = self._timeline[first:first + len(values)]
        self._reset_cycle(first)
        self.schedule = local_dispatch(self.community, self.settings, periods, values,
                                       initial_energy_mwh=self.e_mwh.copy(),
                                       shiftable_done=self.shiftable_done.copy(),
                                       options=self.options, vm_mv_pu=vm_mv_pu)
        return self.schedule

    def _reset_cycle(self, position: int) -> None:
        """Shiftable-load progress counts per cycle (``horizon_h``): reset at its start."""
        if position % self.settings.horizon_periods == 0:
            self.shiftable_done[:] = 0

    def planned_energy_mwh(self) -> pd.Series:
        """Battery energy at the end of the current schedule if the rest goes to plan.

        The measured energy plus the plan's change over its periods not yet operated,
        within the energy limits: what a day-ahead clearing starts the next day from.
        """
        sched, bat = self.schedule, self.community.batteries
        e = self.e_mwh.copy()
        if sched is None or not len(bat) or self._next is None:
            return e
        k = max(self._next - self._timeline.get_loc(sched.periods[0]), 0)
        if k >= len(sched.periods) or not np.isfinite(sched.p_ex_mw).all():
            return e
        dt = self.settings.step_h
        change = dt * (bat[["eta_ch"]].to_numpy() * sched.p_ch_mw[:, k:]
                       - sched.p_dis_mw[:, k:] / bat[["eta_dis"]].to_numpy()).sum(axis=1)
        return (e + change).clip(bat["e_min_mwh"], bat["e_max_mwh"])

    # -- one step ---------------------------------------------------------------------------
    def step(self, time, *, step_index: int, load_p_mw: float | None = None,
             pv_available_mw: float | None = None) -> StepOutcome:
        """Operate the period starting at ``time``.

        ``load_p_mw`` / ``pv_available_mw``, when given, are the realised community totals
        (e.g. from a CSV); the members and PV units share them as in the forecast.
        """
        c = self.community
        time = pd.Timestamp(time)
        position = self._timeline.get_loc(time)
        if position in self._pending:  # a schedule accepted before its start begins now
            self._dispatch(position, *self._pending.pop(position))
        self._reset_cycle(position)
        self._next = position + 1
        real = self._reality(time, step_index, load_p_mw, pv_available_mw)
        status, b_set, pv_set, on, p_sched = self._set_points(time, real)
        p_pv = np.minimum(pv_set, real.pv)
        p_shift = on * c.shiftable["p_mw"].to_numpy(dtype=float)
        b = b_set.copy()
        if self.track_exchange and len(c.batteries):
            imbalance = (real.load.sum() + p_shift.sum() + b.sum() - p_pv.sum()) - p_sched
            weight = (c.batteries["p_ch_max_mw"] + c.batteries["p_dis_max_mw"]).to_numpy()
            b = b - imbalance * weight / weight.sum()
        b, limited = self._battery_limits(b)
        self._advance_state(b, on)
        bat = c.batteries
        lv_p = (_by_bus(c.members["bus"], real.load) .add(_by_bus(c.shiftable["bus"], p_shift),
                                                           fill_value=0.0)
                .add(_by_bus(bat["bus"], b), fill_value=0.0)
                .add(_by_bus(c.pv["bus"], -p_pv), fill_value=0.0))
        lv_q = _by_bus(c.members["bus"], real.load_q)
        return StepOutcome(
            time=time, p_ex_mw=float(lv_p.sum()), q_ex_mvar=float(lv_q.sum()),
            p_ex_scheduled_mw=p_sched, p_load_mw=float(real.load.sum()),
            p_load_forecast_mw=float(real.load_forecast.sum()),
            p_pv_available_mw=float(real.pv.sum()), p_pv_forecast_mw=float(real.pv_forecast.sum()),
            p_pv_mw=float(p_pv.sum()), p_battery_mw=float(b.sum()),
            p_shiftable_mw=float(p_shift.sum()), e_mwh=self.e_mwh.copy(),
            shiftable_done=self.shiftable_done.copy(), lv_p_mw=lv_p, lv_q_mvar=lv_q,
            schedule_status=status, battery_limited=limited)

    def _reality(self, time: pd.Timestamp, step_index: int, load_p_mw: float | None,
                 pv_available_mw: float | None) -> _Reality:
        """The step's realised load and PV: the forecast with its error, or given totals."""
        c = self.community
        f_load = c.member_p_mw.loc[time].to_numpy(dtype=float)
        f_load_q = c.member_q_mvar.loc[time].to_numpy(dtype=float)
        f_pv = c.pv_available_mw.loc[time].to_numpy(dtype=float) if len(c.pv) else np.zeros(0)
        load_factor, pv_factor = self.error.factors(c.name, step_index, len(f_load), len(f_pv))
        real_load = f_load * load_factor
        real_q = f_load_q * load_factor
        peak = c.pv["p_peak_mw"].to_numpy(dtype=float)
        real_pv = np.minimum(f_pv * pv_factor, peak)
        if load_p_mw is not None:
            real_load, real_q = _share(load_p_mw, f_load, f_load_q)
        if pv_available_mw is not None:
            real_pv = np.minimum(_share(pv_available_mw, f_pv, f_pv)[0], peak)
        return _Reality(real_load, real_q, real_pv, f_load, f_pv)

    def _set_points(self, time: pd.Timestamp, real: _Reality):
        """(status, battery, PV and shiftable set-points, scheduled exchange) of the step."""
        c = self.community
        plan = self._plan_at(time)
        if plan is None or not np.isfinite(plan[1].p_ex_mw[plan[0]]):
            # no plan (or the community could not dispatch its schedule): run idle
            status = "no_schedule" if plan is None else plan[1].status
            return (status, np.zeros(len(c.batteries)), real.pv_forecast,
                    np.zeros(len(c.shiftable)),
                    float(real.load_forecast.sum() - real.pv_forecast.sum()))
        k, sched = plan
        return (sched.status, sched.p_battery_mw[:, k], sched.p_pv_mw[:, k], sched.on[:, k],
                float(sched.p_ex_mw[k]))

    def _advance_state(self, b: np.ndarray, on: np.ndarray) -> None:
        """Battery energy and shiftable-load progress after the step (the measured state)."""
        bat, dt = self.community.batteries, self.settings.step_h
        p_ch, p_dis = np.maximum(b, 0.0), np.maximum(-b, 0.0)
        self.e_mwh = self.e_mwh + dt * (bat["eta_ch"].to_numpy() * p_ch
                                        - p_dis / bat["eta_dis"].to_numpy())
        self.shiftable_done = self.shiftable_done + (on > 0.5).astype(int)

    def _plan_at(self, time: pd.Timestamp):
        sched = self.schedule
        if sched is None:
            return None
        k = sched.periods.get_indexer([time])[0]
        return None if k < 0 else (k, sched)

    def _battery_limits(self, b: np.ndarray) -> tuple[np.ndarray, bool]:
        """Clip net battery power to the power and energy limits of the step."""
        bat, dt = self.community.batteries, self.settings.step_h
        if not len(bat):
            return b, False
        e = self.e_mwh.to_numpy()
        hi = np.minimum(bat["p_ch_max_mw"].to_numpy(),
                        np.maximum(bat["e_max_mwh"].to_numpy() - e, 0.0)
                        / (bat["eta_ch"].to_numpy() * dt))
        lo = -np.minimum(bat["p_dis_max_mw"].to_numpy(),
                         np.maximum(e - bat["e_min_mwh"].to_numpy(), 0.0)
                         * bat["eta_dis"].to_numpy() / dt)
        clipped = np.clip(b, lo, hi)
        return clipped, bool(np.any(np.abs(clipped - b) > 1e-12))


def _share(total: float, forecast: np.ndarray, forecast_q: np.ndarray):
    """Split a realised total over elements in proportion to their forecast."""
    total = max(float(total), 0.0)
    s = forecast.sum()
    shares = forecast / s if s > 0 else np.full(forecast.size, 1.0 / max(forecast.size, 1))
    p = total * shares
    ratio = np.divide(p, forecast, out=np.ones_like(p), where=forecast > 0)
    return p, forecast_q * ratio


def _by_bus(buses: pd.Series, values: np.ndarray) -> pd.Series:
    if not len(buses):
        return pd.Series(dtype=float)
    return pd.Series(np.asarray(values, dtype=float), index=buses.to_numpy()).groupby(
        level=0).sum()
