"""Case folders: round trips, and every kind of bad input rejected with file, field and reason."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mosaik_bilevel.api import solve
from mosaik_bilevel.cases import load_case
from mosaik_bilevel.cases.random_case import random_case
from mosaik_bilevel.cases.tiny import FOLDER, build_tiny
from mosaik_bilevel.data.folder import save_case
from mosaik_bilevel.errors import CaseError


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "case"
    shutil.copytree(FOLDER, target)
    return target


def edit_csv(path: Path, edit) -> None:
    frame = pd.read_csv(path)
    frame = edit(frame)
    frame.to_csv(path, index=False)


def edit_yaml(folder: Path, edit) -> None:
    path = folder / "case.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_shipped_tiny_folder_is_its_source():
    shipped = solve(load_case("tiny"), "exact", "dlmp")
    built = solve(build_tiny(), "exact", "dlmp")
    assert shipped.leader_cost == pytest.approx(built.leader_cost, rel=1e-12)
    pd.testing.assert_frame_equal(shipped.exchanges, built.exchanges)


@pytest.mark.parametrize("seed", [0, 3])
def test_save_and_load_round_trip(tmp_path, seed):
    case = random_case(seed)
    save_case(case, tmp_path / "c")
    loaded = load_case(tmp_path / "c")
    a, b = solve(case, "exact", "dlmp"), solve(loaded, "exact", "dlmp")
    assert a.leader_cost == pytest.approx(b.leader_cost, rel=1e-9)
    pd.testing.assert_frame_equal(case.prices, loaded.prices, check_freq=False)


def _set(frame, row, col, value):
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value
    return frame


BAD_CSV = [
    ("generators.csv", lambda f: _set(f, 0, "p_max_mw", -1.0), "generators.csv",
     "field 'p_max_mw'", "must be >= 0"),
    ("generators.csv", lambda f: _set(f, 0, "p_min_mw", 9.0), "generators.csv",
     "field 'p_min_mw'", "exceeds p_max_mw"),
    ("generators.csv", lambda f: _set(f, 0, "cost_per_mwh", "cheap"), "generators.csv",
     "field 'cost_per_mwh'", "not a number: 'cheap'"),
    ("generators.csv", lambda f: f.assign(colour="red"), "generators.csv", "colour",
     "unknown column"),
    ("generators.csv", lambda f: _set(f, 0, "bus", 99), "generators", "field 'bus'",
     "99 is not a bus of the network"),
    ("pv_plants.csv", lambda f: f.drop(columns="p_peak_mw"), "pv_plants.csv", "p_peak_mw",
     "missing column"),
    ("communities/A/batteries.csv", lambda f: _set(f, 0, "e_init_mwh", 1.0), "batteries",
     "field 'e_init_mwh'", "must lie within [e_min_mwh, e_max_mwh]"),
    ("communities/A/batteries.csv", lambda f: _set(f, 0, "eta_ch", 1.5), "batteries.csv",
     "field 'eta_ch'", "must be <= 1"),
    ("communities/A/members.csv", lambda f: _set(f, 0, "bus", 1.5), "members.csv",
     "field 'bus'", "not a whole number"),
    ("communities/B/shiftable.csv", lambda f: _set(f, 0, "energy_mwh", 0.01), "shiftable",
     "field 'energy_mwh'", "not a whole number"),
    ("communities/B/shiftable.csv", lambda f: _set(f, 0, "window_end_h", 30.0), "shiftable",
     "field 'window_end_h'", "beyond the horizon"),
    ("communities/A/member_p_mw.csv", lambda f: f.drop(columns="h2"), "member_p_mw", "h2",
     "missing column (one per element)"),
    ("communities/A/member_p_mw.csv", lambda f: _set(f, 1, "h1", np.nan), "member_p_mw",
     "h1", "missing or non-finite value"),
    ("communities/A/pv_availability_pu.csv", lambda f: _set(f, 1, "pv_h2", 1.7),
     "pv_availability_pu", "pv_h2", "outside [0, 1]"),
    ("prices.csv", lambda f: _set(f, 0, "tariff_sell_per_mwh", 999.0), "prices",
     "tariff_sell_per_mwh", "exceeds tariff_buy_per_mwh"),
    ("prices.csv", lambda f: _set(f, 2, "time", "2016-05-24 21:00"), "prices", "time",
     "irregular step"),
    ("prices.csv", lambda f: _set(f, 1, "time", "yesterday"), "prices.csv", "time",
     "not readable as timestamps"),
    ("mv_load_p_mw.csv", lambda f: f.rename(columns={"1": "north"}), "mv_load_p_mw.csv",
     "north", "column must be an MV bus index"),
    ("mv_load_q_mvar.csv", lambda f: f.iloc[:2], "mv_load_q_mvar", "time",
     "same timestamps as prices"),
]


@pytest.mark.parametrize("file,edit,where,field,reason", BAD_CSV,
                         ids=[f"{b[0]}:{b[4]}" for b in BAD_CSV])
def test_bad_table_values_are_named(folder, file, edit, where, field, reason):
    edit_csv(folder / file, edit)
    with pytest.raises(CaseError) as info:
        load_case(folder)
    message = str(info.value)
    assert where in message and field in message and reason in message, message


BAD_YAML = [
    (lambda d: d.update(step_minutes=-5), "step_minutes", "must be a number > 0"),
    (lambda d: d.update(colour="red"), "colour", "unknown key"),
    (lambda d: d.pop("prices"), "prices", "missing"),
    (lambda d: d["mv"].update(network="nowhere.json"), "mv.network",
     "file not found: nowhere.json"),
    (lambda d: d["mv"]["substation"].update(p_import_max_mw="lots"),
     "mv.substation.p_import_max_mw", "not a number"),
    (lambda d: d["communities"][0].update(mv_bus=0), "mv_bus",
     "cannot connect at the substation bus"),
    (lambda d: d["communities"][1].update(name="A"), "communities", "duplicate community name"),
    (lambda d: d["communities"][0].pop("members"), "communities[0].members", "missing"),
    (lambda d: d.update(communities={"A": 1}), "communities", "must be a list"),
]


@pytest.mark.parametrize("edit,field,reason", BAD_YAML, ids=[b[2] for b in BAD_YAML])
def test_bad_case_file_entries_are_named(folder, edit, field, reason):
    edit_yaml(folder, edit)
    with pytest.raises(CaseError) as info:
        load_case(folder)
    message = str(info.value)
    assert "case.yaml" in message and field in message and reason in message, message


def test_unreadable_files_are_named(folder):
    (folder / "case.yaml").write_text("name: [unclosed")
    with pytest.raises(CaseError, match=r"case\.yaml: file: not valid YAML"):
        load_case(folder)


def test_corrupt_network_is_named(folder):
    (folder / "communities" / "A" / "lv_network.json").write_text("{not json")
    with pytest.raises(CaseError, match=r"lv_network\.json: file: not a readable pandapower"):
        load_case(folder)


def test_meshed_network_is_rejected(folder):
    import pandapower as pp

    net = pp.from_json(str(folder / "mv_network.json"))
    pp.create_line_from_parameters(net, 2, 3, length_km=1.0, r_ohm_per_km=1.0,
                                   x_ohm_per_km=1.0, c_nf_per_km=0.0, max_i_ka=1.0)
    pp.to_json(net, str(folder / "mv_network.json"))
    with pytest.raises(CaseError, match=r"mv network: line: the in-service network is not "
                                        r"radial"):
        load_case(folder)


def test_unknown_case_name():
    with pytest.raises(CaseError, match="no such case"):
        load_case("no-such-case-anywhere")


@pytest.mark.parametrize("options,field,reason", [
    ({"day": "2017-01-01"}, "day", "cover 2016 only"),
    ({"day": "not a day"}, "day", "not a date"),
    ({"step_minutes": 7}, "step_minutes", "must be a multiple of 15"),
    ({"n_communities": 0}, "n_communities", "must lie in"),
])
def test_bad_paper_options(options, field, reason):
    with pytest.raises(CaseError) as info:
        load_case("paper", **options)
    assert field in str(info.value) and reason in str(info.value)
