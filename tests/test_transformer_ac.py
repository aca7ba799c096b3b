"""The MV/LV transformer models in the AC network, checked against pandapower itself.

``regulated``: pandapower's continuous tap controller holds the LV root at ``vm_set_pu`` within
the tap range (and stops at its ends); ``fixed``: the tap stays at the data's position and the
LV root follows the MV bus as :meth:`TransformerLink.lv_voltage_sq` says, up to the one term the
linearisation drops. All on the paper case (six 0.8 MVA transformers, taps ±2 × 2.5 %) at a
period of its day, loads set as the members' demand net of rooftop PV.
"""

import copy
import dataclasses
import warnings

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.operation import ac_network
from mosaik_bilevel.operation.ac_network import ACNetwork

#: Periods of the paper day: night (light import), noon (PV export ~0.09 MW per feeder) and
#: the evening peak.
HOURS = (3, 12, 19)


@pytest.fixture(scope="module")
def paper():
    return load_case("paper")


def _set_period(ac: ACNetwork, case, t) -> None:
    """The MV loads of period ``t`` (units idle) and each feeder's members' demand net of
    their rooftop PV at its forecast."""
    ac.set_mv(case.mv_load_p_mw.loc[t], case.mv_load_q_mvar.loc[t], {}, {}, {})
    for c in case.communities:
        bus = c.members["bus"].reindex(c.member_p_mw.columns).to_numpy()
        p_mw = c.member_p_mw.loc[t].groupby(bus).sum()
        q_mvar = c.member_q_mvar.loc[t].groupby(bus).sum()
        if len(c.pv):
            pv_bus = c.pv["bus"].reindex(c.pv_available_mw.columns).to_numpy()
            p_mw = p_mw.sub(c.pv_available_mw.loc[t].groupby(pv_bus).sum(), fill_value=0.0)
        ac.set_feeder(c.name, p_mw, q_mvar)


def _measured(ac: ACNetwork, step, case):
    """Per community: squared AC MV voltage, the transformer's flow at its MV terminal."""
    res = ac.net.res_trafo.loc[ac.trafo_index.to_numpy()]
    return pd.DataFrame({
        "w_mv": [step.mv_vm_pu.loc[c.mv_bus] ** 2 for c in case.communities],
        "p_mw": res.p_hv_mw.to_numpy(), "q_mvar": res.q_hv_mvar.to_numpy()},
        index=ac.trafo_index.index)


def _plain_lv_root(ac: ACNetwork, taps: pd.Series) -> pd.Series:
    """LV root voltages of a copy of the net with the given taps, by a plain power flow
    (no controller, from scratch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = copy.deepcopy(ac.net)
    net.trafo.loc[ac.trafo_index.loc[taps.index].to_numpy(), "tap_pos"] = taps.to_numpy()
    pp.runpp(net, init="dc", max_iteration=30)
    roots = net.trafo.lv_bus.loc[ac.trafo_index.to_numpy()].to_numpy()
    return pd.Series(net.res_bus.vm_pu.loc[roots].to_numpy(), index=ac.trafo_index.index)


@pytest.mark.parametrize("hour", HOURS)
def test_regulated_holds_the_lv_root_at_its_set_point(paper, hour):
    """With the needed taps in range (substation at 1.03 pu), every LV root sits at
    ``vm_set_pu``, a plain power flow at the reported continuous taps agrees, and the taps are
    what the linearised link implies at the measured MV voltage and flow."""
    case = paper.with_transformer_model("regulated")
    ac = ACNetwork(case)
    ac.net.ext_grid["vm_pu"] = 1.03
    _set_period(ac, case, case.timeline[hour])
    step = ac.run()
    assert step.converged, step.message
    vm_set = pd.Series({c.name: c.vm_set_pu for c in case.communities})
    assert np.abs(step.lv_root_vm_pu - vm_set).max() < 1e-4
    assert step.taps_at_limit == 0
    # the taps are continuous, inside the range and no longer the data's
    assert ((step.tap_pos > -2) & (step.tap_pos < 2)).all()
    assert (step.tap_pos != np.round(step.tap_pos)).all()
    # consistency: the same taps in a plain power flow give the same LV roots
    plain = _plain_lv_root(ac, step.tap_pos)
    assert np.abs(plain - step.lv_root_vm_pu).max() < 1e-7
    assert np.abs(plain - vm_set).max() < 1e-4
    # the linearised link's tap at the measured MV voltage and flow: measured within 5e-4
    # steps; the link drops |z|²S²/(2V) (≤ 1.2e-5 pu at the noon export) and the controller
    # stops within 1e-5 pu, each worth ≤ 5e-4 steps at 2.5 % a step: bound 5e-3 steps
    m = _measured(ac, step, case)
    implied = pd.Series({c.name: float(c.transformer_link.implied_tap(
        m.at[c.name, "w_mv"], m.at[c.name, "p_mw"], m.at[c.name, "q_mvar"], c.vm_set_pu))
        for c in case.communities})
    assert np.abs(implied - step.tap_pos).max() < 5e-3
    summary = step.summary()
    assert summary["taps_at_limit"] == 0
    assert summary["lv_root_vm_min_pu"] == pytest.approx(step.lv_root_vm_pu.min())
    assert summary["lv_root_vm_max_pu"] == pytest.approx(step.lv_root_vm_pu.max())
    assert isinstance(summary["lv_root_vm_min_pu"], float)


@pytest.mark.parametrize(("vm_sub_pu", "limit"), [(0.95, -2.0), (1.1, 2.0)])
def test_regulated_stops_at_the_end_of_its_tap_range(paper, vm_sub_pu, limit):
    """A substation voltage no tap in range can compensate: every tap sits at the range's
    end, is counted, and the LV root is what a plain power flow gives at that tap."""
    case = paper.with_transformer_model("regulated")
    ac = ACNetwork(case)
    ac.net.ext_grid["vm_pu"] = vm_sub_pu
    _set_period(ac, case, case.timeline[3])
    step = ac.run()
    assert step.converged, step.message
    assert (step.tap_pos == limit).all()
    miss = step.lv_root_vm_pu - 1.0
    assert ((miss < -1e-3) if limit < 0 else (miss > 1e-3)).all()
    assert step.taps_at_limit == len(case.communities) == step.summary()["taps_at_limit"]
    # the needed taps lie beyond the range
    m = _measured(ac, step, case)
    for c in case.communities:
        need = c.transformer_link.implied_tap(m.at[c.name, "w_mv"], m.at[c.name, "p_mw"],
                                              m.at[c.name, "q_mvar"], c.vm_set_pu)
        assert (need < limit) if limit < 0 else (need > limit)
    plain = _plain_lv_root(ac, step.tap_pos)
    assert np.abs(plain - step.lv_root_vm_pu).max() < 1e-7


def test_fixed_taps_stay_and_regulated_ones_move_in_a_mixed_case(paper):
    """Only the regulated community gets a tap controller; the fixed ones keep the data's
    taps; ``restart`` puts a moved tap back."""
    regulated = paper.communities[2].name
    case = dataclasses.replace(paper, communities=[
        dataclasses.replace(c, transformer_model="regulated") if c.name == regulated else c
        for c in paper.communities])
    data_taps = pd.Series({c.name: c.transformer_link.tap_pos for c in case.communities})
    ac = ACNetwork(case)
    assert list(ac.controlled) == [regulated]
    _set_period(ac, case, case.timeline[12])
    step = ac.run()
    assert step.converged, step.message
    fixed = data_taps.index.drop(regulated)
    assert (step.tap_pos.loc[fixed] == data_taps.loc[fixed]).all()
    assert step.tap_pos.loc[regulated] != data_taps.loc[regulated]
    assert abs(step.lv_root_vm_pu.loc[regulated] - 1.0) < 1e-4
    # fixed roots miss the set-point freely; they are never counted
    assert step.taps_at_limit == 0
    ac.restart()
    taps = ac.net.trafo.tap_pos.loc[ac.trafo_index.to_numpy()].to_numpy()
    assert np.array_equal(taps, data_taps.to_numpy())
    again = ac.run()
    assert again.converged
    assert again.tap_pos.loc[regulated] == pytest.approx(step.tap_pos.loc[regulated], abs=1e-3)
    # a fixed-only case carries no controller and runs as before
    assert len(ACNetwork(paper).net.controller) == 0


@pytest.mark.parametrize("hour", HOURS)
def test_fixed_lv_root_follows_the_linearised_link(paper, hour):
    """For taps −2..2, the AC LV root matches ``sqrt(lv_voltage_sq)`` at the measured MV
    voltage and flow. The link drops exactly |z|²S²n²/w_mv (squared pu) of the series
    impedance (no magnetising branch in these transformers): at the paper's own flows
    (≤ 0.1 MW) the error is ≤ 1.5e-5 pu; with 0.6 MW + 0.18 MVAr more at each root (~105 %
    loading) it is 1.0e-3–1.4e-3 pu; bound 2e-3 pu."""
    case = paper
    ac = ACNetwork(case)
    roots = ac.net.trafo.lv_bus.loc[ac.trafo_index.to_numpy()].to_numpy()
    extra = pp.create_loads(ac.net, roots, p_mw=0.0, q_mvar=0.0)  # before the first run
    _set_period(ac, case, case.timeline[hour])
    links = {c.name: c.transformer_link for c in case.communities}
    errors = {}
    for p_mw, q_mvar in ((0.0, 0.0), (0.6, 0.18)):
        ac.net.load.loc[extra, "p_mw"] = p_mw
        ac.net.load.loc[extra, "q_mvar"] = q_mvar
        for tap in (-2, -1, 0, 1, 2):
            ac.net.trafo.loc[ac.trafo_index.to_numpy(), "tap_pos"] = float(tap)
            step = ac.run()
            assert step.converged, step.message
            assert (step.tap_pos == tap).all()
            m = _measured(ac, step, case)
            for name, row in m.iterrows():
                link = links[name]
                w_lin = link.lv_voltage_sq(row.w_mv, row.p_mw, row.q_mvar, tap)
                vm_ac = step.lv_root_vm_pu.loc[name]
                errors[p_mw, tap, name] = np.sqrt(w_lin) - vm_ac
                # the dropped term, exactly
                dropped = ((link.r_pu ** 2 + link.x_pu ** 2)
                           * (row.p_mw ** 2 + row.q_mvar ** 2) * link.ratio(tap) ** 2 / row.w_mv)
                assert vm_ac ** 2 - w_lin == pytest.approx(dropped, rel=1e-3, abs=1e-9)
    errors = pd.Series(errors)
    assert (errors <= 0).all()  # the linearisation drops a positive term
    assert errors.loc[0.0].abs().max() < 2e-5
    assert 5e-4 < errors.loc[0.6].abs().max() < 2e-3


def test_a_tap_control_loop_that_does_not_converge_is_an_outcome(paper, monkeypatch):
    case = paper.with_transformer_model("regulated")
    ac = ACNetwork(case)
    _set_period(ac, case, case.timeline[19])
    monkeypatch.setattr(ac_network, "TAP_MAX_ITER", 0)
    step = ac.run()
    assert not step.converged and "tap control did not converge" in step.message
    assert step.summary()["taps_at_limit"] == 0 and step.summary()["lv_root_vm_min_pu"] is None
    data_taps = [c.transformer_link.tap_pos for c in case.communities]
    assert np.array_equal(ac.net.trafo.tap_pos.loc[ac.trafo_index.to_numpy()], data_taps)
    monkeypatch.setattr(ac_network, "TAP_MAX_ITER", 30)
    assert ac.run().converged
    # a power flow that fails inside the loop too
    for c in case.communities:
        ac.set_feeder(c.name, pd.Series(5.0, index=ac.lv_load_index[c.name].index), {})
    step = ac.run()
    assert not step.converged and "did not converge" in step.message


def test_regulated_without_a_tap_changer_gets_no_controller():
    """The tiny case's transformers have no tap changer: the clearing takes them as ideally
    regulated; the AC network leaves them as they are and counts none at a limit."""
    case = load_case("tiny")
    assert all(c.transformer_model == "regulated" for c in case.communities)
    ac = ACNetwork(case)
    assert len(ac.net.controller) == 0 and not len(ac.controlled)
    for c in case.communities:
        ac.set_feeder(c.name, pd.Series(0.05, index=ac.lv_load_index[c.name].index), {})
    step = ac.run()
    assert step.converged, step.message
    assert (step.lv_root_vm_pu < 1.0 - 1e-3).all()  # the set-point is missed ...
    assert step.taps_at_limit == 0  # ... but no tap changer is at a limit
    assert step.tap_pos.isna().all()  # as the data have it
