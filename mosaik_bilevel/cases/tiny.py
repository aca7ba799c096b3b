"""The ``tiny`` case: four MV buses, two small communities, three hourly periods.

It ships as a case folder (``mosaik_bilevel/cases/tiny``), the worked example of the folder
format, and loads through the same reader as any user's folder. :func:`build_tiny` is its
source: ``python -m mosaik_bilevel.cases.tiny`` rewrites the folder from it, and a test keeps
the two in step. Small enough for brute force (6 leader binaries), yet every regime is there:
the substation's import limit binds in the evening, the PV plant is marginal at noon.
"""

from __future__ import annotations

from pathlib import Path

import pandapower as pp
import pandas as pd

from ..data.case import Case, Community, Substation
from ..data.folder import read_case_folder, save_case
from .random_case import LV_KV, MV_KV

FOLDER = Path(__file__).parent / "tiny"


def _mv():
    net = pp.create_empty_network(name="tiny MV", f_hz=50.0)
    b = [pp.create_bus(net, MV_KV, name=f"MV{i}", min_vm_pu=0.9, max_vm_pu=1.1)
         for i in range(4)]
    net.bus.loc[b[0], ["min_vm_pu", "max_vm_pu"]] = 1.0
    pp.create_ext_grid(net, b[0], vm_pu=1.0)
    for f, t, r, x, imax in ((0, 1, 8.0, 4.0, 0.08), (1, 2, 10.0, 5.0, 99999.0),
                             (1, 3, 12.0, 6.0, 0.05)):
        pp.create_line_from_parameters(net, b[f], b[t], length_km=1.0, r_ohm_per_km=r,
                                       x_ohm_per_km=x, c_nf_per_km=0.0, max_i_ka=imax)
    return net


def _lv(name: str):
    net = pp.create_empty_network(name=name, f_hz=50.0)
    hv = pp.create_bus(net, MV_KV, name="MV terminal")
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    lv = [pp.create_bus(net, LV_KV, name=f"LV{i}") for i in range(3)]
    pp.create_transformer_from_parameters(
        net, hv, lv[0], sn_mva=0.25, vn_hv_kv=MV_KV, vn_lv_kv=LV_KV, vkr_percent=1.0,
        vk_percent=4.0, pfe_kw=0.0, i0_percent=0.0)
    pp.create_line_from_parameters(net, lv[0], lv[1], length_km=0.1, r_ohm_per_km=0.3,
                                   x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=0.2)
    pp.create_line_from_parameters(net, lv[1], lv[2], length_km=0.1, r_ohm_per_km=0.5,
                                   x_ohm_per_km=0.08, c_nf_per_km=0.0, max_i_ka=0.15)
    return net, lv


def build_tiny() -> Case:
    """The tiny case, built in code (the source of the shipped folder)."""
    time = pd.date_range("2016-05-24 18:00", periods=3, freq="h", name="time")
    mv = _mv()
    load_p = pd.DataFrame({1: [0.30, 0.35, 0.45], 2: [0.25, 0.30, 0.40],
                           3: [0.20, 0.25, 0.35]}, index=time)
    load_q = load_p * 0.4
    generators = pd.DataFrame({
        "name": ["G3"], "bus": [3], "p_min_mw": [0.0], "p_max_mw": [0.4], "q_min_mvar": [-0.2],
        "q_max_mvar": [0.2], "ramp_mw_per_h": [0.3], "cost_per_mwh": [90.0]}).set_index("name")
    pv_plants = pd.DataFrame({"name": ["PV2"], "bus": [2], "p_peak_mw": [1.2],
                              "cost_per_mwh": [0.0]}).set_index("name")
    pv_avail = pd.DataFrame({"PV2": [0.1, 0.9, 0.0]}, index=time)
    prices = pd.DataFrame({"upstream_per_mwh": [40.0, 60.0, 60.0],
                           "tariff_buy_per_mwh": [180.0, 240.0, 300.0],
                           "tariff_sell_per_mwh": [50.0, 50.0, 50.0]}, index=time)
    communities = []
    for name, bus, battery in (("A", 2, True), ("B", 3, False)):
        net, lv = _lv(f"tiny LV {name}")
        members = pd.DataFrame({"name": ["h1", "h2"], "bus": [lv[1], lv[2]]}).set_index("name")
        member_p = pd.DataFrame({"h1": [0.010, 0.008, 0.020], "h2": [0.012, 0.006, 0.025]},
                                index=time)
        pv = pd.DataFrame({"name": ["pv_h2"], "bus": [lv[2]], "p_peak_mw": [0.03]}
                          ).set_index("name")
        kwargs = {}
        if battery:
            kwargs["batteries"] = pd.DataFrame({
                "name": ["bat_h2"], "bus": [lv[2]], "e_max_mwh": [0.036], "e_min_mwh": [0.004],
                "e_init_mwh": [0.02], "p_ch_max_mw": [0.02], "p_dis_max_mw": [0.02],
                "eta_ch": [0.95], "eta_dis": [0.95]}).set_index("name")
        else:
            kwargs["shiftable"] = pd.DataFrame({
                "name": ["ev_h1"], "bus": [lv[1]], "p_mw": [0.007], "energy_mwh": [0.007],
                "window_start_h": [0.0], "window_end_h": [3.0]}).set_index("name")
        communities.append(Community(
            name=name, mv_bus=bus, net=net, members=members, member_p_mw=member_p,
            member_q_mvar=member_p * 0.3, pv=pv,
            pv_availability_pu=pd.DataFrame({"pv_h2": [0.1, 0.9, 0.0]}, index=time),
            **kwargs))
    case = Case(
        name="tiny", step_h=1.0, mv_net=mv,
        substation=Substation(p_import_max_mw=1.0, p_export_max_mw=0.05, s_max_mva=2.0),
        generators=generators, pv_plants=pv_plants, mv_load_p_mw=load_p, mv_load_q_mvar=load_q,
        pv_plant_availability_pu=pv_avail, prices=prices, communities=communities,
        battery_wear_per_mwh=2.0, curtailment_per_mwh=1.0, polygon_sides=4, horizon_h=3.0,
        notes={"about": "hand-made example of the case folder format; see docs/case_format.md"})
    return case.validate()


def tiny_case() -> Case:
    """Load the shipped ``tiny`` case folder."""
    return read_case_folder(FOLDER)


if __name__ == "__main__":  # pragma: no cover - regenerates the shipped folder
    print(save_case(build_tiny(), FOLDER))
