"""A case folder from one's own networks: a 10 kV MV feeder and two Kerber LV grids.

Run ``python own_case.py my_case`` and then ``mosaik-bilevel solve --case my_case ...``
(docs/user_guide.md walks through it). Everything here is made up for the example; replace
the networks, devices and time series with your own.
"""

import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import yaml

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "my_case")
folder.mkdir(parents=True, exist_ok=True)
hours = pd.date_range("2016-06-01 00:00", periods=24, freq="h")
h = np.arange(24)


def series(path, columns: dict) -> str:
    """Write a time series (one column per element) and return its file name."""
    pd.DataFrame(columns, index=pd.Index(hours, name="time")).to_csv(folder / path)
    return path


# -- the MV network: a radial 10 kV cable feeder, substation at bus 0 ----------------------
mv = pp.create_empty_network()
buses = [pp.create_bus(mv, vn_kv=10.0, min_vm_pu=0.95, max_vm_pu=1.05) for _ in range(5)]
pp.create_ext_grid(mv, buses[0], vm_pu=1.0)
for a, b in pairwise(buses):
    pp.create_line(mv, a, b, length_km=1.5, std_type="NA2XS2Y 1x95 RM/25 12/20 kV")
pp.to_json(mv, str(folder / "mv_network.json"))
mv_load = {b: 0.3 + 0.2 * np.sin(np.pi * (h - 6) / 18).clip(0) for b in buses[1:]}
pv_shape = np.sin(np.pi * (h - 5) / 15).clip(0) ** 1.5  # a clear day, 05:00 to 20:00
pd.DataFrame([{"name": "G1", "bus": buses[2], "p_max_mw": 1.0, "q_min_mvar": -0.3,
               "q_max_mvar": 0.3, "ramp_mw_per_h": 0.5, "cost_per_mwh": 80.0}]
             ).to_csv(folder / "generators.csv", index=False)
pd.DataFrame([{"name": "PV1", "bus": buses[4], "p_peak_mw": 1.0, "cost_per_mwh": 0.0}]
             ).to_csv(folder / "pv_plants.csv", index=False)
price = 40.0 + 30.0 * ((h >= 17) & (h <= 21))
pd.DataFrame({"upstream_per_mwh": price, "tariff_buy_per_mwh": 250.0,
              "tariff_sell_per_mwh": 80.0}, index=pd.Index(hours, name="time")
             ).to_csv(folder / "prices.csv")

# -- two communities, each on its own Kerber LV grid (10/0.4 kV transformer) ---------------
communities = []
rng = np.random.default_rng(1)
for name, mv_bus in (("K1", buses[2]), ("K2", buses[4])):
    sub = Path("communities") / name
    (folder / sub).mkdir(parents=True, exist_ok=True)
    lv = pn.create_kerber_landnetz_kabel_1()
    pp.to_json(lv, str(folder / sub / "lv_network.json"))
    homes = lv.load.bus.to_numpy()  # one member per load bus of the Kerber grid
    members = [f"home{i}" for i in range(len(homes))]
    pd.DataFrame({"name": members, "bus": homes}).to_csv(folder / sub / "members.csv",
                                                         index=False)
    evening = 1.0 + 1.5 * np.exp(-((h - 19) ** 2) / 6.0)
    p = {m: 0.0008 * evening * rng.uniform(0.7, 1.3) for m in members}
    pv_homes = homes[::2]
    pd.DataFrame({"name": [f"pv{b}" for b in pv_homes], "bus": pv_homes,
                  "p_peak_mw": 0.006}).to_csv(folder / sub / "pv.csv", index=False)
    pd.DataFrame([{"name": "bat1", "bus": homes[1], "e_max_mwh": 0.01, "e_init_mwh": 0.005,
                   "p_ch_max_mw": 0.005, "p_dis_max_mw": 0.005}]
                 ).to_csv(folder / sub / "batteries.csv", index=False)
    pd.DataFrame([{"name": "washer", "bus": homes[0], "p_mw": 0.002, "energy_mwh": 0.004,
                   "window_start_h": 8, "window_end_h": 20}]
                 ).to_csv(folder / sub / "shiftable.csv", index=False)
    communities.append({
        "name": name, "mv_bus": int(mv_bus), "network": str(sub / "lv_network.json"),
        "members": str(sub / "members.csv"), "pv": str(sub / "pv.csv"),
        "batteries": str(sub / "batteries.csv"), "shiftable": str(sub / "shiftable.csv"),
        "timeseries": {
            "member_p_mw": series(str(sub / "member_p_mw.csv"), p),
            "member_q_mvar": series(str(sub / "member_q_mvar.csv"),
                                    {m: 0.2 * v for m, v in p.items()}),
            "pv_availability_pu": series(str(sub / "pv_availability_pu.csv"),
                                         {f"pv{b}": pv_shape for b in pv_homes})}})

case = {
    "name": "my_case", "step_minutes": 60, "horizon_hours": 24,
    "costs": {"battery_wear_per_mwh": 2.0, "curtailment_per_mwh": 1.0},
    "mv": {"network": "mv_network.json",
           "substation": {"p_import_max_mw": 3.0, "p_export_max_mw": 1.0, "s_max_mva": 4.0,
                          "vm_set_pu": 1.0},
           "generators": "generators.csv", "pv_plants": "pv_plants.csv",
           "timeseries": {
               "load_p_mw": series("mv_load_p_mw.csv", mv_load),
               "load_q_mvar": series("mv_load_q_mvar.csv",
                                     {b: 0.3 * v for b, v in mv_load.items()}),
               "pv_plant_availability_pu": series("pv_plant_availability_pu.csv",
                                                  {"PV1": pv_shape})}},
    "prices": "prices.csv",
    "communities": communities,
}
(folder / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
print(f"wrote the case folder {folder}")
