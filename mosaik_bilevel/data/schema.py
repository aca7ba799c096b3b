"""Declared schemas of a case's tables: validation and documentation from one place.

Each element table (generators, PV plants, members, batteries, ...) is a list of
:class:`Column` declarations: name (with its unit), type, default, range and description.
:func:`validate_table` checks a loaded table against it and raises a
:class:`~mosaik_bilevel.errors.CaseError` naming the file, the row and the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CaseError
from .guard import MAX_MAGNITUDE

REQUIRED = object()
#: Largest magnitude of a whole-number column (a bus index): what a float holds exactly.
MAX_INDEX = 2**53


@dataclass(frozen=True)
class Column:
    """One column of an element table."""

    name: str
    kind: str  # "float" | "int" | "str"
    description: str
    default: object = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    strict_minimum: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


GENERATORS = (
    Column("bus", "int", "MV bus (pandapower index) of the unit"),
    Column("p_min_mw", "float", "minimum active output", 0.0, minimum=0.0),
    Column("p_max_mw", "float", "maximum active output", minimum=0.0),
    Column("q_min_mvar", "float", "minimum reactive output", 0.0),
    Column("q_max_mvar", "float", "maximum reactive output", 0.0),
    Column("ramp_mw_per_h", "float", "ramp limit up and down (inf: none)", np.inf,
           minimum=0.0, strict_minimum=True),
    Column("cost_per_mwh", "float", "linear energy cost"),
    Column("p_init_mw", "float",
           "output in the period before the horizon, for the first ramp (empty: no "
           "ramp limit in the first period)", np.nan),
)

PV_PLANTS = (
    Column("bus", "int", "MV bus (pandapower index) of the plant"),
    Column("p_peak_mw", "float", "peak (installed) power; availability is a fraction of it",
           minimum=0.0),
    Column("cost_per_mwh", "float", "linear energy cost", 0.0),
)

MEMBERS = (
    Column("bus", "int", "LV bus (pandapower index) of the home"),
)

ROOFTOP_PV = (
    Column("bus", "int", "LV bus (pandapower index) of the PV unit"),
    Column("p_peak_mw", "float", "peak (installed) power", minimum=0.0),
)

BATTERIES = (
    Column("bus", "int", "LV bus (pandapower index) of the battery"),
    Column("e_max_mwh", "float", "maximum state of energy", minimum=0.0),
    Column("e_min_mwh", "float", "minimum state of energy", 0.0, minimum=0.0),
    Column("e_init_mwh", "float", "state of energy at the start of the horizon", minimum=0.0),
    Column("e_end_mwh", "float",
           "minimum state of energy at the end of the horizon (empty: e_init_mwh)", np.nan),
    Column("p_ch_max_mw", "float", "maximum charging power", minimum=0.0),
    Column("p_dis_max_mw", "float", "maximum discharging power", minimum=0.0),
    Column("eta_ch", "float", "charging efficiency", 0.95, minimum=0.0, maximum=1.0,
           strict_minimum=True),
    Column("eta_dis", "float", "discharging efficiency", 0.95, minimum=0.0, maximum=1.0,
           strict_minimum=True),
)

SHIFTABLE = (
    Column("bus", "int", "LV bus (pandapower index) of the load"),
    Column("p_mw", "float", "power while on", minimum=0.0, strict_minimum=True),
    Column("energy_mwh", "float",
           "energy to serve in the horizon (a whole number of on-periods)", minimum=0.0),
    Column("window_start_h", "float", "earliest start, hours after the horizon start",
           minimum=0.0),
    Column("window_end_h", "float", "latest end, hours after the horizon start",
           minimum=0.0),
)

PRICE_COLUMNS = (
    Column("upstream_per_mwh", "float", "price of energy from the upstream grid (π^sub)"),
    Column("tariff_buy_per_mwh", "float", "communities' import tariff (π^buy)"),
    Column("tariff_sell_per_mwh", "float", "communities' export tariff (π^sell <= π^buy)"),
)

TABLES = {
    "generators": GENERATORS,
    "pv_plants": PV_PLANTS,
    "members": MEMBERS,
    "pv": ROOFTOP_PV,
    "batteries": BATTERIES,
    "shiftable": SHIFTABLE,
}


def empty_table(schema: tuple[Column, ...]) -> pd.DataFrame:
    """An empty table with the schema's columns (an element type a case does not use)."""
    frame = pd.DataFrame({c.name: pd.Series(dtype=_dtype(c)) for c in schema})
    frame.index = pd.Index([], dtype=object, name="name")
    return frame


def _dtype(column: Column):
    return {"float": float, "int": np.int64, "str": object}[column.kind]


def validate_table(frame: pd.DataFrame, schema: tuple[Column, ...], source: str) -> pd.DataFrame:
    """Check and normalise an element table (index: element names).

    Unknown columns are rejected, optional columns get their defaults, values are converted
    to the declared types and checked against the declared ranges.
    """
    frame = frame.copy()
    if frame.index.name != "name":
        if "name" in frame.columns:
            frame = frame.set_index("name")
        else:
            raise CaseError(source, "name", "missing column (element names)")
    frame.index = frame.index.astype(str)
    duplicated = frame.index[frame.index.duplicated()]
    if len(duplicated):
        raise CaseError(source, "name", f"duplicate element name {duplicated[0]!r}")
    known = {c.name for c in schema}
    unknown = [c for c in frame.columns if c not in known]
    if unknown:
        raise CaseError(source, unknown[0], f"unknown column; expected {sorted(known)}")
    for col in schema:
        if col.name not in frame.columns:
            if col.required:
                raise CaseError(source, col.name, "missing column")
            frame[col.name] = col.default
            continue
        values = frame[col.name]
        if col.required and values.isna().any():
            row = values.index[values.isna()][0]
            raise CaseError(source, f"row {row!r}, field {col.name!r}", "missing value")
        if not col.required:
            values = values.fillna(col.default) if col.default is not None else values
        if col.kind in ("float", "int"):
            if values.dtype == bool:
                raise CaseError(source, f"row {values.index[0]!r}, field {col.name!r}",
                                f"not a number: {_show(values.iloc[0])}")
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                row = values.index[bad][0]
                raise CaseError(source, f"row {row!r}, field {col.name!r}",
                                f"not a number: {_show(values[row])}")
            if col.kind == "int":
                frac = converted.dropna() % 1 != 0
                if frac.any():
                    row = frac.index[frac][0]
                    raise CaseError(source, f"row {row!r}, field {col.name!r}",
                                    f"not a whole number: {_show(values[row])}")
            values = converted
            _check_range(values, col, source)
            values = values.astype(np.int64) if col.kind == "int" else values.astype(float)
        frame[col.name] = values
    frame.index.name = "name"
    return frame[[c.name for c in schema]]


def _show(value) -> str:
    """A value as a user wrote it: numbers plainly, text quoted (and cut to 40 characters)."""
    if isinstance(value, (bool, np.bool_)):
        return repr(str(value))
    if isinstance(value, (int, float, np.number)):
        return f"{float(value):g}"
    text = repr(str(value))
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_range(values: pd.Series, col: Column, source: str) -> None:
    finite = values.dropna()
    if col.minimum is not None:
        bad = finite <= col.minimum if col.strict_minimum else finite < col.minimum
        if bad.any():
            row = finite.index[bad][0]
            op = ">" if col.strict_minimum else ">="
            raise CaseError(source, f"row {row!r}, field {col.name!r}",
                            f"must be {op} {col.minimum:g}, got {finite[row]:g}")
    if col.maximum is not None:
        bad = finite > col.maximum
        if bad.any():
            row = finite.index[bad][0]
            raise CaseError(source, f"row {row!r}, field {col.name!r}",
                            f"must be <= {col.maximum:g}, got {finite[row]:g}")
    if col.kind == "int" and (finite.abs() > MAX_INDEX).any():
        row = finite.index[finite.abs() > MAX_INDEX][0]
        raise CaseError(source, f"row {row!r}, field {col.name!r}",
                        f"{finite[row]:g} is too large for an index")
    big = np.isfinite(finite) & (finite.abs() > MAX_MAGNITUDE)
    if col.kind == "float" and big.any():
        row = finite.index[big][0]
        raise CaseError(source, f"row {row!r}, field {col.name!r}",
                        f"{finite[row]:g} is beyond the magnitude limit of {MAX_MAGNITUDE:g}")
    if col.kind == "float" and np.isinf(finite).any() and not (
            isinstance(col.default, float) and np.isinf(col.default)):
        row = finite.index[np.isinf(finite)][0]
        raise CaseError(source, f"row {row!r}, field {col.name!r}", "must be finite")


def markdown_table(schema: tuple[Column, ...]) -> str:
    """The schema as a Markdown table (for the documentation)."""
    lines = ["| column | type | default | range | description |", "|---|---|---|---|---|"]
    for c in schema:
        default = "required" if c.required else ("empty" if (
            isinstance(c.default, float) and np.isnan(c.default)) else f"{c.default}")
        lo = "" if c.minimum is None else (f"> {c.minimum:g}" if c.strict_minimum
                                           else f">= {c.minimum:g}")
        hi = "" if c.maximum is None else f"<= {c.maximum:g}"
        rng = ", ".join(x for x in (lo, hi) if x)
        lines.append(f"| `{c.name}` | {c.kind} | {default} | {rng} | {c.description} |")
    return "\n".join(lines)
