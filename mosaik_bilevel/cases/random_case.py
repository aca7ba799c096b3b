"""A seeded generator of small, valid cases for tests and users' own checks.

The cases are small enough for brute force (a few MV buses, one to three communities with a
few LV buses, a few binaries, two or three periods) yet exercise every part of the model:
a substation with import and export limits, a conventional unit with a ramp limit, a PV plant,
thermal ratings that can bind, batteries and shiftable loads.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd

from ..data.case import Case, Community, Substation
from ..errors import CaseError
from ..model.formulation import build_formulation
from ..solvers.highs import solve_model

MV_KV, LV_KV = 12.66, 0.4


def _timeline(periods: int, step_h: float) -> pd.DatetimeIndex:
    return pd.date_range("2016-05-24", periods=periods, freq=pd.Timedelta(hours=step_h),
                         name="time")


def mv_chain(n_buses: int, rng: np.random.Generator, *, rated: bool = True):
    """A radial MV network: a random tree of ``n_buses`` at 12.66 kV with an ext_grid."""
    net = pp.create_empty_network(f_hz=50.0)
    buses = [pp.create_bus(net, MV_KV, min_vm_pu=0.9, max_vm_pu=1.1) for _ in range(n_buses)]
    net.bus.loc[buses[0], ["min_vm_pu", "max_vm_pu"]] = 1.0
    pp.create_ext_grid(net, buses[0], vm_pu=1.0)
    for i in range(1, n_buses):
        parent = buses[int(rng.integers(0, i))]
        max_i = float(rng.uniform(0.02, 0.06)) if rated and rng.random() < 0.5 else 99999.0
        pp.create_line_from_parameters(
            net, parent, buses[i], length_km=1.0, r_ohm_per_km=float(rng.uniform(5, 25)),
            x_ohm_per_km=float(rng.uniform(3, 15)), c_nf_per_km=0.0, max_i_ka=max_i)
    return net


def lv_feeder(n_buses: int, rng: np.random.Generator, *, s_mva: float = 0.25):
    """A small LV feeder: MV terminal, transformer, and a tree of ``n_buses`` LV buses."""
    net = pp.create_empty_network(f_hz=50.0)
    hv = pp.create_bus(net, MV_KV)
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    lv = [pp.create_bus(net, LV_KV) for _ in range(n_buses)]
    pp.create_transformer_from_parameters(
        net, hv, lv[0], sn_mva=s_mva, vn_hv_kv=MV_KV, vn_lv_kv=LV_KV, vkr_percent=1.0,
        vk_percent=4.0, pfe_kw=0.0, i0_percent=0.0)
    for i in range(1, n_buses):
        parent = lv[int(rng.integers(0, i))]
        pp.create_line_from_parameters(
            net, parent, lv[i], length_km=float(rng.uniform(0.05, 0.15)),
            r_ohm_per_km=float(rng.uniform(0.2, 0.6)), x_ohm_per_km=0.08, c_nf_per_km=0.0,
            max_i_ka=float(rng.uniform(0.05, 0.2)))
    return net, lv


def random_case(
    seed: int = 0,
    *,
    n_mv_buses: int | None = None,
    n_communities: int | None = None,
    periods: int | None = None,
    max_binaries: int = 6,
    polygon_sides: int = 4,
    horizons: int = 1,
) -> Case:
    """A small random case, reproducible from ``seed``, whose bilevel problem is feasible.

    Parameters
    ----------
    seed
        Seed of the generator.
    n_mv_buses, n_communities, periods
        Sizes (drawn from 3–4, 1–3 and 2–3 when not given).
    max_binaries
        Upper bound on the leader's binaries (battery modes and shiftable-load periods).
    polygon_sides
        Sides of the thermal polygons (4 keeps the follower small for brute force).
    horizons
        Number of consecutive horizons (each of ``periods`` periods) the case spans.

    Notes
    -----
    A draw is kept when its high-point relaxation (leader and follower constraints together)
    is feasible, which makes every method's problem feasible; otherwise the generator draws
    again from the same stream, so the result still depends on ``seed`` alone.
    """
    _check_options(seed, horizons, n_mv_buses, n_communities, periods, max_binaries)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        case = _draw(rng, seed, n_mv_buses, n_communities, periods, max_binaries,
                     polygon_sides, horizons)
        if all(solve_model(build_formulation(case, case.periods(start), "hpr", "tariff").model
                           ).status.ok for start in case.days):
            return case
    raise RuntimeError(f"no feasible random case found for seed {seed}")


def _check_options(seed, horizons, n_mv_buses, n_communities, periods, max_binaries) -> None:
    """Whole numbers in range, else a :class:`~mosaik_bilevel.errors.CaseError`."""
    for name, value, low, high in (
            ("seed", seed, 0, 2**63 - 1), ("horizons", horizons, 1, 366),
            ("n_mv_buses", n_mv_buses, 2, 200), ("n_communities", n_communities, 1, 50),
            ("periods", periods, 1, 96), ("max_binaries", max_binaries, 0, 10_000)):
        if value is None and name not in ("seed", "horizons", "max_binaries"):
            continue
        if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
                or not low <= value <= high):
            raise CaseError("random", name, f"must be a whole number in [{low}, {high}], got "
                                            f"{value!r}")


def _draw(
    rng: np.random.Generator,
    seed: int,
    n_mv_buses: int | None,
    n_communities: int | None,
    periods: int | None,
    max_binaries: int,
    polygon_sides: int,
    horizons: int,
) -> Case:
    """One draw of a random case from ``rng`` (its feasibility not yet checked)."""
    n_mv = int(n_mv_buses or rng.integers(3, 5))
    n_c = int(n_communities or rng.integers(1, 4))
    h = int(periods or rng.integers(2, 4))
    step_h = 1.0
    horizon = h
    h = h * horizons  # the draws below cover the whole timeline
    timeline = _timeline(h, step_h)

    mv, load_p, load_q = _draw_mv_loads(rng, n_mv, h, timeline)
    non_root = list(range(1, n_mv))
    generators, pv_plants, pv_avail = _draw_mv_units(rng, non_root, h, timeline)
    prices, substation = _draw_market(rng, h, timeline, load_p)

    binaries_left = max_binaries
    communities = []
    for c in range(n_c):
        community, binaries_left = _draw_community(rng, f"c{c}", non_root, timeline, horizon,
                                                   step_h, binaries_left)
        communities.append(community)
    case = Case(
        name=f"random-{seed}", step_h=step_h, mv_net=mv, substation=substation,
        generators=generators, pv_plants=pv_plants, mv_load_p_mw=load_p,
        mv_load_q_mvar=load_q, pv_plant_availability_pu=pv_avail, prices=prices,
        communities=communities, battery_wear_per_mwh=float(rng.uniform(0, 5)),
        curtailment_per_mwh=float(rng.uniform(0, 5)), polygon_sides=polygon_sides,
        horizon_h=horizon * step_h,
    )
    return case.validate()


def _draw_mv_loads(rng: np.random.Generator, n_mv: int, h: int, timeline: pd.DatetimeIndex
                   ) -> tuple[object, pd.DataFrame, pd.DataFrame]:
    """The MV network and its spot loads (p and q) at every non-root bus."""
    mv = mv_chain(n_mv, rng)
    non_root = list(range(1, n_mv))
    load_p = pd.DataFrame(rng.uniform(0.2, 0.8, (h, len(non_root))), index=timeline,
                          columns=non_root)
    load_q = load_p * 0.4
    return mv, load_p, load_q


def _draw_mv_units(rng: np.random.Generator, non_root: list[int], h: int,
                   timeline: pd.DatetimeIndex
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The conventional unit, the PV plant and the plant's availability."""
    g_bus = int(rng.choice(non_root))
    generators = pd.DataFrame({
        "name": ["G1"], "bus": [g_bus], "p_min_mw": [0.0],
        "p_max_mw": [float(rng.uniform(0.3, 1.0))], "q_min_mvar": [-0.5], "q_max_mvar": [0.5],
        "ramp_mw_per_h": [float(rng.uniform(0.2, 0.6))],
        "cost_per_mwh": [float(rng.uniform(70, 100))],
    }).set_index("name")
    pv_plants = pd.DataFrame({"name": ["PV1"], "bus": [int(rng.choice(non_root))],
                              "p_peak_mw": [float(rng.uniform(0.5, 1.5))],
                              "cost_per_mwh": [0.0]}).set_index("name")
    pv_avail = pd.DataFrame({"PV1": rng.uniform(0.0, 1.0, h)}, index=timeline)
    return generators, pv_plants, pv_avail


def _draw_market(rng: np.random.Generator, h: int, timeline: pd.DatetimeIndex,
                 load_p: pd.DataFrame) -> tuple[pd.DataFrame, Substation]:
    """The prices and the substation's limits (import scaled to the peak MV load)."""
    prices = pd.DataFrame({
        "upstream_per_mwh": rng.uniform(30, 70, h),
        "tariff_buy_per_mwh": np.full(h, 120.0),
        "tariff_sell_per_mwh": np.full(h, 20.0),
    }, index=timeline)
    total_load = load_p.sum(axis=1).max()
    substation = Substation(p_import_max_mw=float(total_load * rng.uniform(0.6, 1.1)),
                            p_export_max_mw=float(rng.uniform(0.0, 0.3)), s_max_mva=5.0)
    return prices, substation


def _draw_community(rng: np.random.Generator, name: str, non_root: list[int],
                    timeline: pd.DatetimeIndex, horizon: int, step_h: float,
                    binaries_left: int) -> tuple[Community, int]:
    """One community and the leader's binaries left after its battery and shiftable load."""
    h = len(timeline)
    n_lv = int(rng.integers(2, 5))
    net, lv = lv_feeder(n_lv, rng)
    n_members = int(rng.integers(1, 4))
    member_bus = [lv[int(rng.integers(0, n_lv))] for _ in range(n_members)]
    members = pd.DataFrame({"name": [f"m{i}" for i in range(n_members)],
                            "bus": member_bus}).set_index("name")
    member_p = pd.DataFrame(rng.uniform(0.005, 0.05, (h, n_members)), index=timeline,
                            columns=members.index)
    member_q = member_p * 0.3
    pv = pd.DataFrame({"name": ["pv0"], "bus": [lv[-1]],
                       "p_peak_mw": [float(rng.uniform(0.02, 0.12))]}).set_index("name")
    pv_av = pd.DataFrame({"pv0": rng.uniform(0, 1, h)}, index=timeline)
    kwargs, binaries_left = _draw_flexibility(rng, lv, horizon, step_h, binaries_left)
    community = Community(
        name=name, mv_bus=int(rng.choice(non_root)), net=net, members=members,
        member_p_mw=member_p, member_q_mvar=member_q, pv=pv, pv_availability_pu=pv_av,
        **kwargs)
    return community, binaries_left


def _draw_flexibility(rng: np.random.Generator, lv: list[int], horizon: int, step_h: float,
                      binaries_left: int) -> tuple[dict, int]:
    """A battery and a shiftable load, each while the binaries last (and by chance)."""
    n_lv = len(lv)
    kwargs = {}
    if binaries_left >= horizon and rng.random() < 0.8:
        e_max = float(rng.uniform(0.02, 0.08))
        kwargs["batteries"] = pd.DataFrame({
            "name": ["bat0"], "bus": [lv[-1]], "e_max_mwh": [e_max],
            "e_min_mwh": [0.1 * e_max], "e_init_mwh": [0.5 * e_max],
            "p_ch_max_mw": [0.5 * e_max], "p_dis_max_mw": [0.5 * e_max],
            "eta_ch": [0.95], "eta_dis": [0.95]}).set_index("name")
        binaries_left -= horizon
    if binaries_left >= horizon and rng.random() < 0.6:
        p_sh = float(rng.uniform(0.01, 0.04))
        on = int(rng.integers(1, horizon))
        kwargs["shiftable"] = pd.DataFrame({
            "name": ["wm0"], "bus": [lv[int(rng.integers(0, n_lv))]], "p_mw": [p_sh],
            "energy_mwh": [p_sh * on * step_h], "window_start_h": [0.0],
            "window_end_h": [float(horizon * step_h)]}).set_index("name")
        binaries_left -= horizon
    return kwargs, binaries_left
