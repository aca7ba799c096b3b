"""The ``paper`` case: IEEE 33-bus MV feeder with six 206-bus European LV communities.

Built at run time from data that ships with pandapower and simbench (nothing third-party is
stored in this repository). Every number below that is *our* choice rather than the paper's
is a named constant here and is listed in ``docs/paper_case.md``; :data:`CHOICES` gives them
as one table.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd

from ..data.case import Case, Community, Substation
from ..data.network import radial_network
from ..errors import CaseError
from ..model.lindistflow import ldf_voltages
from . import simbench_profiles as sb
from .european_lv import reduced_european_lv_feeder

# -- MV system --------------------------------------------------------------------------------
#: MV buses (0-based) where the six communities connect: end of the main feeder, its middle,
#: the ends of the three laterals, the middle of the 25–32 lateral (our choice).
COMMUNITY_BUSES = (17, 12, 21, 24, 29, 32)
#: Further buses, in order, for cases with more than six communities (for scaling studies).
EXTRA_COMMUNITY_BUSES = (15, 9, 20, 23, 27, 31, 16, 11, 19, 22, 26, 30, 14, 8, 18, 28, 25, 10)
SUBSTATION = Substation(p_import_max_mw=3.0, p_export_max_mw=0.2, s_max_mva=5.0,
                        vm_set_pu=1.0)
#: Conventional units: name, bus, p_max (MW), q range (MVAr), ramp (MW/h), cost (per MWh).
GENERATORS = (
    ("G17", 17, 1.0, 0.5, 1.0, 80.0),
    ("G32", 32, 0.5, 0.25, 0.5, 100.0),
)
#: Utility PV plants: name, bus, peak (MW), simbench profile, cost (per MWh).
PV_PLANTS = (("PV14", 14, 3.5, "PV3", 0.0), ("PV30", 30, 3.5, "PV6", 0.0))
#: Upstream energy price (per MWh): night 22–07 h and day 07–22 h.
UPSTREAM_NIGHT, UPSTREAM_DAY = 40.0, 60.0
#: Communities' time-of-use tariff (per MWh): import night / day / evening peak 17–21 h,
#: and the export price.
TARIFF_NIGHT, TARIFF_DAY, TARIFF_PEAK, TARIFF_SELL = 180.0, 240.0, 300.0, 50.0
#: MV spot loads follow simbench's semi-urban MV profile, each day's range mapped linearly onto
#: [MV_LOAD_MIN, 1] × the case33bw nominal load, at each bus's nominal power factor.
MV_LOAD_PROFILE, MV_LOAD_MIN = "mv_semiurb_pload", 0.55
BATTERY_WEAR_PER_MWH, CURTAILMENT_PER_MWH = 2.0, 1.0

# -- communities --------------------------------------------------------------------------------
HOUSEHOLD_PROFILES = ("H0-A", "H0-B", "H0-C", "H0-G", "H0-L")
ANNUAL_ENERGY_MWH = (2.5, 5.0)
#: Reactive demand: tan φ of simbench's own H0 loads (qLoad / pLoad = 0.395).
TAN_PHI = 0.395
MAX_SHIFT_H = 2.0
PV_SHARE, PV_KWP = 0.5, (4.0, 10.0)
PV_PROFILES = tuple(f"PV{i}" for i in range(1, 9))
BATTERY_SHARE_OF_PV, BATTERY_KWH_PER_KWP, BATTERY_HOURS = 0.5, 1.0, 2.0
BATTERY_ETA, BATTERY_SOE = 0.95, (0.1, 0.9)
#: Shiftable loads per feeder: name, count, power (kW), hours on, window (h after midnight).
SHIFTABLE = (("wm", 3, 2.0, 2, (8.0, 20.0)), ("ev", 2, 7.0, 3, (0.0, 7.0)))
SEED = 2016
DEFAULT_DAY = "2016-05-24"

CHOICES = pd.DataFrame([
    ("community MV buses", str(COMMUNITY_BUSES), "end of main feeder, middle, lateral ends"),
    ("substation import / export limit", "3.0 MW / 0.2 MW",
     "import binds at the evening peak, export at noon"),
    ("substation rating", "5.0 MVA", "polygon of 8 sides"),
    ("conventional units", "G17 1.0 MW @ 80, G32 0.5 MW @ 100",
     "costlier than upstream energy; ramps 1.0 and 0.5 MW/h"),
    ("utility PV", "PV14, PV30: 3.5 MWp each, cost 0, simbench PV3 / PV6",
     "simbench's MV loads peak at midday, so 2 MWp never meets the export limit"),
    ("upstream price", "40 (22–07 h), 60 (07–22 h) per MWh", "no public price data ships"),
    ("tariff", "import 180 / 240 / 300 (night / day / 17–21 h), export 50 per MWh",
     "time-of-use"),
    ("MV loads", "simbench semi-urban MV profile, each day mapped onto 55–100 % of the "
     "case33bw nominal load", "nominal power factor per bus"),
    ("households", "55 per feeder, H0-A/B/C/G/L, 2.5–5 MWh/a, shifted ±0–2 h",
     "seeded"),
    ("household reactive power", "tan φ = 0.395", "simbench H0 loads' qLoad/pLoad"),
    ("rooftop PV", "on half of the homes, 4–10 kWp, PV1..PV8", "seeded"),
    ("batteries", "on half of the PV homes, 1 kWh per kWp, 2 h, 95 % each way, SoE 10–90 %,"
     " start and end at 50 %", "seeded"),
    ("shiftable loads", "3 washing machines 2 kW × 2 h in 08–20 h; 2 EV blocks 7 kW × 3 h in "
     "00–07 h, per feeder", "binaries of the leader"),
    ("battery wear / curtailment cost", "2 / 1 per MWh", "break ties"),
    ("MV/LV transformers", "fixed (off-load) taps; each set to the position whose no-load LV "
     "voltage is closest to 1.0 pu at its MV bus's LinDistFlow voltage under case33bw's "
     "nominal load", "off-load tap changers are the common case in European LV substations; "
     "--transformer regulated models an on-load tap changer instead"),
    ("voltage bands", "MV 0.90–1.10 pu (case33bw), LV 0.90–1.10 pu (EN 50160)", ""),
    ("seed", str(SEED), "every draw above"),
    ("experiment days", "the sunniest and the darkest day of May 2016 by utility-PV energy, "
     "alternating (2016-05-24: 28.5 MWh, 2016-05-07: 6.8 MWh)",
     "abundant and scarce cheap PV (mosaik-bilevel experiments)"),
], columns=["item", "value", "note"])


def _mv_network():
    import pandapower.networks as pn

    net = pn.case33bw()
    net.f_hz = 50.0
    return net


def _lv_network():
    net = reduced_european_lv_feeder(balanced=True)
    hv = int(net.trafo.hv_bus.iloc[0])
    net.bus.loc[hv, "vn_kv"] = 12.66
    net.trafo["vn_hv_kv"] = 12.66
    return net


def _prices(labels: pd.DatetimeIndex) -> pd.DataFrame:
    hour = labels.hour + labels.minute / 60.0
    day = (hour >= 7) & (hour < 22)
    peak = (hour >= 17) & (hour < 21)
    return pd.DataFrame({
        "upstream_per_mwh": np.where(day, UPSTREAM_DAY, UPSTREAM_NIGHT),
        "tariff_buy_per_mwh": np.where(peak, TARIFF_PEAK, np.where(day, TARIFF_DAY,
                                                                   TARIFF_NIGHT)),
        "tariff_sell_per_mwh": np.full(len(labels), TARIFF_SELL),
    }, index=labels)


def _nominal_mv_voltages(mv) -> pd.Series:
    """LinDistFlow voltage of every MV bus under case33bw's nominal load (no communities)."""
    network = radial_network(mv, source="paper: mv network")
    pos = network.position
    p = np.zeros(network.n_buses)
    q = np.zeros(network.n_buses)
    np.add.at(p, pos.loc[mv.load.bus].to_numpy(), mv.load.p_mw.to_numpy())
    np.add.at(q, pos.loc[mv.load.bus].to_numpy(), mv.load.q_mvar.to_numpy())
    return pd.Series(ldf_voltages(network, p, q, SUBSTATION.vm_set_pu), index=network.buses)


def _set_off_load_tap(community: Community, vm_mv_pu: float) -> None:
    """The fixed transformer model with the tap a DSO would set (see :data:`CHOICES`)."""
    tap = community.transformer_link.best_tap(vm_mv_pu, community.vm_set_pu)
    community.net.trafo["tap_pos"] = float(tap)
    community.transformer_model = "fixed"
    for cached in ("transformer", "transformer_link"):  # read at the neutral tap
        community.__dict__.pop(cached, None)


def _community(name: str, mv_bus: int, lv_net, rng: np.random.Generator,
               loads: pd.DataFrame, pv_profiles: pd.DataFrame, labels, step_minutes: int):
    homes = lv_net.load
    names = homes["name"].astype(str).to_numpy()
    members = pd.DataFrame({"name": names, "bus": homes["bus"].to_numpy()}).set_index("name")
    n = len(members)
    steps_per_h = 60 // sb.STEP_MIN
    p_cols, q_cols = {}, {}
    for member in names:
        kind = HOUSEHOLD_PROFILES[rng.integers(len(HOUSEHOLD_PROFILES))]
        energy = rng.uniform(*ANNUAL_ENERGY_MWH)
        shift = int(rng.integers(-MAX_SHIFT_H * steps_per_h, MAX_SHIFT_H * steps_per_h + 1))
        p_prof, q_prof = loads[f"{kind}_pload"], loads[f"{kind}_qload"]
        rated = energy / sb.annual_energy(p_prof)
        p_cols[member] = np.roll(p_prof.to_numpy(), shift) * rated
        q_cols[member] = np.roll(q_prof.to_numpy(), shift) * rated * TAN_PHI
    year = loads.index
    member_p = sb.resample_mean(pd.DataFrame(p_cols, index=year), step_minutes).loc[labels]
    member_q = sb.resample_mean(pd.DataFrame(q_cols, index=year), step_minutes).loc[labels]

    has_pv = rng.random(n) < PV_SHARE
    pv_homes = np.flatnonzero(has_pv)
    kwp = rng.uniform(*PV_KWP, size=pv_homes.size)
    pv_kind = rng.integers(len(PV_PROFILES), size=pv_homes.size)
    pv = pd.DataFrame({"name": [f"pv_{names[h]}" for h in pv_homes],
                       "bus": members["bus"].to_numpy()[pv_homes],
                       "p_peak_mw": kwp / 1000.0}).set_index("name")
    avail = pd.DataFrame({f"pv_{names[h]}": pv_profiles[PV_PROFILES[k]].to_numpy()
                          for h, k in zip(pv_homes, pv_kind, strict=True)},
                         index=pv_profiles.index)
    avail = sb.resample_mean(avail, step_minutes).loc[labels].clip(0.0, 1.0)
    avail = avail.reindex(columns=pv.index)

    with_battery = pv_homes[rng.random(pv_homes.size) < BATTERY_SHARE_OF_PV]
    cap = np.array([kwp[np.flatnonzero(pv_homes == h)[0]] for h in with_battery]
                   ) * BATTERY_KWH_PER_KWP / 1000.0
    batteries = pd.DataFrame({
        "name": [f"bat_{names[h]}" for h in with_battery],
        "bus": members["bus"].to_numpy()[with_battery],
        "e_max_mwh": cap * BATTERY_SOE[1], "e_min_mwh": cap * BATTERY_SOE[0],
        "e_init_mwh": cap * 0.5, "p_ch_max_mw": cap / BATTERY_HOURS,
        "p_dis_max_mw": cap / BATTERY_HOURS, "eta_ch": BATTERY_ETA, "eta_dis": BATTERY_ETA,
    }).set_index("name")

    rows = []
    for kind, count, kw, hours, (start, end) in SHIFTABLE:
        for j in range(count):
            home = int(rng.integers(n))
            rows.append((f"{kind}{j}_{names[home]}", int(members["bus"].iloc[home]),
                         kw / 1000.0, kw * hours / 1000.0, start, end))
    shiftable = pd.DataFrame(rows, columns=["name", "bus", "p_mw", "energy_mwh",
                                            "window_start_h", "window_end_h"]).set_index("name")
    return Community(
        name=name, mv_bus=mv_bus, net=lv_net, members=members, member_p_mw=member_p,
        member_q_mvar=member_q, pv=pv, pv_availability_pu=avail, batteries=batteries,
        shiftable=shiftable, source=f"paper: community {name}")


def paper_case(day: str = DEFAULT_DAY, *, days: int = 1, step_minutes: int = 60,
               n_communities: int = 6, seed: int = SEED) -> Case:
    """The paper's system for ``days`` whole days from ``day`` (2016) at ``step_minutes``.

    Parameters
    ----------
    day
        First day (ISO date in 2016); default 2016-05-24, the first of four clear days.
    days
        Number of whole days in the case.
    step_minutes
        15 or 60 (any multiple of 15 dividing a day works).
    n_communities
        6 (the paper); more duplicate the feeder at further MV buses (scaling studies).
    seed
        Seed of every synthesised quantity.
    """
    start, buses = _check_options(day, days, step_minutes, n_communities)
    labels = sb.day_labels(start, days, step_minutes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = _mv_network()
        lv_template = _lv_network()
    load_cols = [f"{k}_{x}" for k in HOUSEHOLD_PROFILES for x in ("pload", "qload")]
    loads = sb.annual_profiles("LoadProfile.csv", [*load_cols, MV_LOAD_PROFILE])
    res = sb.annual_profiles("RESProfile.csv", list(PV_PROFILES))
    mv_p, mv_q = _mv_loads(mv, loads[MV_LOAD_PROFILE], labels, step_minutes)
    generators, pv_plants, pv_avail = _mv_units(res, labels, step_minutes)

    rng = np.random.default_rng(seed)
    communities = []
    vm_nominal = _nominal_mv_voltages(mv)
    for i in range(n_communities):
        community = _community(f"LV{i + 1}", buses[i], copy.deepcopy(lv_template), rng, loads,
                               res, labels, step_minutes)
        _set_off_load_tap(community, vm_nominal.at[buses[i]])
        communities.append(community)

    notes = {row.item: f"{row.value} ({row.note})" if row.note else row.value
             for row in CHOICES.itertuples()}
    case = Case(
        name="paper", step_h=step_minutes / 60.0, mv_net=mv, substation=SUBSTATION,
        generators=generators, pv_plants=pv_plants, mv_load_p_mw=mv_p, mv_load_q_mvar=mv_q,
        pv_plant_availability_pu=pv_avail, prices=_prices(labels), communities=communities,
        battery_wear_per_mwh=BATTERY_WEAR_PER_MWH, curtailment_per_mwh=CURTAILMENT_PER_MWH,
        polygon_sides=8, horizon_h=24.0, notes=notes, source="paper")
    return case.validate()


def _check_options(day: str, days: int, step_minutes: int, n_communities: int
                   ) -> tuple[pd.Timestamp, tuple[int, ...]]:
    """The first day and the MV buses available to communities; rejects bad options."""
    try:
        start = pd.Timestamp(day)
    except (ValueError, TypeError):
        raise CaseError("paper", "day", f"not a date: {day!r}") from None
    if step_minutes <= 0 or (24 * 60) % step_minutes or step_minutes % sb.STEP_MIN:
        raise CaseError("paper", "step_minutes",
                        f"must be a multiple of {sb.STEP_MIN} that divides a day, got "
                        f"{step_minutes}")
    if days < 1:
        raise CaseError("paper", "days", f"must be at least 1, got {days}")
    buses = COMMUNITY_BUSES + EXTRA_COMMUNITY_BUSES
    if not 1 <= n_communities <= len(buses):
        raise CaseError("paper", "n_communities", f"must lie in 1..{len(buses)}")
    sb.check_year(start, days)
    return start, buses


def _mv_loads(mv, shape: pd.Series, labels: pd.DatetimeIndex, step_minutes: int
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MV spot loads (p and q per bus): the nominal loads scaled by the daily ``shape``."""
    # each day's 15-min shape onto [MV_LOAD_MIN, 1], then averaged to the case's step
    by_day = shape.groupby(shape.index.normalize())
    low, high = by_day.transform("min"), by_day.transform("max")
    scale = MV_LOAD_MIN + (1 - MV_LOAD_MIN) * (shape - low) / (high - low)
    scale = sb.resample_mean(scale.to_frame(), step_minutes).loc[labels].iloc[:, 0].to_numpy()
    nominal = mv.load.groupby("bus")[["p_mw", "q_mvar"]].sum()
    mv_p = pd.DataFrame(np.outer(scale, nominal["p_mw"]), index=labels,
                        columns=nominal.index.astype(int))
    mv_q = pd.DataFrame(np.outer(scale, nominal["q_mvar"]), index=labels,
                        columns=nominal.index.astype(int))
    return mv_p, mv_q


def _mv_units(res: pd.DataFrame, labels: pd.DatetimeIndex, step_minutes: int
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The conventional units, the utility PV plants and the plants' availability."""
    generators = pd.DataFrame([
        {"name": n, "bus": b, "p_min_mw": 0.0, "p_max_mw": p, "q_min_mvar": -q,
         "q_max_mvar": q, "ramp_mw_per_h": r, "cost_per_mwh": c}
        for n, b, p, q, r, c in GENERATORS]).set_index("name")
    pv_plants = pd.DataFrame([{"name": n, "bus": b, "p_peak_mw": p, "cost_per_mwh": c}
                              for n, b, p, _prof, c in PV_PLANTS]).set_index("name")
    pv_avail = sb.resample_mean(
        pd.DataFrame({n: res[prof].to_numpy() for n, _b, _p, prof, _c in PV_PLANTS},
                     index=res.index), step_minutes).loc[labels].clip(0.0, 1.0)
    return generators, pv_plants, pv_avail


def utility_pv_by_day(first: str = "2016-05-01", last: str = "2016-05-31") -> pd.Series:
    """Energy the utility-scale PV plants could produce per day (MWh), ``first``..``last``.

    Used to pick days of abundant and of scarce PV (e.g. by ``mosaik-bilevel experiments``).
    """
    res = sb.annual_profiles("RESProfile.csv", sorted({p for *_, p, _c in PV_PLANTS}))
    mw = sum(peak * res[prof].clip(0.0, 1.0) for _n, _b, peak, prof, _c in PV_PLANTS)
    step_h = sb.STEP_MIN / 60.0
    daily = (mw * step_h).groupby(mw.index.normalize()).sum()
    daily.index = daily.index.strftime("%Y-%m-%d")
    daily.name = "utility_pv_mwh"
    return daily.loc[first:last]
