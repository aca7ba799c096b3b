"""Annual simbench profiles (2016, 15 min) read from the installed ``simbench`` package.

The profiles are ODbL-licensed data: they are read from the installed package at run time and
never copied into this repository. Their timestamps are naive local time with daylight saving:
27 March 2016 lacks the four labels 02:00–02:45 and 30 October 2016 has them twice. A day is
therefore selected by its *labels*, never by row arithmetic, and put on a regular 96-label
day: a duplicated label takes the mean of its two values, a missing one is interpolated in
time between its neighbours.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CaseError

#: The simbench data set whose profile files are read (the profiles are the same in all).
DATASET = "1-complete_data-mixed-all-0-sw"
YEAR = 2016
STEP_MIN = 15


def _folder() -> Path:
    try:
        import simbench
    except ImportError:  # pragma: no cover - a declared dependency
        raise CaseError("paper", "simbench", "the simbench package is not installed") from None
    return Path(simbench.__file__).parent / "networks" / DATASET


@lru_cache(maxsize=8)
def _read(file: str, columns: tuple[str, ...]) -> pd.DataFrame:
    path = _folder() / file
    if not path.exists():
        raise CaseError(str(path), "file", "simbench profile file not found in the installed "
                                           "simbench package")
    frame = pd.read_csv(path, sep=";", usecols=["time", *columns])
    frame["time"] = pd.to_datetime(frame["time"], format="%d.%m.%Y %H:%M")
    return frame


def annual_profiles(file: str, columns: list[str]) -> pd.DataFrame:
    """The whole year of ``columns`` on a regular 15-min naive-local grid (35,136 labels).

    Parameters
    ----------
    file
        ``"LoadProfile.csv"`` or ``"RESProfile.csv"``.
    columns
        Profile names, e.g. ``["H0-A_pload", "PV3"]``.
    """
    raw = _read(file, tuple(sorted(set(columns))))
    grid = pd.date_range(f"{YEAR}-01-01", f"{YEAR}-12-31 23:45", freq=f"{STEP_MIN}min",
                         name="time")
    regular = raw.groupby("time").mean()  # a duplicated label: mean of its two values
    regular = regular.reindex(grid)
    regular = regular.interpolate(method="time", limit_area="inside")
    return regular[columns].astype(float)


def resample_mean(frame: pd.DataFrame, step_minutes: int) -> pd.DataFrame:
    """Average 15-min values into steps of ``step_minutes`` (energy is kept)."""
    if step_minutes == STEP_MIN:
        return frame
    if step_minutes % STEP_MIN:
        raise CaseError("paper", "step_minutes", f"must be a multiple of {STEP_MIN}")
    return frame.resample(f"{step_minutes}min", label="left", closed="left").mean()


def day_labels(start: pd.Timestamp, days: int, step_minutes: int) -> pd.DatetimeIndex:
    """Regular labels of ``days`` whole days from ``start``."""
    n = days * 24 * 60 // step_minutes
    return pd.date_range(pd.Timestamp(start).normalize(), periods=n,
                         freq=f"{step_minutes}min", name="time")


def check_year(start: pd.Timestamp, days: int) -> None:
    """The days must lie within the profiles' year."""
    first = pd.Timestamp(start).normalize()
    last = first + pd.Timedelta(days=days - 1)
    if first.year != YEAR or last.year != YEAR:
        raise CaseError("paper", "day", f"the simbench profiles cover {YEAR} only; got "
                                        f"{first.date()} to {last.date()}")


def annual_energy(profile: pd.Series) -> float:
    """Energy of a 15-min profile over the year (profile units × h)."""
    return float(np.nansum(profile.to_numpy()) * STEP_MIN / 60.0)
