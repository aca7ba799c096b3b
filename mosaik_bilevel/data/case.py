"""The case: networks, assets, communities and time series of one study.

A :class:`Case` holds the MV network (pandapower) with its substation, conventional units, PV
plants, fixed loads and prices, and the LV :class:`Community` objects, each with its own LV
network, members, rooftop PV, batteries and shiftable loads. Time series are pandas tables
indexed by a common naive-local ``time`` index at the case's step, with units in their names.
A case may span several days; a solve takes one horizon of it (:meth:`Case.periods`).

:meth:`Case.validate` checks every cross-field rule; element tables are checked against
:mod:`mosaik_bilevel.data.schema` when they are built or loaded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import CaseError
from .guard import MAX_MAGNITUDE, SAFE_NAME
from .network import VOLTAGE_MISMATCH, RadialNetwork, radial_network
from .schema import (
    BATTERIES,
    GENERATORS,
    MEMBERS,
    PV_PLANTS,
    ROOFTOP_PV,
    SHIFTABLE,
    empty_table,
    validate_table,
)
from .transformer import TRANSFORMER_MODELS, TransformerLink, transformer_link

PRICE_NAMES = ("upstream_per_mwh", "tariff_buy_per_mwh", "tariff_sell_per_mwh")
#: Bounds of a case's step (minutes) and horizon (hours): a minute to a day, at most a leap
#: year. The polygon approximating a thermal limit has at most :data:`MAX_POLYGON_SIDES` sides
#: (one constraint per side, branch and period; the default is 8).
MIN_STEP_MINUTES, MAX_STEP_MINUTES = 1.0, 1440.0
MAX_HORIZON_HOURS = 8784.0
MAX_POLYGON_SIDES = 64


@dataclass(frozen=True)
class Substation:
    """The upstream grid at the MV root: limits on its exchange and the voltage set-point."""

    p_import_max_mw: float = math.inf
    p_export_max_mw: float = math.inf
    s_max_mva: float = math.inf
    vm_set_pu: float = 1.0


@dataclass(frozen=True)
class CommunitySettings:
    """What a community needs of its case besides its own data; all of it public."""

    step_h: float
    horizon_h: float
    polygon_sides: int = 8
    battery_wear_per_mwh: float = 0.0
    curtailment_per_mwh: float = 0.0

    @property
    def horizon_periods(self) -> int:
        return round(self.horizon_h / self.step_h)

    def shiftable_window(self, row: pd.Series) -> np.ndarray:
        """Boolean mask over a horizon's periods: inside a shiftable load's window."""
        starts = np.arange(self.horizon_periods) * self.step_h
        return (starts >= row.window_start_h - 1e-9) & (
            starts + self.step_h <= row.window_end_h + 1e-9)


@dataclass
class Community:
    """One LV energy community (private data of the leader's member)."""

    name: str
    mv_bus: int
    net: object
    members: pd.DataFrame
    member_p_mw: pd.DataFrame
    member_q_mvar: pd.DataFrame
    pv: pd.DataFrame = field(default_factory=lambda: empty_table(ROOFTOP_PV))
    pv_availability_pu: pd.DataFrame | None = None
    batteries: pd.DataFrame = field(default_factory=lambda: empty_table(BATTERIES))
    shiftable: pd.DataFrame = field(default_factory=lambda: empty_table(SHIFTABLE))
    transformer_s_mva: float | None = None
    vm_set_pu: float = 1.0
    #: ``regulated`` (an on-load tap changer holds the LV root at ``vm_set_pu``) or ``fixed``
    #: (the tap stays at the data's ``tap_pos``): :mod:`mosaik_bilevel.data.transformer`
    transformer_model: str = "regulated"
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def where(self, table: str) -> str:
        """The file (or description) a table came from, for messages."""
        return self.files.get(table) or f"{self.source or f'community {self.name}'}: {table}"

    def __post_init__(self):
        self.members = validate_table(self.members, MEMBERS, self.where("members"))
        self.pv = validate_table(self.pv, ROOFTOP_PV, self.where("pv"))
        self.batteries = validate_table(self.batteries, BATTERIES, self.where("batteries"))
        self.shiftable = validate_table(self.shiftable, SHIFTABLE, self.where("shiftable"))
        self.batteries["e_end_mwh"] = self.batteries["e_end_mwh"].fillna(
            self.batteries["e_init_mwh"])
        if self.pv_availability_pu is None:
            self.pv_availability_pu = pd.DataFrame(index=self.member_p_mw.index,
                                                   columns=self.pv.index, dtype=float)

    @cached_property
    def transformer(self) -> pd.Series:
        """The single in-service transformer that connects the feeder to the MV grid."""
        tr = self.net.trafo[self.net.trafo.in_service]
        if len(tr) != 1:
            raise CaseError(self.source or self.name, "trafo",
                            f"an LV network needs exactly one in-service transformer, "
                            f"found {len(tr)}")
        return tr.iloc[0]

    @cached_property
    def lv_network(self) -> RadialNetwork:
        """The feeder below the transformer's LV terminal."""
        tr = self.transformer
        return radial_network(self.net, root=int(tr.lv_bus),
                              exclude=(("trafo", int(tr.name)),),
                              ignore_buses=(int(tr.hv_bus),),
                              source=self.files.get("network") or self.source
                              or f"community {self.name}: network")

    @cached_property
    def transformer_link(self) -> TransformerLink:
        """The transformer linearised (ratio, taps, series impedance on 1 MVA)."""
        tr = self.transformer
        vn = self.net.bus.vn_kv
        return transformer_link(tr, float(vn.at[int(tr.hv_bus)]), float(vn.at[int(tr.lv_bus)]),
                                self.where("network"))

    @property
    def s_max_mva(self) -> float:
        """Rating of the MV/LV transformer (S^tr)."""
        if self.transformer_s_mva is not None:
            return float(self.transformer_s_mva)
        return float(self.transformer.sn_mva * self.transformer.parallel)

    @property
    def pv_available_mw(self) -> pd.DataFrame:
        """Available rooftop PV power (time × unit)."""
        return self.pv_availability_pu * self.pv["p_peak_mw"]

    @property
    def q_exchange_mvar(self) -> pd.Series:
        """Reactive exchange at the MV bus: the members' reactive demand (data)."""
        return self.member_q_mvar.sum(axis=1)


@dataclass
class Case:
    """A study case. See the module docstring and ``docs/case_format.md``."""

    name: str
    step_h: float
    mv_net: object
    substation: Substation
    generators: pd.DataFrame
    pv_plants: pd.DataFrame
    mv_load_p_mw: pd.DataFrame
    mv_load_q_mvar: pd.DataFrame
    pv_plant_availability_pu: pd.DataFrame
    prices: pd.DataFrame
    communities: list[Community]
    battery_wear_per_mwh: float = 0.0
    curtailment_per_mwh: float = 0.0
    polygon_sides: int = 8
    horizon_h: float = 24.0
    notes: dict = field(default_factory=dict)
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def where(self, table: str) -> str:
        """The file (or description) a table came from, for messages."""
        return self.files.get(table) or f"{self.source or f'case {self.name}'}: {table}"

    def __post_init__(self):
        self.generators = validate_table(self.generators, GENERATORS, self.where("generators"))
        self.pv_plants = validate_table(self.pv_plants, PV_PLANTS, self.where("pv_plants"))

    # -- time --------------------------------------------------------------------------------
    @property
    def timeline(self) -> pd.DatetimeIndex:
        """Every period the case has data for."""
        return self.prices.index

    @property
    def horizon_periods(self) -> int:
        return round(self.horizon_h / self.step_h)

    def periods(self, start=None, n_periods: int | None = None) -> pd.DatetimeIndex:
        """The periods of one horizon (default: the first ``horizon_h`` of the case)."""
        n = self.horizon_periods if n_periods is None else int(n_periods)
        timeline = self.timeline
        first = 0 if start is None else timeline.get_indexer([self._timestamp(start)])[0]
        if first < 0:
            raise CaseError(self.source or self.name, "start",
                            f"{start} is not a period of the case "
                            f"({timeline[0]} to {timeline[-1]})")
        if first + n > len(timeline):
            raise CaseError(self.source or self.name, "start",
                            f"a horizon of {n} periods from {timeline[first]} runs past the "
                            f"case's last period {timeline[-1]}")
        return timeline[first:first + n]

    def _timestamp(self, start) -> pd.Timestamp:
        """``start`` as a timestamp; anything unreadable is a :class:`CaseError`."""
        try:
            out = pd.Timestamp(start)
        except (ValueError, TypeError, OverflowError):
            out = pd.NaT
        if out is pd.NaT or out.tz is not None:
            raise CaseError(self.source or self.name, "start",
                            f"not a time of day (YYYY-MM-DD HH:MM, no UTC offset): {start!r}")
        return out

    @property
    def days(self) -> list[pd.Timestamp]:
        """Start of every whole horizon in the case (one per ``horizon_h``)."""
        n = self.horizon_periods
        return [self.timeline[i] for i in range(0, len(self.timeline) - n + 1, n)]

    # -- networks ----------------------------------------------------------------------------
    @cached_property
    def mv_network(self) -> RadialNetwork:
        return radial_network(self.mv_net, source=f"{self.source or self.name}: mv network")

    def mv_side(self) -> Case:
        """The case without its communities: what the market operator holds in LDD-ADMM."""
        return dataclasses.replace(self, communities=[], name=f"{self.name} (MV side)")

    def with_transformer_model(self, model: str | None) -> Case:
        """The case with every community's transformer modelled as ``model`` (``regulated``
        or ``fixed``; None: as the case has it)."""
        if model is None:
            return self
        if model not in TRANSFORMER_MODELS:
            raise CaseError(self.source or self.name, "transformer_model",
                            f"must be one of {TRANSFORMER_MODELS}, got {model!r}")
        return dataclasses.replace(self, communities=[
            c if c.transformer_model == model else dataclasses.replace(
                c, transformer_model=model) for c in self.communities])

    def voltage_bands(self) -> dict[str, list[float]]:
        """The widest voltage band per level, ``{"mv_vm_band_pu": [lo, hi], "lv_vm_band_pu":
        ...}``: what the clearing and the AC check hold the buses to
        (:meth:`~mosaik_bilevel.data.network.RadialNetwork.voltage_band`)."""
        levels = {"mv": [self.mv_network], "lv": [c.lv_network for c in self.communities]}
        out = {}
        for level, networks in levels.items():
            if networks:
                bands = [n.voltage_band() for n in networks]
                out[f"{level}_vm_band_pu"] = [float(min(lo.min() for lo, _ in bands)),
                                              float(max(hi.max() for _, hi in bands))]
        return out

    @property
    def community_names(self) -> pd.Index:
        return pd.Index([c.name for c in self.communities], name="community")

    # -- validation --------------------------------------------------------------------------
    def validate(self) -> Case:
        """Check every cross-field rule; returns the case, raises :class:`CaseError`."""
        src = self.source or f"case {self.name}"
        self._validate_settings(src)

        mv = self.mv_network
        timeline = self._check_timeline(self.prices, self.where("prices"))
        missing = [c for c in PRICE_NAMES if c not in self.prices.columns]
        if missing:
            raise CaseError(self.where("prices"), missing[0], "missing column")
        self._check_series(self.prices, timeline, self.where("prices"), PRICE_NAMES)
        bad = self.prices["tariff_sell_per_mwh"] > self.prices["tariff_buy_per_mwh"] + 1e-12
        if bad.any():
            raise CaseError(self.where("prices"), "tariff_sell_per_mwh",
                            f"exceeds tariff_buy_per_mwh at {self.prices.index[bad][0]}")
        self._check_buses(self.generators, mv, self.where("generators"))
        self._check_buses(self.pv_plants, mv, self.where("pv_plants"))
        g = self.generators
        for lo, hi in (("p_min_mw", "p_max_mw"), ("q_min_mvar", "q_max_mvar")):
            bad = g[lo] > g[hi]
            if bad.any():
                raise CaseError(self.where("generators"),
                                f"row {g.index[bad][0]!r}, field {lo!r}", f"exceeds {hi}")
        for table, name, columns in (
            (self.mv_load_p_mw, "mv_load_p_mw", None),
            (self.mv_load_q_mvar, "mv_load_q_mvar", None),
            (self.pv_plant_availability_pu, "pv_plant_availability_pu", self.pv_plants.index),
        ):
            self._check_series(table, timeline, self.where(name), columns,
                               unit_range=(0.0, 1.0) if name.endswith("_pu") else None)
        for table, name in ((self.mv_load_p_mw, "mv_load_p_mw"),
                            (self.mv_load_q_mvar, "mv_load_q_mvar")):
            unknown = [b for b in table.columns if int(b) not in mv.position.index]
            if unknown:
                raise CaseError(self.where(name), str(unknown[0]),
                                "not a bus of the MV network")

        names = [c.name for c in self.communities]
        if not names:
            raise CaseError(src, "communities", "must list at least one community")
        if len(set(names)) != len(names):
            raise CaseError(src, "communities", "duplicate community name")
        for c in self.communities:
            self._validate_community(c, timeline, mv)
        return self

    def _validate_settings(self, src: str) -> None:
        """The step, horizon, polygon, costs and substation: finite, whole, in range."""
        minutes = self.step_h * 60 if _real(self.step_h) else math.nan
        if not (MIN_STEP_MINUTES <= minutes <= MAX_STEP_MINUTES):
            raise CaseError(src, "step_minutes", f"must lie in [{MIN_STEP_MINUTES:g}, "
                                                 f"{MAX_STEP_MINUTES:g}], got {minutes:g}")
        if not (_real(self.horizon_h) and 0 < self.horizon_h <= MAX_HORIZON_HOURS):
            raise CaseError(src, "horizon_hours", f"must lie in (0, {MAX_HORIZON_HOURS:g}], "
                                                  f"got {self.horizon_h!r}")
        if abs(self.horizon_h / self.step_h - self.horizon_periods) > 1e-9:
            raise CaseError(src, "horizon_h", "must be a whole number of steps")
        sides = self.polygon_sides
        if (not isinstance(sides, (int, np.integer)) or isinstance(sides, bool) or sides < 4
                or sides % 2 or sides > MAX_POLYGON_SIDES):
            raise CaseError(src, "polygon_sides", f"must be an even whole number in [4, "
                                                  f"{MAX_POLYGON_SIDES}], got {sides!r}")
        for name in ("battery_wear_per_mwh", "curtailment_per_mwh"):
            value = getattr(self, name)
            if not (_real(value) and math.isfinite(value) and value >= 0):
                raise CaseError(src, f"costs.{name}", f"must be a finite number >= 0, got "
                                                      f"{value!r}")
        sub = self.substation
        for name in ("p_import_max_mw", "p_export_max_mw", "s_max_mva"):
            if not (_real(getattr(sub, name)) and getattr(sub, name) >= 0):
                raise CaseError(src, f"substation.{name}", "must be >= 0")
        if not (_real(sub.vm_set_pu) and 0.5 <= sub.vm_set_pu <= 1.5):
            raise CaseError(src, "substation.vm_set_pu", "must lie in [0.5, 1.5]")
        if not isinstance(self.notes, dict):
            raise CaseError(src, "notes", f"must be a mapping, got {type(self.notes).__name__}")

    def _validate_community(self, c: Community, timeline, mv: RadialNetwork) -> None:
        src = c.source or f"{self.source or self.name}: community {c.name}"
        if not (isinstance(c.name, str) and SAFE_NAME.fullmatch(c.name)
                and not c.name.endswith((".", " "))):
            raise CaseError(src, "name", f"{c.name!r} is not a safe name: 1 to 64 letters, "
                                         f"digits, '_', '-', '.' or spaces, starting with a "
                                         f"letter or digit")
        if not isinstance(c.mv_bus, (int, np.integer)) or isinstance(c.mv_bus, bool):
            raise CaseError(src, "mv_bus", f"must be a whole number (a bus index), got "
                                           f"{c.mv_bus!r}")
        if c.mv_bus not in mv.position.index:
            raise CaseError(src, "mv_bus", f"{c.mv_bus} is not a bus of the MV network")
        if c.mv_bus == mv.root:
            raise CaseError(src, "mv_bus", "a community cannot connect at the substation bus")
        if not (_real(c.vm_set_pu) and 0.5 <= c.vm_set_pu <= 1.5):
            raise CaseError(src, "vm_set_pu", f"must lie in [0.5, 1.5], got {c.vm_set_pu!r}")
        if c.transformer_model not in TRANSFORMER_MODELS:
            raise CaseError(src, "transformer_model", f"must be one of {TRANSFORMER_MODELS}, "
                                                      f"got {c.transformer_model!r}")
        self._check_transformer_voltage(c, src)
        lv = c.lv_network  # checks the feeder's lines and transformer first
        c.transformer_link  # noqa: B018 -- its tap data are checked here
        for table, name in ((c.members, "members"), (c.pv, "pv"), (c.batteries, "batteries"),
                            (c.shiftable, "shiftable")):
            self._check_buses(table, lv, c.where(name))
        if not (_real(c.s_max_mva) and 0 < c.s_max_mva < math.inf):
            raise CaseError(src, "transformer_s_mva", "must be positive and finite")
        self._check_series(c.member_p_mw, timeline, c.where("member_p_mw"), c.members.index,
                           unit_range=(0.0, math.inf))
        self._check_series(c.member_q_mvar, timeline, c.where("member_q_mvar"),
                           c.members.index)
        self._check_series(c.pv_availability_pu, timeline, c.where("pv_availability_pu"),
                           c.pv.index, unit_range=(0.0, 1.0))
        b = c.batteries
        for name, ok in (
            ("e_min_mwh", b.e_min_mwh <= b.e_max_mwh),
            ("e_init_mwh", (b.e_init_mwh >= b.e_min_mwh - 1e-9)
             & (b.e_init_mwh <= b.e_max_mwh + 1e-9)),
            ("e_end_mwh", (b.e_end_mwh >= b.e_min_mwh - 1e-9)
             & (b.e_end_mwh <= b.e_max_mwh + 1e-9)),
        ):
            if (~ok).any():
                raise CaseError(c.where("batteries"),
                                f"row {b.index[~ok][0]!r}, field {name!r}",
                                "must lie within [e_min_mwh, e_max_mwh]")
        self._check_end_targets(c)
        self._check_transformer_load(c, src)
        s = c.shiftable
        for name, row in s.iterrows():
            where = f"row {name!r}"
            if row.window_end_h <= row.window_start_h:
                raise CaseError(c.where("shiftable"), f"{where}, field 'window_end_h'",
                                "must exceed window_start_h")
            if row.window_end_h > self.horizon_h + 1e-9:
                raise CaseError(c.where("shiftable"), f"{where}, field 'window_end_h'",
                                f"lies beyond the horizon of {self.horizon_h:g} h")
            on = row.energy_mwh / (row.p_mw * self.step_h)
            if abs(on - round(on)) > 1e-6:
                raise CaseError(c.where("shiftable"), f"{where}, field 'energy_mwh'",
                                f"{row.energy_mwh:g} MWh at {row.p_mw:g} MW is {on:g} periods "
                                f"of {self.step_h:g} h: not a whole number")
            window = self.shiftable_window(row).sum()
            if round(on) > window:
                raise CaseError(c.where("shiftable"), f"{where}, field 'energy_mwh'",
                                f"needs {round(on)} periods but its window has {window}")

    def _check_transformer_voltage(self, c: Community, src: str) -> None:
        """The LV transformer's rated HV voltage against its MV bus's nominal voltage."""
        tr = c.transformer
        mv_kv = float(self.mv_net.bus.vn_kv.at[c.mv_bus])
        hv_kv = float(tr.vn_hv_kv)
        if not abs(hv_kv / mv_kv - 1.0) <= VOLTAGE_MISMATCH:
            raise CaseError(c.where("network"), f"trafo {tr.name}, field 'vn_hv_kv'",
                            f"{hv_kv:g} kV does not match the {mv_kv:g} kV of MV bus "
                            f"{c.mv_bus} (mv_bus of community {c.name}; at most "
                            f"{VOLTAGE_MISMATCH:.0%} apart)")

    def _check_end_targets(self, c: Community) -> None:
        """Each battery's end-of-horizon target must be reachable from its initial state
        in one horizon (a plain solve never relaxes it; rolling operation from a measured
        state may, see :mod:`~mosaik_bilevel.model.lv_community`)."""
        b = c.batteries
        reach = b.e_init_mwh + self.horizon_h * b.eta_ch * b.p_ch_max_mw
        bad = b.e_end_mwh > reach + 1e-9
        if bad.any():
            row = b.index[bad][0]
            raise CaseError(c.where("batteries"), f"row {row!r}, field 'e_end_mwh'",
                            f"{b.e_end_mwh[row]:g} MWh cannot be reached from e_init_mwh "
                            f"{b.e_init_mwh[row]:g} MWh in one horizon of "
                            f"{self.horizon_h:g} h (at most {reach[row]:g} MWh)")

    def _check_transformer_load(self, c: Community, src: str) -> None:
        """The members' load, less all rooftop PV and battery discharge at their most, must
        fit the transformer in some period (else no exchange is possible at all)."""
        pv_max = (c.pv_availability_pu.max(axis=0) * c.pv["p_peak_mw"]).sum() if len(
            c.pv) else 0.0
        net = c.member_p_mw.sum(axis=1) - pv_max - c.batteries["p_dis_max_mw"].sum()
        if len(net) and net.min() > c.s_max_mva:
            raise CaseError(c.where("member_p_mw"), "load",
                            f"the members' load less all rooftop PV and battery discharge "
                            f"is at least {net.min():g} MW in every period, above the "
                            f"{c.s_max_mva:g} MVA of community {c.name}'s transformer")

    @property
    def community_settings(self) -> CommunitySettings:
        """The public settings every community of this case works with."""
        return CommunitySettings(
            step_h=self.step_h, horizon_h=self.horizon_h, polygon_sides=self.polygon_sides,
            battery_wear_per_mwh=self.battery_wear_per_mwh,
            curtailment_per_mwh=self.curtailment_per_mwh)

    def shiftable_window(self, row: pd.Series) -> np.ndarray:
        """Boolean mask over a horizon's periods: inside the load's window."""
        return self.community_settings.shiftable_window(row)

    def _check_timeline(self, table: pd.DataFrame, src: str) -> pd.DatetimeIndex:
        idx = table.index
        if not isinstance(idx, pd.DatetimeIndex):
            raise CaseError(src, "time", "index must be timestamps")
        if idx.has_duplicates:
            raise CaseError(src, "time", f"duplicate timestamp {idx[idx.duplicated()][0]}")
        if len(idx) < self.horizon_periods:
            raise CaseError(src, "time", f"{len(idx)} periods, fewer than one horizon "
                                         f"({self.horizon_periods})")
        steps = np.diff(idx.asi8) / 3.6e12
        if len(steps) and np.any(np.abs(steps - self.step_h) > 1e-9):
            at = idx[1:][np.abs(steps - self.step_h) > 1e-9][0]
            raise CaseError(src, "time", f"irregular step before {at}: every step must be "
                                         f"{self.step_h * 60:g} minutes")
        return idx

    @staticmethod
    def _check_series(table, timeline, src, columns=None, unit_range=None) -> None:
        if table is None:
            raise CaseError(src, "file", "missing time series")
        if not table.index.equals(timeline):
            raise CaseError(src, "time", "must have the same timestamps as prices")
        if columns is not None:
            cols = [str(c) for c in table.columns]
            missing = [c for c in columns if c not in cols]
            if missing:
                raise CaseError(src, str(missing[0]), "missing column (one per element)")
            extra = [c for c in cols if c not in set(columns)]
            if extra:
                raise CaseError(src, extra[0], "column of an unknown element")
        values = table.to_numpy(dtype=float) if table.size else np.zeros((0, 0))
        if values.size and not np.isfinite(values).all():
            r, k = np.argwhere(~np.isfinite(values))[0]
            raise CaseError(src, str(table.columns[k]), f"missing or non-finite value at "
                                                        f"{table.index[r]}")
        big = np.abs(values) > MAX_MAGNITUDE if values.size else np.zeros((0, 0), bool)
        if big.any():
            r, k = np.argwhere(big)[0]
            raise CaseError(src, str(table.columns[k]),
                            f"value {values[r, k]:g} at {table.index[r]} is beyond the "
                            f"magnitude limit of {MAX_MAGNITUDE:g}")
        if unit_range is not None and values.size:
            lo, hi = unit_range
            bad = (values < lo - 1e-12) | (values > hi + 1e-12)
            if bad.any():
                r, k = np.argwhere(bad)[0]
                raise CaseError(src, str(table.columns[k]),
                                f"value {values[r, k]:g} at {table.index[r]} outside "
                                f"[{lo:g}, {hi:g}]")

    @staticmethod
    def _check_buses(table: pd.DataFrame, network: RadialNetwork, src: str) -> None:
        bad = ~table["bus"].isin(network.position.index)
        if bad.any():
            raise CaseError(src, f"row {table.index[bad][0]!r}, field 'bus'",
                            f"{table['bus'][bad].iloc[0]} is not a bus of the network")


def _real(value) -> bool:
    """A real number (not a bool, not text) that is not NaN."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and not math.isnan(value))
