"""Measured state a horizon starts from: battery energy and shiftable-load progress.

Across process and simulator boundaries the state travels as plain dicts
(``{community: {battery: MWh}}``, ``{community: {load: periods}}``); the formulation takes
pandas Series per community.
"""

from __future__ import annotations

import pandas as pd


def state_series(state: dict | None) -> dict[str, pd.Series] | None:
    """Measured state per community (plain dicts or Series) as Series; None if there is none.

    Communities without a value (None or empty) are left out: they start from the case's.
    """
    if not state:
        return None
    return {name: pd.Series(values, dtype=float) for name, values in state.items()
            if values is not None and len(values)}
