"""The MV/LV transformer models in the clearing, and the AC-corrected clearing.

Independent evidence: the brute-force enumeration of the bilevel problem
(:func:`~mosaik_bilevel.methods.bruteforce.enumerate_bilevel`, which ties the fixed-tap LV root
to the follower's MV voltage on its own), the transformer's own formula, pandapower's AC power
flow (through the AC check), and the case folder written and read back.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.random_case import random_case
from mosaik_bilevel.data.folder import read_case_folder, save_case
from mosaik_bilevel.errors import CaseError
from mosaik_bilevel.methods.bruteforce import enumerate_bilevel
from mosaik_bilevel.solvers.highs import SolverOptions

TIGHT = SolverOptions(mip_rel_gap=1e-9)
#: (seed, tap position, LV lower band): random cases where the fixed model's LV voltage limits,
#: through the MV voltage, change the optimum (found by a scan; each checked below).
BINDING = [(0, 0, 0.90), (1, 0, 0.95), (2, 0, 0.95), (5, -1, 0.95)]


def fixed_variant(seed: int, tap: int, vm_min_pu: float):
    """``random_case(seed)`` with fixed-tap transformers (±2 × 2.5 % on the HV side) at
    ``tap`` and the LV feeders' lower band at ``vm_min_pu``."""
    case = random_case(seed).with_transformer_model("fixed")
    for c in case.communities:
        c.net.trafo[["tap_step_percent", "tap_min", "tap_max", "tap_neutral", "tap_pos"]] = [
            2.5, -2, 2, 0, tap]
        c.net.trafo["tap_side"] = "hv"
        c.net.bus["min_vm_pu"] = vm_min_pu
        for cached in ("transformer", "transformer_link", "lv_network"):
            c.__dict__.pop(cached, None)
    return case


#: the brute force in tariff pricing takes 40–110 s on seeds 0 and 5: those run with -m slow
CASES = [pytest.param(*b, pricing, marks=[pytest.mark.slow] if (
    pricing == "tariff" and b[0] in (0, 5)) else [])
    for b in BINDING for pricing in ("dlmp", "tariff")]


@pytest.mark.parametrize(("seed", "tap", "vm_min", "pricing"), CASES)
def test_fixed_model_equals_brute_force_where_voltages_bind(seed, tap, vm_min, pricing):
    case = fixed_variant(seed, tap, vm_min)
    exact = solve(case, "exact", pricing, options=TIGHT, ac=False)
    brute = enumerate_bilevel(case, pricing)
    assert exact.ok
    assert exact.leader_cost == pytest.approx(brute.leader_cost, rel=1e-6, abs=1e-6)
    if pricing == "dlmp":  # the limits bind: the regulated model's optimum is lower
        regulated = solve(random_case(seed), "exact", pricing, options=TIGHT, ac=False)
        assert exact.leader_cost > regulated.leader_cost + 1e-4
    # the LV root follows the MV bus by the transformer's own formula, within the band
    t = exact.transformers
    for c in case.communities:
        rows = t[t.community == c.name]
        link = c.transformer_link
        p = exact.exchange_p_mw[c.name].to_numpy()
        q = exact.exchange_q_mvar[c.name].to_numpy()
        vm_mv = exact.mv.vm_pu[c.mv_bus].to_numpy()
        expected = np.sqrt(vm_mv ** 2 / link.ratio(tap) ** 2 - 2 * (link.r_pu * p
                                                                     + link.x_pu * q))
        np.testing.assert_allclose(rows.vm_lv_root_pu, expected, atol=1e-9)
        assert (rows.vm_lv_root_pu >= vm_min - 1e-6).all()
        assert (rows.model == "fixed").all() and rows.tap_in_range.all()


def test_regulated_implied_tap_holds_the_set_point():
    """The tap reported for a regulated transformer gives back the set-point through the
    fixed model's formula, and one outside the range is flagged."""
    case = fixed_variant(1, 0, 0.90).with_transformer_model("regulated")
    result = solve(case, "exact", "dlmp", options=TIGHT, ac=False)
    t = result.transformers
    for c in case.communities:
        rows = t[t.community == c.name]
        link = c.transformer_link
        w_lv = link.lv_voltage_sq(rows.vm_mv_pu.to_numpy() ** 2,
                                  result.exchange_p_mw[c.name].to_numpy(),
                                  result.exchange_q_mvar[c.name].to_numpy(),
                                  tap=rows.tap_pos.to_numpy())
        np.testing.assert_allclose(np.sqrt(w_lv), c.vm_set_pu, atol=1e-9)
        inside = (rows.tap_pos >= link.tap_min) & (rows.tap_pos <= link.tap_max)
        assert (rows.tap_in_range == inside).all()
    assert result.summary()["transformers"]["taps_out_of_range"] == int(
        (~t.tap_in_range).sum())


def test_ac_correction_meets_the_band_and_only_tightens():
    """Seed 1 breaks the LV band in AC by 2.4e-3 pu; one correction brings every voltage
    within 1e-3 pu of the band, at a higher leader cost (bounds only tighten)."""
    case = fixed_variant(1, 0, 0.95)
    result = solve(case, "exact", "dlmp", options=TIGHT, ac_correction=3)
    rounds = result.ac_correction
    summary = result.summary()["ac_correction"]
    assert rounds.vm_deficit_max_pu.iloc[0] > 1e-3  # the uncorrected clearing breaks it
    assert summary["converged"] and rounds.vm_deficit_max_pu.iloc[-1] <= 1e-3
    assert np.all(np.diff(rounds.leader_cost) >= -1e-7)
    assert summary["leader_cost_before"] == pytest.approx(rounds.leader_cost.iloc[0])
    assert summary["price_of_feasibility"] == pytest.approx(
        result.system_cost - rounds.system_cost.iloc[0])
    # the AC check attached is the corrected dispatch's own: its LV minimum is in band
    assert result.ac.lv_vm_min_ac_pu.min() >= 0.95 - 1e-3


def test_ac_correction_keeps_the_last_dispatch_when_a_round_is_infeasible():
    """Seed 0 sits at the edge: the corrected model has no dispatch; the first round's
    dispatch is kept and reported with its violations, never lost."""
    case = fixed_variant(0, 0, 0.90)
    result = solve(case, "exact", "dlmp", options=TIGHT, ac_correction=2)
    summary = result.summary()["ac_correction"]
    assert result.exchange_p_mw is not None and result.status == "optimal"
    assert not summary["converged"] and summary["kept_round"] == 0
    assert "no dispatch" in summary["message"]
    assert result.ac_correction.status.iloc[-1] != "optimal"


def test_transformer_model_survives_a_case_folder(tmp_path):
    case = load_case("tiny", transformer="fixed")
    save_case(case, tmp_path / "case")
    again = read_case_folder(tmp_path / "case")
    assert [c.transformer_model for c in again.communities] == ["fixed", "fixed"]
    text = (tmp_path / "case" / "case.yaml").read_text()
    (tmp_path / "case" / "case.yaml").write_text(
        text.replace("transformer_model: fixed", "transformer_model: sliding", 1))
    with pytest.raises(CaseError, match="transformer_model"):
        read_case_folder(tmp_path / "case")


def test_paper_case_uses_off_load_taps_set_by_the_dso_rule():
    case = load_case("paper")
    assert {c.transformer_model for c in case.communities} == {"fixed"}
    # the rule: the whole tap whose no-load LV voltage at the MV bus's nominal-load
    # voltage is nearest 1.0 pu; feeder ends (buses 17, 29, 32) need the full +5 % boost
    taps = {c.mv_bus: c.transformer_link.tap_pos for c in case.communities}
    assert taps[17] == taps[29] == taps[32] == -2 and taps[21] == 0


def test_cli_refuses_an_unknown_transformer_model(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mosaik_bilevel", "solve", "--case", "tiny",
                          "--transformer", "sliding", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--transformer" in run.stderr


def test_report_shows_the_price_of_feasibility(tmp_path):
    from mosaik_bilevel.analysis.report import write_report

    result = solve(fixed_variant(1, 0, 0.95), "exact", "dlmp", options=TIGHT, ac_correction=2)
    result.write(tmp_path)
    page = write_report(tmp_path).path.read_text()
    corr = result.summary()["ac_correction"]
    assert "AC correction: the price of feasibility" in page
    assert f"{corr['price_of_feasibility']:.6g}" in page
    assert f"{corr['system_cost_before']:.6g} / {result.system_cost:.6g}" in page


def test_simulation_corrects_each_clearing_in_ac(tmp_path):
    from mosaik_bilevel.scenarios.run import simulate

    summary = simulate("tiny", days=1, out=tmp_path, load_sigma=0.0, pv_sigma=0.0,
                       ac_correction=1)
    clearing = summary["days"][0]["clearing"]
    folder = next((tmp_path / "clearings").glob("*/"))
    rounds = pd.read_csv(folder / "ac_correction.csv")
    written = json.loads((folder / "summary.json").read_text())["ac_correction"]
    assert clearing["ac_correction_rounds"] == written["rounds"] == len(rounds) - 1
    assert clearing["price_of_feasibility"] == pytest.approx(written["price_of_feasibility"])
    assert clearing["system_cost_before_correction"] == pytest.approx(
        rounds.system_cost.iloc[0])
