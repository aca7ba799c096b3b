"""Reading and writing cases as folders (YAML + pandapower JSON + CSV).

A case folder holds ``case.yaml`` and the files it names; see ``docs/case_format.md`` for the
format and ``mosaik_bilevel/cases/tiny`` for a complete example. Every problem is reported as a
:class:`~mosaik_bilevel.errors.CaseError` naming the file, the field and the reason. The files
are read through :mod:`~mosaik_bilevel.data.guard`: confined to the folder, of bounded size,
YAML without aliases, network JSON without foreign modules.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import CaseError
from . import guard
from .case import (
    MAX_HORIZON_HOURS,
    MAX_POLYGON_SIDES,
    MAX_STEP_MINUTES,
    MIN_STEP_MINUTES,
    PRICE_NAMES,
    Case,
    Community,
    Substation,
)
from .transformer import TRANSFORMER_MODELS

CASE_FILE = "case.yaml"
_TOP_KEYS = {"name", "step_minutes", "horizon_hours", "polygon_sides", "costs", "mv", "prices",
             "communities", "notes"}
_MV_KEYS = {"network", "substation", "generators", "pv_plants", "timeseries"}
_MV_SERIES = {"load_p_mw", "load_q_mvar", "pv_plant_availability_pu"}
_COMMUNITY_KEYS = {"name", "mv_bus", "network", "transformer_s_mva", "vm_set_pu",
                   "transformer_model", "members",
                   "pv", "batteries", "shiftable", "timeseries"}
_COMMUNITY_SERIES = {"member_p_mw", "member_q_mvar", "pv_availability_pu"}
_SUBSTATION_KEYS = {"p_import_max_mw", "p_export_max_mw", "s_max_mva", "vm_set_pu"}
_COST_KEYS = {"battery_wear_per_mwh", "curtailment_per_mwh"}


def read_case_folder(path, *, confine: bool = True) -> Case:
    """Read a case folder (or its ``case.yaml``) and validate it.

    Every problem is a :class:`~mosaik_bilevel.errors.CaseError` naming the file, the field
    and the reason. ``confine`` (the default): every file ``case.yaml`` names must lie inside
    its folder, once ``..`` and symbolic links are resolved.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CASE_FILE
    if not path.exists():
        raise CaseError(str(path), "case", f"no such case folder or {CASE_FILE}")
    return _read_folder(path, confine)


@dataclass(frozen=True)
class _Folder:
    """The case folder, and whether the files it names must lie inside it."""

    path: Path
    confine: bool = True

    def __truediv__(self, name) -> Path:
        return self.path / str(name)

    def file(self, name, src: str, field: str) -> Path:
        """The checked file ``name`` (:func:`~mosaik_bilevel.data.guard.confined_file`)."""
        return guard.confined_file(self.path, name, src, field, confine=self.confine)


# -- reading --------------------------------------------------------------------------------
def _or_empty(value):
    """An optional section: ``{}`` when absent or empty (``costs:`` with nothing after)."""
    return {} if value is None else value


def _mapping(value, src: str, field: str, allowed: set[str], required=()) -> dict:
    if not isinstance(value, dict):
        raise CaseError(src, field, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise CaseError(src, f"{field}.{unknown[0]}" if field else unknown[0],
                        f"unknown key; expected one of {sorted(allowed)}")
    for key in required:
        if key not in value:
            raise CaseError(src, f"{field}.{key}" if field else key, "missing")
    return value


_number = guard.number


def _read_net(path: Path):
    """The pandapower network in the (checked) JSON file ``path``."""
    import pandapower as pp

    guard.check_network_json(path, str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = pp.from_json(str(path))
    except Exception as exc:  # pandapower raises many kinds
        raise CaseError(str(path), "file", f"not a readable pandapower JSON network ({exc})")\
            from None
    if not isinstance(net, pp.pandapowerNet):
        raise CaseError(str(path), "file", f"not a pandapower network (a "
                                           f"{type(net).__name__})")
    for table in ("bus", "line", "trafo", "ext_grid"):
        if not isinstance(net.get(table), pd.DataFrame):
            raise CaseError(str(path), table, "missing table")
    return net


def _read_csv(path: Path, key: str) -> pd.DataFrame:
    """A CSV file that must have the column ``key``."""
    try:
        frame = pd.read_csv(path)
    except Exception as exc:
        raise CaseError(str(path), "file", f"not a readable CSV file ({exc})") from None
    if key not in frame.columns:
        raise CaseError(str(path), key, "missing column" + (
            " (element names)" if key == "name" else ""))
    return frame


def _read_table(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, "name")
    frame["name"] = frame["name"].astype(str)
    return frame.set_index("name")


def _read_series(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, "time")
    frame.index = _read_times(frame.pop("time"), str(path))
    frame.columns = [str(c) for c in frame.columns]
    for col in frame.columns:
        if frame[col].dtype == bool:
            raise CaseError(str(path), col, "not a number: true/false values")
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            raise CaseError(str(path), col, f"not a number at {frame.index[bad][0]}: "
                                            f"{_short(frame[col][bad].iloc[0])}")
        frame[col] = values.astype(float)
    return frame


def _short(value) -> str:
    """``repr(value)``, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _read_times(cells: pd.Series, src: str) -> pd.DatetimeIndex:
    """The ``time`` column as naive timestamps; overlong cells are refused before parsing
    (:data:`~mosaik_bilevel.data.guard.MAX_TIME_CELL_CHARS`)."""
    text = cells.astype(str)
    long = text.str.len() > guard.MAX_TIME_CELL_CHARS
    if long.any():
        raise CaseError(src, "time", f"row {int(long.to_numpy().argmax())}: a time of "
                                     f"{len(text[long].iloc[0])} characters (at most "
                                     f"{guard.MAX_TIME_CELL_CHARS})")
    try:
        with warnings.catch_warnings():  # "could not infer format": the cells say it all
            warnings.simplefilter("ignore", UserWarning)
            index = pd.DatetimeIndex(pd.to_datetime(cells), name="time")
    except (ValueError, TypeError, OverflowError) as exc:
        raise CaseError(src, "time", f"not readable as timestamps ({exc})") from None
    if index.hasnans:
        raise CaseError(src, "time", f"row {int(index.isna().argmax())}: missing timestamp")
    if index.tz is not None:
        raise CaseError(src, "time", "timestamps must be naive local time, without a UTC "
                                     "offset")
    return index


def _bus_columns(frame: pd.DataFrame, src: str) -> pd.DataFrame:
    """The columns as MV bus indices (whole numbers written as such: ``2``, not ``2.0``)."""
    columns = []
    for c in frame.columns:
        try:
            columns.append(int(str(c)))
        except ValueError:
            raise CaseError(src, _short(str(c)), "column must be an MV bus index") from None
    frame.columns = columns
    return frame


def _read_folder(path: Path, confine: bool = True) -> Case:
    """The validated case that the ``case.yaml`` at ``path`` describes."""
    folder = _Folder(path.parent, confine)
    src = str(path)
    raw = _read_top(path, src)
    step_h = _number(raw["step_minutes"], src, "step_minutes", positive=True,
                     minimum=MIN_STEP_MINUTES, maximum=MAX_STEP_MINUTES) / 60.0
    horizon_h = _number(raw.get("horizon_hours", 24), src, "horizon_hours", positive=True,
                        maximum=MAX_HORIZON_HOURS)
    costs = _mapping(_or_empty(raw.get("costs")), src, "costs", _COST_KEYS)
    mv, mv_data, files = _read_mv(folder, src, raw)
    communities = _read_communities(folder, src, raw["communities"])
    files["mv_network"] = str(folder / mv["network"])
    case = Case(
        name=_case_name(raw["name"], src),
        step_h=step_h,
        mv_net=_read_net(folder.file(mv["network"], src, "mv.network")),
        **mv_data,
        communities=communities,
        **_read_options(raw, costs, src),
        horizon_h=horizon_h,
        source=src,
        files=files,
    )
    return case.validate()


def _read_top(path: Path, src: str) -> dict:
    """The top-level mapping of ``case.yaml``, with its keys checked."""
    raw = guard.load_yaml(path, src)
    return _mapping(raw, src, "", _TOP_KEYS, required=("name", "step_minutes", "mv", "prices",
                                                       "communities"))


def _case_name(value, src: str) -> str:
    """The case's name: text of 1 to 200 characters."""
    if not isinstance(value, str) or not 0 < len(value.strip()) <= 200:
        raise CaseError(src, "name", f"must be text of 1 to 200 characters, got {value!r}")
    return value


def _read_options(raw: dict, costs: dict, src: str) -> dict:
    """The costs, polygon sides and notes: keyword arguments of :class:`Case`."""
    return {
        "battery_wear_per_mwh": _number(costs.get("battery_wear_per_mwh", 0.0), src,
                                        "costs.battery_wear_per_mwh", minimum=0.0),
        "curtailment_per_mwh": _number(costs.get("curtailment_per_mwh", 0.0), src,
                                       "costs.curtailment_per_mwh", minimum=0.0),
        "polygon_sides": guard.integer(raw.get("polygon_sides", 8), src, "polygon_sides",
                                       minimum=4, maximum=MAX_POLYGON_SIDES),
        "notes": _notes(raw.get("notes"), src),
    }


def _notes(value, src: str) -> dict:
    """The free ``notes``: a mapping (or nothing)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CaseError(src, "notes", f"must be a mapping, got {type(value).__name__}")
    return dict(value)


def _read_substation(mv: dict, src: str) -> Substation:
    """The ``mv.substation`` limits."""
    sub_raw = _mapping(_or_empty(mv.get("substation")), src, "mv.substation", _SUBSTATION_KEYS)
    limits = {k: _number(v, src, f"mv.substation.{k}", minimum=0.0, allow_inf=True)
              for k, v in sub_raw.items() if k != "vm_set_pu"}
    if "vm_set_pu" in sub_raw:
        limits["vm_set_pu"] = _number(sub_raw["vm_set_pu"], src, "mv.substation.vm_set_pu",
                                      minimum=0.5, maximum=1.5)
    return Substation(**limits)


def _optional_table(folder: _Folder, section: dict, key: str, src: str, field: str
                    ) -> pd.DataFrame:
    """The table the file ``section[key]`` holds, or an empty one when there is none."""
    if key not in section:
        return pd.DataFrame({"name": []}).set_index("name")
    return _read_table(folder.file(section[key], src, field))


def _read_mv(folder: _Folder, src: str, raw: dict) -> tuple[dict, dict, dict[str, str]]:
    """The ``mv`` section and the prices.

    Returns the section itself (its network is read last), the MV data and prices as
    keyword arguments of :class:`Case`, and the case's files by role.
    """
    mv = _mapping(raw["mv"], src, "mv", _MV_KEYS, required=("network", "timeseries"))
    substation = _read_substation(mv, src)
    series = _mapping(mv["timeseries"], src, "mv.timeseries", _MV_SERIES,
                      required=("load_p_mw", "load_q_mvar"))
    generators = _optional_table(folder, mv, "generators", src, "mv.generators")
    pv_plants = _optional_table(folder, mv, "pv_plants", src, "mv.pv_plants")
    prices = _read_series(folder.file(raw["prices"], src, "prices"))
    files = {"prices": str(folder / raw["prices"])}
    files.update({k: str(folder / mv[k]) for k in ("generators", "pv_plants") if k in mv})
    files.update({("mv_" + k if k.startswith("load") else k): str(folder / v)
                  for k, v in series.items()})
    mv_data = {"substation": substation, "generators": generators, "pv_plants": pv_plants,
               **_read_mv_series(folder, src, series, prices.index), "prices": prices}
    return mv, mv_data, files


def _read_mv_series(folder: _Folder, src: str, series: dict, timeline: pd.DatetimeIndex
                    ) -> dict[str, pd.DataFrame]:
    """The MV loads and the PV plants' availability: keyword arguments of :class:`Case`."""

    def mv_series(key, columns=None):
        if key not in series:
            return pd.DataFrame(index=timeline, columns=columns, dtype=float)
        file = folder.file(series[key], src, f"mv.timeseries.{key}")
        return _read_series(file)

    load_p = _bus_columns(mv_series("load_p_mw"), f"{folder / series['load_p_mw']}")
    load_q = _bus_columns(mv_series("load_q_mvar"), f"{folder / series['load_q_mvar']}")
    pv_avail = mv_series("pv_plant_availability_pu")
    return {"mv_load_p_mw": load_p, "mv_load_q_mvar": load_q,
            "pv_plant_availability_pu": pv_avail}


def _read_communities(folder: _Folder, src: str, entries) -> list[Community]:
    """Every entry of the ``communities`` list (at least one)."""
    if not isinstance(entries, list):
        raise CaseError(src, "communities", "must be a list")
    if not entries:
        raise CaseError(src, "communities", "must list at least one community")
    return [_read_community(folder, src, f"communities[{i}]", entry)
            for i, entry in enumerate(entries)]


def _read_community(folder: _Folder, src: str, field: str, entry) -> Community:
    """One community entry (``field`` names it, e.g. ``communities[0]``)."""
    entry = _mapping(entry, src, field, _COMMUNITY_KEYS,
                     required=("name", "mv_bus", "network", "members", "timeseries"))
    cseries = _mapping(entry["timeseries"], src, f"{field}.timeseries", _COMMUNITY_SERIES,
                       required=("member_p_mw", "member_q_mvar"))

    def cfile(key, section=entry, prefix=field):
        return folder.file(section[key], src, f"{prefix}.{key}")

    def series(key):
        return _read_series(cfile(key, cseries, f"{field}.timeseries"))

    name = guard.safe_name(entry["name"], src, f"{field}.name")
    mv_bus = guard.integer(entry["mv_bus"], src, f"{field}.mv_bus", minimum=0)
    kwargs = _community_options(entry, field, src, cfile)
    pv_file = cseries.get("pv_availability_pu")
    cfiles = {k: str(folder / entry[k])
              for k in ("members", "pv", "batteries", "shiftable") if k in entry}
    cfiles.update({k: str(folder / v) for k, v in cseries.items()})
    cfiles["network"] = str(folder / entry["network"])
    return Community(
        name=name,
        mv_bus=mv_bus,
        net=_read_net(cfile("network")),
        members=_read_table(cfile("members")),
        member_p_mw=series("member_p_mw"),
        member_q_mvar=series("member_q_mvar"),
        pv_availability_pu=series("pv_availability_pu") if pv_file else None,
        source=f"{src}: {field} ({name})",
        files=cfiles,
        **kwargs,
    )


def _community_options(entry: dict, field: str, src: str, cfile) -> dict:
    """A community's optional transformer rating, voltage set point and unit tables."""
    kwargs = {}
    if "transformer_s_mva" in entry:
        kwargs["transformer_s_mva"] = _number(entry["transformer_s_mva"], src,
                                              f"{field}.transformer_s_mva", positive=True)
    if "vm_set_pu" in entry:
        kwargs["vm_set_pu"] = _number(entry["vm_set_pu"], src, f"{field}.vm_set_pu",
                                      minimum=0.5, maximum=1.5)
    if "transformer_model" in entry:
        model = entry["transformer_model"]
        if model not in TRANSFORMER_MODELS:
            raise CaseError(src, f"{field}.transformer_model",
                            f"must be one of {', '.join(TRANSFORMER_MODELS)}, got {model!r}")
        kwargs["transformer_model"] = model
    for key in ("pv", "batteries", "shiftable"):
        if key in entry:
            kwargs[key] = _read_table(cfile(key))
    return kwargs


# -- writing --------------------------------------------------------------------------------
def _write_series(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%d %H:%M")
    out.index.name = "time"
    out.to_csv(path)


def save_case(case: Case, folder) -> Path:
    """Write ``case`` as a case folder; returns the path of its ``case.yaml``.

    Every community's name must be safe as a folder name
    (:data:`~mosaik_bilevel.data.guard.SAFE_NAME`): nothing is written outside ``folder``.
    """
    import pandapower as pp

    folder = Path(folder)
    for c in case.communities:
        guard.safe_name(c.name, c.source or f"community {c.name!r}", "name")
    folder.mkdir(parents=True, exist_ok=True)
    pp.to_json(case.mv_net, str(folder / "mv_network.json"))
    case.generators.to_csv(folder / "generators.csv")
    case.pv_plants.to_csv(folder / "pv_plants.csv")
    _write_series(case.prices[list(PRICE_NAMES)], folder / "prices.csv")
    _write_series(case.mv_load_p_mw, folder / "mv_load_p_mw.csv")
    _write_series(case.mv_load_q_mvar, folder / "mv_load_q_mvar.csv")
    _write_series(case.pv_plant_availability_pu, folder / "pv_plant_availability_pu.csv")
    communities = [_save_community(c, folder) for c in case.communities]
    doc = _case_document(case, communities)
    path = folder / CASE_FILE
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _save_community(c: Community, folder: Path) -> dict:
    """Write one community's files under ``communities/<name>``; returns its entry."""
    import pandapower as pp

    guard.safe_name(c.name, c.source or f"community {c.name!r}", "name")
    sub = folder / "communities" / c.name
    if not sub.resolve().is_relative_to(folder.resolve()):  # belt and braces
        raise CaseError(c.source or f"community {c.name!r}", "name",
                        f"would be written outside {folder}")
    sub.mkdir(parents=True, exist_ok=True)
    rel = f"communities/{c.name}"
    pp.to_json(c.net, str(sub / "lv_network.json"))
    for key in ("members", "pv", "batteries", "shiftable"):
        getattr(c, key).to_csv(sub / f"{key}.csv")
    _write_series(c.member_p_mw, sub / "member_p_mw.csv")
    _write_series(c.member_q_mvar, sub / "member_q_mvar.csv")
    _write_series(c.pv_availability_pu, sub / "pv_availability_pu.csv")
    entry = {
        "name": c.name, "mv_bus": int(c.mv_bus), "network": f"{rel}/lv_network.json",
        "vm_set_pu": float(c.vm_set_pu), "transformer_model": c.transformer_model,
        "members": f"{rel}/members.csv", "pv": f"{rel}/pv.csv",
        "batteries": f"{rel}/batteries.csv", "shiftable": f"{rel}/shiftable.csv",
        "timeseries": {"member_p_mw": f"{rel}/member_p_mw.csv",
                       "member_q_mvar": f"{rel}/member_q_mvar.csv",
                       "pv_availability_pu": f"{rel}/pv_availability_pu.csv"},
    }
    if c.transformer_s_mva is not None:
        entry["transformer_s_mva"] = float(c.transformer_s_mva)
    return entry


def _case_document(case: Case, communities: list[dict]) -> dict:
    """The contents of ``case.yaml`` for ``case`` and its ``communities`` entries."""
    sub = case.substation
    doc = {
        "name": case.name,
        "step_minutes": float(case.step_h * 60),
        "horizon_hours": float(case.horizon_h),
        "polygon_sides": int(case.polygon_sides),
        "costs": {"battery_wear_per_mwh": float(case.battery_wear_per_mwh),
                  "curtailment_per_mwh": float(case.curtailment_per_mwh)},
        "mv": {
            "network": "mv_network.json",
            "substation": {k: float(getattr(sub, k)) for k in sorted(_SUBSTATION_KEYS)
                           if np.isfinite(getattr(sub, k))},
            "generators": "generators.csv",
            "pv_plants": "pv_plants.csv",
            "timeseries": {"load_p_mw": "mv_load_p_mw.csv", "load_q_mvar": "mv_load_q_mvar.csv",
                           "pv_plant_availability_pu": "pv_plant_availability_pu.csv"},
        },
        "prices": "prices.csv",
        "communities": communities,
    }
    if case.notes:
        doc["notes"] = {str(k): str(v) for k, v in case.notes.items()}
    return doc
