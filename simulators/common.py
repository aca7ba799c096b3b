"""What the three simulators share: the case they load, the clock, and JSON-safe values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mosaik_bilevel.cases import load_case
from mosaik_bilevel.data.case import Case
from mosaik_bilevel.results.files import json_float


class Clock:
    """Maps mosaik time (integer ticks of ``time_resolution`` seconds) to case periods.

    Parameters
    ----------
    case
        The case; one mosaik step is one of its periods.
    time_resolution
        Seconds per mosaik tick.
    start
        The case period at mosaik time 0 (default: the case's first period).
    """

    def __init__(self, case: Case, time_resolution: float = 1.0, start=None):
        self.case = case
        self.time_resolution = float(time_resolution)
        step = case.step_h * 3600.0 / self.time_resolution
        if abs(step - round(step)) > 1e-9 or round(step) < 1:
            raise ValueError(f"the case's step of {case.step_h * 60:g} min is not a whole "
                             f"number of ticks of {time_resolution} s")
        self.step = round(step)
        self.start = pd.Timestamp(start) if start is not None else case.timeline[0]
        self.first_index = case.timeline.get_indexer([self.start])[0]
        if self.first_index < 0:
            raise ValueError(f"start {start} is not a period of the case "
                             f"({case.timeline[0]} to {case.timeline[-1]})")

    def timestamp(self, time: int) -> pd.Timestamp:
        """The case period that starts at mosaik ``time``."""
        return self.start + pd.Timedelta(seconds=time * self.time_resolution)

    def index(self, time: int) -> int:
        """Position of that period in the case's timeline."""
        return self.first_index + int(time) // self.step

    def horizon(self, values, start: pd.Timestamp) -> dict:
        """A horizon object: ``{"start", "step_s", "values"}`` (plain JSON)."""
        return {"start": start.isoformat(), "step_s": float(self.case.step_h * 3600.0),
                "values": [num(v) for v in values]}


def create_once(sim, num_entities: int, model: str, expected: str) -> None:
    """Check a ``create`` call of a simulator that holds exactly one ``expected`` entity."""
    if num_entities != 1 or model != expected:
        raise ValueError(f"create exactly one {expected}")
    if getattr(sim, "_created", False):
        raise ValueError(f"{sim.sid} has its {expected} already")
    sim._created = True


def open_case(case: str, case_options: dict | None) -> Case:
    """Load a case from JSON-serialisable parameters (a built-in name or a folder)."""
    if not isinstance(case, str):
        raise TypeError("sim_params 'case' must be a case name or folder (a string), so that "
                        "every way of starting the simulator behaves the same")
    return load_case(case, **(case_options or {}))


num = json_float  # a float for JSON (None for missing, NaN or infinite)


def plain_dict(series: pd.Series) -> dict[str, float | None]:
    """A Series as a str-keyed dict of JSON floats."""
    return {str(k): num(v) for k, v in series.items()}


def single(values: dict | None):
    """The one non-None value connected to an input (None when there is none)."""
    if not values:
        return None
    got = [v for v in values.values() if v is not None]
    if len(got) > 1:
        raise ValueError(f"expected one source, got {len(got)}: {sorted(values)}")
    return got[0] if got else None


def total(values: dict | None) -> float | None:
    """Sum of the numbers connected to an input (None when nothing is connected)."""
    if not values:
        return None
    got = [float(v) for v in values.values() if v is not None]
    return float(np.sum(got)) if got else None
