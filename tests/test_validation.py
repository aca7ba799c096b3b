"""AC validation of a solved horizon (mosaik_bilevel.operation.ac_check)."""

import numpy as np
import pytest

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.methods.exact import Solver
from mosaik_bilevel.operation.ac_check import (
    AC_COLUMNS,
    ac_summary,
    validate_dispatch,
)


@pytest.mark.parametrize("method", ["exact", "integrated"])
def test_validation_meets_the_solved_exchanges_and_balances_power(method):
    case = load_case("tiny")
    result = Solver(case, method, "dlmp").solve()
    table = validate_dispatch(case, result.exchange_p_mw, result.mv)
    assert list(table.columns) == list(AC_COLUMNS)
    assert len(table) == result.periods and table["converged"].all()
    # every community's own dispatch meets the solved exchange
    assert table["schedule_shortfall_mw"].max() < 1e-6
    # pandapower's balance: import = MV loads + exchanges − units − PV + losses
    times = table["time"]
    ex = result.exchanges.groupby("time")["p_mw"].sum().to_numpy()
    disp = result.mv_dispatch[result.mv_dispatch["kind"] != "upstream"]
    gen = disp.groupby(disp["time"].astype(str))["p_mw"].sum()
    gen = np.array([gen.get(str(t), 0.0) for t in times])
    loads = case.mv_load_p_mw.loc[times].sum(axis=1).to_numpy()
    balance = loads + ex - gen + table["p_loss_mw"].to_numpy()
    assert np.allclose(table["p_sub_mw"].to_numpy(), balance, atol=1e-6)
    # the planned import is LinDistFlow's, lossless: it falls short of AC by the losses
    gap = table["p_sub_mw"] - table["p_sub_planned_mw"]
    assert np.allclose(gap, table["p_loss_mw"], atol=1e-6)
    summary = ac_summary(table).as_dict()
    assert summary["steps"] == result.periods and summary["not_converged"] == 0
    assert summary["vm_min_pu"] == pytest.approx(
        min(table["mv_vm_min_ac_pu"].min(), table["lv_vm_min_ac_pu"].min()))
