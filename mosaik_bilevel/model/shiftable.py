"""Shiftable loads over a horizon: how many periods each must run, per cycle it touches.

A shiftable load runs a whole number of periods inside its daily window once per cycle of
the case's ``horizon_h``; a horizon that starts inside a cycle (rolling clearing) sees parts
of one or more cycles and must leave what cannot run later possible, and no more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.case import CommunitySettings


@dataclass(frozen=True)
class ShiftableRequirements:
    """Shiftable loads over one horizon (see :func:`shiftable_requirements`).

    ``mask`` (load × period): inside the load's window; ``occurrence`` (period): which cycle
    of the horizon a period belongs to; ``lower``/``upper`` (load × occurrence): bounds on
    the periods the load runs in that occurrence.
    """

    mask: np.ndarray
    occurrence: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def shiftable_requirements(settings: CommunitySettings, shiftable: pd.DataFrame, offset: int,
                           n_periods: int, done=None) -> ShiftableRequirements:
    """What the shiftable loads must run in ``n_periods`` from ``offset`` periods into a cycle.

    A shiftable load runs ``energy_mwh / (p_mw · step_h)`` periods inside its window once
    per *cycle* of ``horizon_h`` (cycles start at the case's first period). A horizon that
    starts ``offset`` periods into a cycle and lasts ``n_periods`` sees parts of one or
    more cycles (occurrences). For each load and occurrence it must run at most what is
    still needed and at least what cannot be run after the horizon's end:

    ``max(0, need − later) <= Σ on <= need`` (both capped at the visible window periods),

    where ``need`` is the periods per cycle minus ``done`` (periods run so far in the
    cycle the horizon starts in; used only when ``offset > 0``) and ``later`` the
    occurrence's window periods after the horizon. A horizon that is exactly one cycle
    gives ``Σ on = need``.
    """
    cycle = settings.horizon_periods
    offset = int(offset) % cycle  # a position in the timeline is as good
    pos = offset + np.arange(n_periods)
    occurrence = pos // cycle
    n_occ = int(occurrence[-1]) + 1 if n_periods else 0
    n_loads = len(shiftable)
    mask = np.zeros((n_loads, n_periods), dtype=bool)
    lower = np.zeros((n_loads, n_occ))
    upper = np.zeros((n_loads, n_occ))
    if done is None or offset == 0:
        done = np.zeros(n_loads)
    else:  # keyed by load name (plain dicts from other processes carry strings)
        done = {str(k): float(v) for k, v in dict(done).items()}
        done = np.array([done.get(str(k), 0.0) for k in shiftable.index])
    for i, (_, row) in enumerate(shiftable.iterrows()):
        window = settings.shiftable_window(row)
        per_cycle = round(row.energy_mwh / (row.p_mw * settings.step_h))
        mask[i] = window[pos % cycle]
        for k in range(n_occ):
            visible = int(mask[i, occurrence == k].sum())
            end = offset + n_periods - k * cycle  # cycle position after the horizon
            later = int(window[min(end, cycle):].sum())
            need = max(per_cycle - (done[i] if k == 0 else 0.0), 0.0)
            upper[i, k] = min(need, visible)
            lower[i, k] = min(max(need - later, 0.0), visible)
    return ShiftableRequirements(mask, occurrence, lower, upper)
