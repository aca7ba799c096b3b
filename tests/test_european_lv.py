"""Tests for the reduced IEEE European LV feeder and the series-bus reduction."""

import copy

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from mosaik_bilevel.cases.european_lv import reduce_series_buses, reduced_european_lv_feeder

TOL = 1e-9
PHASES = ("vm_a_pu", "vm_b_pu", "vm_c_pu")
# pandapower's own std-type transformer lacks the 3.x tap_dependency_table
pytestmark = pytest.mark.filterwarnings("ignore:tap_dependency_table:DeprecationWarning")


def _symmetric(net):
    """Replace asymmetric loads by symmetric loads with the same total p and q."""
    asym = net.asymmetric_load
    for row in asym.itertuples():
        pp.create_load(
            net,
            row.bus,
            p_mw=row.p_a_mw + row.p_b_mw + row.p_c_mw,
            q_mvar=row.q_a_mvar + row.q_b_mvar + row.q_c_mvar,
            name=row.name,
        )
    net.asymmetric_load = asym.iloc[0:0]
    return net


@pytest.fixture(scope="module")
def original():
    return pn.ieee_european_lv_asymmetric()


def test_reduced_feeder_structure(original):
    net = reduced_european_lv_feeder()
    assert len(net.bus) == 206
    assert np.isclose(net.bus.vn_kv, 0.416).sum() == 205  # stored as float32 by pandapower
    assert np.isclose(net.bus.vn_kv, 11.0).sum() == 1
    assert set(net.bus.index) <= set(original.bus.index)
    assert len(net.trafo) == 1 and len(net.ext_grid) == 1
    assert net.ext_grid.bus.iat[0] == net.trafo.hv_bus.iat[0]
    assert len(net.load) == 55 and net.asymmetric_load.empty
    assert net.f_hz == 50.0

    lines = net.line[net.line.in_service]
    assert len(lines) == 204
    graph = nx.Graph(zip(lines.from_bus, lines.to_bus, strict=True))
    assert nx.is_tree(graph)
    assert set(graph) == set(net.bus.index[net.bus.vn_kv < 1])
    assert net.trafo.lv_bus.iat[0] in graph

    asym = original.asymmetric_load
    p_orig = asym[["p_a_mw", "p_b_mw", "p_c_mw"]].to_numpy().sum()
    q_orig = asym[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].to_numpy().sum()
    assert net.load.p_mw.sum() == pytest.approx(p_orig, rel=1e-12)
    assert net.load.q_mvar.sum() == pytest.approx(q_orig, rel=1e-12)
    assert sorted(net.load.name) == sorted(asym.name)
    assert dict(zip(net.load.name, net.load.bus, strict=True)) == dict(
        zip(asym.name, asym.bus, strict=True)
    )

    unbalanced = reduced_european_lv_feeder(balanced=False)
    assert len(unbalanced.asymmetric_load) == 55 and unbalanced.load.empty


def test_reduced_feeder_returns_independent_copies():
    first = reduced_european_lv_feeder()
    first.load.p_mw *= 2.0
    first.bus.drop(first.bus.index[-1], inplace=True)
    second = reduced_european_lv_feeder()
    assert len(second.bus) == 206
    assert second.load.p_mw.sum() == pytest.approx(first.load.p_mw.sum() / 2.0)


def test_three_phase_power_flow_matches_original(original):
    full = copy.deepcopy(original)
    reduced = reduced_european_lv_feeder(balanced=False)
    # tight solver tolerance: the default (1e-8 MVA) leaves ~3e-10 pu of iteration noise
    pp.runpp_3ph(full, numba=False, tolerance_mva=1e-11)
    pp.runpp_3ph(reduced, numba=False, tolerance_mva=1e-11)
    kept = reduced.bus.index
    diff = (reduced.res_bus_3ph.loc[kept, PHASES] - full.res_bus_3ph.loc[kept, PHASES]).abs()
    assert diff.to_numpy().max() < TOL
    angles = [f"va_{ph}_degree" for ph in "abc"]
    dang = (reduced.res_bus_3ph.loc[kept, angles] - full.res_bus_3ph.loc[kept, angles]).abs()
    assert dang.to_numpy().max() < 1e-7
    # unbalance matters: the three phases differ markedly at the feeder end
    assert np.ptp(full.res_bus_3ph.loc[kept, PHASES].to_numpy(), axis=1).max() > 1e-3


def test_balanced_power_flow_matches_original(original):
    full = _symmetric(copy.deepcopy(original))
    reduced = reduced_european_lv_feeder()
    pp.runpp(full, numba=False, tolerance_mva=1e-11)
    pp.runpp(reduced, numba=False, tolerance_mva=1e-11)
    kept = reduced.bus.index
    cols = ["vm_pu", "va_degree"]
    diff = (reduced.res_bus.loc[kept, cols] - full.res_bus.loc[kept, cols]).abs()
    assert diff.vm_pu.max() < TOL
    assert diff.va_degree.max() < 1e-7
    assert reduced.res_ext_grid.p_mw.iat[0] == pytest.approx(full.res_ext_grid.p_mw.iat[0])


def _line(net, a, b, r, x, name, max_i_ka=0.3):
    return pp.create_line_from_parameters(
        net,
        a,
        b,
        length_km=0.1,
        r_ohm_per_km=r,
        x_ohm_per_km=x,
        c_nf_per_km=0.0,
        max_i_ka=max_i_ka,
        name=name,
        r0_ohm_per_km=3 * r,
        x0_ohm_per_km=3 * x,
        c0_nf_per_km=0.0,
    )


def test_reduce_series_buses_tiny_chain():
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 0.4, name=f"b{i}") for i in range(4)]
    pp.create_ext_grid(net, b[0])
    pp.create_sgen(net, b[1], p_mw=0.01)
    _line(net, b[0], b[1], 0.2, 0.08, "L01")
    _line(net, b[1], b[2], 0.3, 0.07, "L12", max_i_ka=0.2)
    _line(net, b[3], b[2], 0.4, 0.09, "L32")  # reversed orientation on purpose
    pp.create_load(net, b[3], p_mw=0.05, q_mvar=0.01)
    pp.runpp(net, numba=False)

    red = reduce_series_buses(net)
    assert list(red.bus.index) == [0, 1, 3]
    assert list(red.bus.name) == ["b0", "b1", "b3"]
    assert len(net.bus) == 4 and len(net.line) == 3  # input untouched
    assert list(red.line.index) == [0, 1]
    merged = red.line.loc[1]
    assert (merged.from_bus, merged.to_bus, merged["name"]) == (1, 3, "L12")
    assert merged.length_km == 1.0 and merged.std_type is None
    assert merged.r_ohm_per_km == pytest.approx(0.1 * (0.3 + 0.4))
    assert merged.x_ohm_per_km == pytest.approx(0.1 * (0.07 + 0.09))
    assert merged.r0_ohm_per_km == pytest.approx(0.3 * (0.3 + 0.4))
    assert merged.max_i_ka == 0.2
    assert red.res_bus.empty

    pp.runpp(red, numba=False)
    assert np.abs(red.res_bus.vm_pu - net.res_bus.vm_pu.loc[red.bus.index]).max() < TOL
    assert red.res_line.p_from_mw.loc[1] == pytest.approx(net.res_line.p_from_mw.loc[1])


def test_reduce_series_buses_chains_and_blockers():
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 0.4) for i in range(10)]
    pp.create_ext_grid(net, b[0])
    _line(net, b[0], b[1], 0.2, 0.08, "a")  # b1, b2, b3: a chain of joints
    _line(net, b[1], b[2], 0.2, 0.08, "b")
    _line(net, b[3], b[2], 0.2, 0.08, "c")
    _line(net, b[3], b[4], 0.2, 0.08, "d")
    _line(net, b[4], b[5], 0.2, 0.08, "e")  # b5 carries a switch -> kept
    pp.create_switch(net, b[5], 4, et="l")
    _line(net, b[5], b[6], 0.2, 0.08, "f")  # b6 joins an out-of-service line -> kept
    oos = _line(net, b[6], b[7], 0.2, 0.08, "g")
    net.line.at[oos, "in_service"] = False
    _line(net, b[6], b[8], 0.2, 0.08, "h")
    _line(net, b[8], b[9], 0.2, 0.08, "i")  # b9 is a dead end reached by two parallel lines
    _line(net, b[8], b[9], 0.2, 0.08, "j")
    pp.create_load(net, b[4], p_mw=0.02)
    pp.create_switch(net, b[4], 3, et="l")  # switch on line "d" at the far end of the chain
    pp.runpp(net, numba=False)

    red = reduce_series_buses(net)
    assert sorted(red.bus.index) == [0, 4, 5, 6, 7, 8, 9]
    chain = red.line.loc[0]
    assert (chain.from_bus, chain.to_bus) == (0, 4)
    assert chain.r_ohm_per_km == pytest.approx(4 * 0.02)
    assert set(red.line.index) == {0, 4, 5, 6, 7, 8, 9}
    assert set(red.switch.element) == {0, 4}  # switch on "d" now sits on the merged line
    pp.runpp(red, numba=False)
    assert np.abs(red.res_bus.vm_pu - net.res_bus.vm_pu.loc[red.bus.index]).max() < TOL
