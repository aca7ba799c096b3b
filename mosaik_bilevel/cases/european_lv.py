"""The IEEE European LV Test Feeder reduced to its 206 electrically relevant buses.

pandapower ships the feeder as :func:`pandapower.networks.ieee_european_lv_asymmetric`
(907 buses, 905 lines, 55 single-phase customers). Most of its LV buses are mere
cable joints that connect exactly two line segments. Merging every such bus
(:func:`reduce_series_buses`) leaves 205 LV buses plus the 11 kV source bus: the
"European 206-bus LV feeder" returned by :func:`reduced_european_lv_feeder`.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache

import numpy as np
import pandapower as pp
import pandapower.networks as pn

__all__ = ["reduce_series_buses", "reduced_european_lv_feeder"]

#: Per-km line parameters that add up in series (scaled by ``length_km / parallel``).
_SERIES = ("r_ohm_per_km", "x_ohm_per_km", "r0_ohm_per_km", "x0_ohm_per_km")
#: Per-km shunt parameters that add up as lumped totals (scaled by ``length_km * parallel``).
_SHUNT = ("c_nf_per_km", "c0_nf_per_km", "g_us_per_km", "g0_us_per_km")
#: Columns through which elements of any table attach to buses.
_BUS_COLUMNS = ("bus", "from_bus", "to_bus", "hv_bus", "mv_bus", "lv_bus")


def _blocked_buses(net: pp.pandapowerNet) -> set[int]:
    """Buses with anything attached other than in-service lines."""
    blocked: set[int] = set(net.line.loc[~net.line.in_service, ["from_bus", "to_bus"]].values.flat)
    blocked |= set(net.bus.index[~net.bus.in_service])
    for name, table in net.items():
        if name in ("bus", "line") or name.startswith("res_") or not hasattr(table, "columns"):
            continue
        for col in _BUS_COLUMNS:
            if col in table.columns:
                blocked |= set(table[col].dropna().astype(int))
    sw, meas = net.switch, net.measurement
    blocked |= set(sw.element[sw.et == "b"].astype(int))
    blocked |= set(meas.element[meas.element_type == "bus"].astype(int))
    metered = net.line.loc[net.line.index.isin(meas.element[meas.element_type == "line"])]
    blocked |= set(metered[["from_bus", "to_bus"]].values.flat)
    return blocked


def _join_geo(geo1: object, geo2: object, flip1: bool, flip2: bool) -> str | None:
    """Concatenate two GeoJSON line strings, each flipped first if requested."""
    if not (isinstance(geo1, str) and isinstance(geo2, str)):
        return None
    c1, c2 = json.loads(geo1)["coordinates"], json.loads(geo2)["coordinates"]
    c1, c2 = c1[::-1] if flip1 else c1, c2[::-1] if flip2 else c2
    coords = c1 + (c2[1:] if c1[-1] == c2[0] else c2)
    return json.dumps({"coordinates": coords, "type": "LineString"})


def reduce_series_buses(net: pp.pandapowerNet) -> pp.pandapowerNet:
    """Eliminate every bus that merely joins two in-service lines in series.

    A bus is eliminated when exactly two in-service lines and nothing else (no load,
    generator, ext_grid, transformer, switch, measurement, out-of-service line, ...)
    are attached to it and the two lines lead to two different buses. The two lines
    become one line whose r, x, r0, x0, c, c0, g, g0 are the sums of the totals
    (``length_km = 1``, per-km values = totals, ``parallel = df = 1``,
    ``max_i_ka`` = the smaller ampacity, ``std_type = None``, name of the first
    line). Chains of such buses collapse into a single line. The reduction is exact
    for shunt-free lines (``c = g = 0``); otherwise the merged shunts are lumped.

    Parameters
    ----------
    net : pandapowerNet
        Network to reduce; it is not modified.

    Returns
    -------
    pandapowerNet
        Deep copy with the series buses and absorbed lines removed. Remaining buses
        keep their indices, names and geodata; result tables are cleared. Controllers
        and groups are copied as they are and are not re-indexed.
    """
    net = copy.deepcopy(net)
    line = net.line
    tot, ends, amp, geo, adjacent = _in_service_lines(line)
    blocked = _blocked_buses(net)
    absorbed, removed = _merge_series_pairs(adjacent, blocked, ends, tot, amp, geo)
    _rewrite_merged_lines(line, absorbed, ends, tot, amp, geo)
    _drop_removed(net, removed, absorbed)
    return net


def _in_service_lines(line) -> tuple[dict, dict, dict, dict, dict[int, list[int]]]:
    """The in-service lines' totals, ends, ampacities and geodata, and the lines at each bus.

    Returns ``tot`` (column -> line -> total series or shunt value), ``ends`` (line ->
    [from_bus, to_bus]), ``amp`` (line -> ampacity in kA), ``geo`` (line -> GeoJSON, empty
    without a ``geo`` column) and ``adjacent`` (bus -> lines).
    """
    on = line.index[line.in_service]
    length, par = line.length_km, line.parallel.astype(float)
    totals = {c: line[c] * length / par for c in _SERIES if c in line}
    totals |= {c: line[c] * length * par for c in _SHUNT if c in line}
    tot = {c: dict(v.loc[on]) for c, v in totals.items()}
    ends = {i: [f, t] for i, f, t in zip(on, line.from_bus[on], line.to_bus[on], strict=True)}
    amp = dict(line.max_i_ka[on] * line.df[on] * par[on])
    geo = dict(line.geo[on]) if "geo" in line else {}
    adjacent: dict[int, list[int]] = {}
    for i, (f, t) in ends.items():
        adjacent.setdefault(f, []).append(i)
        adjacent.setdefault(t, []).append(i)
    return tot, ends, amp, geo, adjacent


def _merge_series_pairs(adjacent: dict[int, list[int]], blocked: set[int], ends: dict,
                        tot: dict, amp: dict, geo: dict) -> tuple[dict[int, int], list[int]]:
    """Merge the two lines at every series bus, updating ``ends``, ``tot``, ``amp``, ``geo``
    and ``adjacent`` in place.

    Returns the absorbed lines (absorbed line -> line it was merged into) and the removed
    buses.
    """
    absorbed: dict[int, int] = {}  # absorbed line -> line it was merged into
    removed: list[int] = []
    for bus, lines in adjacent.items():
        if bus in blocked or len(lines) != 2 or lines[0] == lines[1]:
            continue
        l1, l2 = lines
        far1, far2 = (next(b for b in ends[i] if b != bus) for i in lines)
        if far1 == far2:
            continue  # merging would create a self-loop
        if geo:
            geo[l1] = _join_geo(geo[l1], geo[l2], ends[l1][0] == bus, ends[l2][1] == bus)
        for col in tot:
            tot[col][l1] += tot[col][l2]
        amp[l1] = min(amp[l1], amp[l2])
        ends[l1] = [far1, far2]
        adjacent[far2][adjacent[far2].index(l2)] = l1
        absorbed[l2] = l1
        del ends[l2]
        removed.append(bus)
    return absorbed, removed


def _rewrite_merged_lines(line, absorbed: dict[int, int], ends: dict, tot: dict, amp: dict,
                          geo: dict) -> None:
    """Drop the absorbed lines and write the merged ones' ends and parameters, in place;
    ``absorbed`` is resolved to the surviving lines."""
    for i in absorbed:  # resolve chains of absorptions to the surviving line
        while absorbed[i] in absorbed:
            absorbed[i] = absorbed[absorbed[i]]
    merged = sorted(set(absorbed.values()))
    line.drop(index=list(absorbed), inplace=True)
    for k, col in enumerate(("from_bus", "to_bus")):
        line.loc[merged, col] = np.array([ends[i][k] for i in merged], dtype=line[col].dtype)
    for col, values in tot.items():
        line[col] = line[col].astype(float)
        line.loc[merged, col] = [values[i] for i in merged]
    line.loc[merged, "max_i_ka"] = [amp[i] for i in merged]
    line.loc[merged, ["length_km", "parallel", "df"]] = [1.0, 1, 1.0]
    line.loc[merged, "std_type"] = None
    if geo:
        line.loc[merged, "geo"] = [geo[i] for i in merged]


def _drop_removed(net: pp.pandapowerNet, removed: list[int], absorbed: dict[int, int]
                  ) -> None:
    """Drop the removed buses, point line switches at the surviving lines and clear the
    results, in place."""
    net.bus.drop(index=removed, inplace=True)
    on_line = net.switch.et == "l"
    net.switch.loc[on_line, "element"] = net.switch.element[on_line].replace(absorbed)
    for name, gone in (("bus_geodata", removed), ("line_geodata", list(absorbed))):
        if name in net:  # legacy geodata tables
            net[name] = net[name].drop(index=gone, errors="ignore")
    for name in [k for k in net if k.startswith("res_")]:
        net[name] = net[name].iloc[0:0]
    net.converged = False


@lru_cache(maxsize=2)
def _build_feeder(balanced: bool) -> pp.pandapowerNet:
    """Build the reduced feeder once per process; callers must copy the result."""
    net = reduce_series_buses(pn.ieee_european_lv_asymmetric())
    net.f_hz = 50.0
    if balanced:
        asym = net.asymmetric_load
        pp.create_loads(
            net,
            asym.bus.to_numpy(),
            p_mw=asym[["p_a_mw", "p_b_mw", "p_c_mw"]].sum(axis=1).to_numpy(),
            q_mvar=asym[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].sum(axis=1).to_numpy(),
            name=asym.name.to_numpy(),
            in_service=asym.in_service.to_numpy(),
        )
        net.asymmetric_load = asym.iloc[0:0]
    return net


def reduced_european_lv_feeder(balanced: bool = True) -> pp.pandapowerNet:
    """The IEEE European LV Test Feeder reduced to 206 buses.

    Parameters
    ----------
    balanced : bool, default True
        If True, every single-phase ``asymmetric_load`` is replaced by one symmetric
        ``load`` at the same bus carrying its total p and q (same name). If False, the
        55 asymmetric loads are kept, for use with :func:`pandapower.runpp_3ph`.

    Returns
    -------
    pandapowerNet
        A fresh deep copy (safe to mutate) of the in-process cached feeder: 205 buses
        at 0.416 kV plus the 11 kV source bus with the ext_grid, one 0.8 MVA
        transformer, 204 radial lines and 55 customers; ``f_hz = 50``.
    """
    return copy.deepcopy(_build_feeder(bool(balanced)))
