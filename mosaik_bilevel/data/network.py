"""Radial network data from a pandapower net, in the form LinDistFlow needs.

A :class:`RadialNetwork` lists the buses in breadth-first order from the root and one branch
per non-root bus (the branch from its parent), with series impedances in per unit on a
1 MVA base (so power in MW enters the LinDistFlow voltage equation directly) and thermal
ratings in MVA. Lines and two-winding transformers are branches; out-of-service elements and
elements behind an open switch are left out. Anything else that would make the network
non-radial or change its impedances is rejected with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import CaseError
from .guard import MAX_MAGNITUDE

S_BASE_MVA = 1.0
#: The voltage band of a bus that declares none (``min_vm_pu``/``max_vm_pu`` missing): ±10 %
#: of nominal, the EN 50160 band, at MV and LV alike. The clearing's LinDistFlow and the AC
#: check both take it from :meth:`RadialNetwork.voltage_band`.
DEFAULT_VM_MIN_PU, DEFAULT_VM_MAX_PU = 0.90, 1.10
#: An in-service transformer's rated voltages may differ from the nominal voltages of its
#: buses (and an LV feeder's transformer from its MV bus's) by at most this fraction.
VOLTAGE_MISMATCH = 0.10
_UNSUPPORTED = ("trafo3w", "impedance", "dcline", "xward", "ward", "tcsc", "ssc", "svc",
                "vsc")


@dataclass(frozen=True)
class RadialNetwork:
    """A radial network rooted at one bus.

    Attributes
    ----------
    buses
        pandapower bus indices, breadth-first from the root (``buses[0]`` is the root).
    branches
        One row per non-root bus ``to_bus`` (same order as ``buses[1:]``), with columns
        ``from_bus``, ``to_bus``, ``r_pu``, ``x_pu`` (1 MVA base), ``s_max_mva``,
        ``element`` ('line' or 'trafo') and ``element_index``.
    vn_kv, vm_min_pu, vm_max_pu
        Per bus (aligned with ``buses``).
    """

    buses: pd.Index
    branches: pd.DataFrame
    vn_kv: np.ndarray
    vm_min_pu: np.ndarray
    vm_max_pu: np.ndarray

    @property
    def root(self) -> int:
        return int(self.buses[0])

    @property
    def n_buses(self) -> int:
        return len(self.buses)

    @property
    def n_branches(self) -> int:
        return len(self.branches)

    @cached_property
    def position(self) -> pd.Series:
        """Position in :attr:`buses` of each pandapower bus index."""
        return pd.Series(np.arange(self.n_buses), index=self.buses)

    @cached_property
    def parent_position(self) -> np.ndarray:
        """For each branch, the position of its parent (from) bus."""
        return self.position.loc[self.branches["from_bus"]].to_numpy()

    @cached_property
    def child_position(self) -> np.ndarray:
        """For each branch, the position of its child (to) bus (= branch number + 1)."""
        return self.position.loc[self.branches["to_bus"]].to_numpy()

    def voltage_band(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest voltage (pu) per bus: its own, or the default band
        (:data:`DEFAULT_VM_MIN_PU`, :data:`DEFAULT_VM_MAX_PU`) where it declares none."""
        return (np.where(np.isnan(self.vm_min_pu), DEFAULT_VM_MIN_PU, self.vm_min_pu),
                np.where(np.isnan(self.vm_max_pu), DEFAULT_VM_MAX_PU, self.vm_max_pu))

    @cached_property
    def common_path_impedance(self) -> tuple[np.ndarray, np.ndarray]:
        """Resistance and reactance (pu) of the path two buses share, bus × bus.

        Under LinDistFlow a withdrawal of 1 MW at bus ``k`` lowers ``w`` at bus ``j`` by
        ``2 R[j, k]`` (and 1 Mvar by ``2 X[j, k]``).
        """
        m = self.path_matrix
        r = self.branches["r_pu"].to_numpy()
        x = self.branches["x_pu"].to_numpy()
        return ((m.T @ m.multiply(r[:, None])).toarray(),
                (m.T @ m.multiply(x[:, None])).toarray())

    @cached_property
    def path_matrix(self) -> sp.csr_matrix:
        """``M[b, k] = 1`` when branch ``b`` lies on the path from the root to bus ``k``.

        The flow on branch ``b`` (towards the leaves) is ``M[b] @ withdrawals``, and the
        voltage drop at bus ``k`` sums branch terms over column ``k``.
        """
        rows, cols = [], []
        ancestors: list[list[int]] = [[] for _ in range(self.n_buses)]
        for b, (parent, child) in enumerate(
                zip(self.parent_position, self.child_position, strict=True)):
            # breadth-first order: a parent's list is complete before its children's
            ancestors[child] = [*ancestors[parent], b]
        for k, branch_list in enumerate(ancestors):
            rows.extend(branch_list)
            cols.extend([k] * len(branch_list))
        data = np.ones(len(rows))
        return sp.csr_matrix((data, (rows, cols)), shape=(self.n_branches, self.n_buses))


def radial_network(
    net,
    *,
    root: int | None = None,
    exclude: tuple[tuple[str, int], ...] = (),
    ignore_buses: tuple[int, ...] = (),
    source: str = "network",
) -> RadialNetwork:
    """Extract the radial network of ``net`` below ``root`` (default: the ext_grid bus).

    Parameters
    ----------
    net
        A pandapower network.
    root
        Bus to root the tree at (default: the bus of the single in-service ext_grid).
    exclude
        Branches ``(element, index)`` to leave out, e.g. an LV feeder's own transformer when
        the tree is rooted at its LV terminal.
    ignore_buses
        Buses that need not be reached from the root (e.g. that transformer's MV terminal).
    source
        Name of the file the network came from, for error messages.
    """
    _check_supported(net, source)
    _check_values(net, source)
    root = _root_bus(net, root, source)
    open_line, open_trafo = _open_switches(net, source)
    in_service_bus = set(net.bus.index[net.bus.in_service])
    edges = [*_line_edges(net, in_service_bus, open_line),
             *_trafo_edges(net, in_service_bus, open_trafo)]
    adjacency = _adjacency(edges, exclude)
    order, seen, branch_rows = _breadth_first(root, edges, adjacency, source)
    _check_connected(in_service_bus - seen - set(ignore_buses), root, source)
    return _assemble(net, order, branch_rows)


def _check_supported(net, source: str) -> None:
    """Reject in-service elements LinDistFlow cannot model (:data:`_UNSUPPORTED`)."""
    for table in _UNSUPPORTED:
        if table in net and len(net[table]) and net[table]["in_service"].any():
            raise CaseError(source, table, "element type not supported by LinDistFlow")


#: Per table, the columns of in-service elements (all buses) that must be numbers, and their
#: range ``(column, lowest, lowest is allowed, highest)``; missing columns are pandapower's
#: business. A branch's impedance and rating come from these, the AC check's too.
_VALUE_RULES = {
    "bus": (("vn_kv", 0.0, False, np.inf),),
    "line": (("from_bus", 0.0, True, np.inf), ("to_bus", 0.0, True, np.inf),
             ("length_km", 0.0, False, np.inf), ("r_ohm_per_km", 0.0, True, np.inf),
             ("x_ohm_per_km", 0.0, True, np.inf), ("c_nf_per_km", 0.0, True, np.inf),
             ("max_i_ka", 0.0, False, np.inf), ("parallel", 1.0, True, np.inf)),
    "trafo": (("hv_bus", 0.0, True, np.inf), ("lv_bus", 0.0, True, np.inf),
              ("sn_mva", 0.0, False, np.inf), ("vn_hv_kv", 0.0, False, np.inf),
              ("vn_lv_kv", 0.0, False, np.inf), ("vk_percent", 0.0, False, 100.0),
              ("vkr_percent", 0.0, True, 100.0), ("parallel", 1.0, True, np.inf)),
    "ext_grid": (("bus", 0.0, True, np.inf),),
}
#: The infinite values a column may hold (an unrated line: ``max_i_ka`` inf).
_MAY_BE_INFINITE = {("line", "max_i_ka")}
#: Columns that hold whole numbers (bus indices, parallel systems).
_WHOLE = {"from_bus", "to_bus", "hv_bus", "lv_bus", "bus", "parallel"}


def _check_values(net, source: str) -> None:
    """Refuse in-service elements whose numbers are missing, not finite or out of range:
    a negative length or resistance, a zero rating, a transformer of 0 MVA."""
    for table, rules in _VALUE_RULES.items():
        frame = net[table]
        if table != "bus" and "in_service" in frame:
            frame = frame[frame["in_service"].fillna(False).astype(bool)]
        for column, low, low_ok, high in rules:
            if column not in frame or not len(frame):
                continue
            values = pd.to_numeric(frame[column], errors="coerce").astype(float)
            finite = np.isfinite(values) | (
                np.isinf(values) & (values > 0) & ((table, column) in _MAY_BE_INFINITE))
            ok = finite & ((values >= low) if low_ok else (values > low)) & (values <= high)
            ok &= ~np.isfinite(values) | (values <= MAX_MAGNITUDE)
            if column in _WHOLE:
                ok &= (values % 1 == 0)
            if not ok.all():
                row = values.index[~ok.to_numpy()][0]
                rng = f"{'[' if low_ok else '('}{low:g}, {min(high, MAX_MAGNITUDE):g}]"
                kind = "a whole number" if column in _WHOLE else "a number"
                raise CaseError(source, f"{table} {row}, field '{column}'",
                                f"{_show(frame[column].at[row])} is not {kind} in {rng}")
    _check_branch_values(net, source)


def _check_branch_values(net, source: str) -> None:
    """Cross-column rules: a line has some impedance, a transformer's ``vkr_percent`` does
    not exceed its ``vk_percent``, ``vn_*_kv`` match its buses' nominal voltages (within
    :data:`VOLTAGE_MISMATCH`), the buses' voltage bands are ordered."""
    line = net.line[net.line["in_service"].fillna(False).astype(bool)] if len(
        net.line) else net.line
    if len(line):
        no_z = (line.r_ohm_per_km.astype(float) + line.x_ohm_per_km.astype(float)) <= 0
        if no_z.any():
            raise CaseError(source, f"line {line.index[no_z.to_numpy()][0]}, field "
                                    f"'r_ohm_per_km'", "a line needs r_ohm_per_km or "
                                                       "x_ohm_per_km > 0")
    trafo = net.trafo[net.trafo["in_service"].fillna(False).astype(bool)] if len(
        net.trafo) else net.trafo
    for idx, tr in trafo.iterrows():
        if float(tr.vkr_percent) > float(tr.vk_percent):
            raise CaseError(source, f"trafo {idx}, field 'vkr_percent'",
                            "exceeds vk_percent")
        for side in ("hv", "lv"):
            bus = int(tr[f"{side}_bus"])
            if bus not in net.bus.index:
                continue
            rated, nominal = float(tr[f"vn_{side}_kv"]), float(net.bus.vn_kv.at[bus])
            if not abs(rated / nominal - 1.0) <= VOLTAGE_MISMATCH:
                raise CaseError(source, f"trafo {idx}, field 'vn_{side}_kv'",
                                f"{rated:g} kV does not match the {nominal:g} kV of its "
                                f"{side.upper()} bus {bus} (at most "
                                f"{VOLTAGE_MISMATCH:.0%} apart)")
    for column in ("min_vm_pu", "max_vm_pu"):
        if column in net.bus:
            values = pd.to_numeric(net.bus[column], errors="coerce")
            bad = values.notna() & ~((values > 0) & (values <= 2.0))
            if bad.any():
                row = values.index[bad.to_numpy()][0]
                raise CaseError(source, f"bus {row}, field '{column}'",
                                f"{_show(net.bus[column].at[row])} is not in (0, 2] pu")
    if {"min_vm_pu", "max_vm_pu"} <= set(net.bus.columns):
        bad = net.bus.min_vm_pu.astype(float) > net.bus.max_vm_pu.astype(float)
        if bad.any():
            raise CaseError(source, f"bus {net.bus.index[bad.to_numpy()][0]}, field "
                                    f"'min_vm_pu'", "exceeds max_vm_pu")


def _show(value) -> str:
    """A table's value as written: numbers plainly, anything else quoted (40 characters)."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return f"{float(value):g}"
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= 40 else f"{text[:37]}..."


def _root_bus(net, root: int | None, source: str) -> int:
    """The root bus: ``root`` if given, else the bus of the single in-service ext_grid."""
    if root is None:
        eg = net.ext_grid[net.ext_grid.in_service]
        if len(eg) != 1:
            raise CaseError(source, "ext_grid", f"needs exactly one in-service ext_grid, "
                                                 f"found {len(eg)}")
        root = int(eg.bus.iloc[0])
    if root not in net.bus.index:
        raise CaseError(source, "bus", f"root bus {root} does not exist")
    return root


def _open_switches(net, source: str) -> tuple[set, set]:
    """Lines and transformers behind an open switch; rejects closed bus-bus switches."""
    open_line, open_trafo = set(), set()
    if "switch" in net and len(net.switch):
        sw = net.switch
        if ((sw.et == "b") & sw.closed).any():
            raise CaseError(source, "switch", "closed bus-bus switches are not supported: "
                                              "fuse the buses first "
                                              "(pandapower.toolbox.fuse_buses)")
        open_line = set(sw.element[(sw.et == "l") & ~sw.closed].astype(int))
        open_trafo = set(sw.element[(sw.et == "t") & ~sw.closed].astype(int))
    return open_line, open_trafo


def _line_edges(net, in_service_bus: set, open_line: set) -> list[tuple]:
    """Edges ``(bus_a, bus_b, r_pu, x_pu, s_max, 'line', index)`` of the connected lines."""
    edges = []
    for idx, line in net.line.iterrows():
        if not line.in_service or idx in open_line:
            continue
        fb, tb = int(line.from_bus), int(line.to_bus)
        if fb not in in_service_bus or tb not in in_service_bus:
            continue
        vn = float(net.bus.vn_kv.at[fb])
        par = float(line.parallel)
        r_ohm = line.r_ohm_per_km * line.length_km / par
        x_ohm = line.x_ohm_per_km * line.length_km / par
        z_base = vn ** 2 / S_BASE_MVA
        s_max = np.sqrt(3.0) * vn * line.max_i_ka * par * float(line.get("df", 1.0))
        edges.append((fb, tb, r_ohm / z_base, x_ohm / z_base, s_max, "line", int(idx)))
    return edges


def _trafo_edges(net, in_service_bus: set, open_trafo: set) -> list[tuple]:
    """Edges ``(hv_bus, lv_bus, r_pu, x_pu, s_max, 'trafo', index)`` of the connected
    two-winding transformers."""
    edges = []
    for idx, tr in net.trafo.iterrows():
        if not tr.in_service or idx in open_trafo:
            continue
        hv, lv = int(tr.hv_bus), int(tr.lv_bus)
        if hv not in in_service_bus or lv not in in_service_bus:
            continue
        par = float(tr.parallel)
        z = tr.vk_percent / 100.0 * S_BASE_MVA / tr.sn_mva / par
        r = tr.vkr_percent / 100.0 * S_BASE_MVA / tr.sn_mva / par
        x = np.sqrt(max(z ** 2 - r ** 2, 0.0))
        edges.append((hv, lv, r, x, float(tr.sn_mva) * par, "trafo", int(idx)))
    return edges


def _adjacency(edges: list[tuple], exclude: tuple[tuple[str, int], ...]
               ) -> dict[int, list[int]]:
    """Edge numbers at each bus, leaving out the branches in ``exclude``."""
    adjacency: dict[int, list[int]] = {}
    for e, (a, b, *_rest) in enumerate(edges):
        if (edges[e][5], edges[e][6]) in exclude:
            continue
        adjacency.setdefault(a, []).append(e)
        adjacency.setdefault(b, []).append(e)
    return adjacency


def _breadth_first(root: int, edges: list[tuple], adjacency: dict[int, list[int]],
                   source: str) -> tuple[list[int], set[int], list[tuple]]:
    """Walk the tree from ``root``: bus order, buses reached and one branch row per non-root
    bus; a loop is an error."""
    order, seen, used, branch_rows = [root], {root}, set(), []
    head = 0
    while head < len(order):
        bus = order[head]
        head += 1
        for e in adjacency.get(bus, []):
            if e in used:
                continue
            used.add(e)
            a, b, r, x, s_max, element, index = edges[e]
            other = b if a == bus else a
            if other in seen:
                raise CaseError(source, element,
                                f"the in-service network is not radial: {element} {index} "
                                f"closes a loop at bus {other}")
            seen.add(other)
            order.append(other)
            branch_rows.append((bus, other, r, x, s_max, element, index))
    return order, seen, branch_rows


def _check_connected(unreached: set[int], root: int, source: str) -> None:
    """Reject in-service buses the walk from the root did not reach."""
    if unreached:
        sample = sorted(unreached)[:5]
        raise CaseError(source, "bus", f"{len(unreached)} in-service buses are not connected "
                                       f"to the root bus {root}, e.g. {sample}")


def _assemble(net, order: list[int], branch_rows: list[tuple]) -> RadialNetwork:
    """The :class:`RadialNetwork` of the walked buses and branches."""
    branches = pd.DataFrame(
        branch_rows,
        columns=["from_bus", "to_bus", "r_pu", "x_pu", "s_max_mva", "element",
                 "element_index"],
    )
    buses = pd.Index(order, name="bus")
    bus_table = net.bus.loc[order]
    vmin = bus_table.get("min_vm_pu", pd.Series(np.nan, index=bus_table.index))
    vmax = bus_table.get("max_vm_pu", pd.Series(np.nan, index=bus_table.index))
    return RadialNetwork(
        buses=buses,
        branches=branches,
        vn_kv=bus_table.vn_kv.to_numpy(dtype=float),
        vm_min_pu=vmin.to_numpy(dtype=float),
        vm_max_pu=vmax.to_numpy(dtype=float),
    )
