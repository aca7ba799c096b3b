"""Bounds of the LinDistFlow model tightened by what AC power flows showed (an AC correction).

LinDistFlow is lossless and linear: its voltages sit above the AC ones (on the paper case by
0.003–0.0045 pu at the MV feeder's end), so a bound that binds in the clearing is broken in
AC. An :class:`ACBounds` holds, per network and period, raised lower voltage bounds and
scaled transformer ratings; the builders (:func:`~mosaik_bilevel.model.lv_community.add_community`,
:func:`~mosaik_bilevel.model.follower.build_follower`) take them as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The key of the MV network in :attr:`ACBounds.vm_min_pu` (communities use their names).
MV = "mv"


@dataclass
class ACBounds:
    """Tightened bounds, each a table over the periods it was learnt for.

    Attributes
    ----------
    vm_min_pu
        ``"mv"`` or a community's name → lower voltage bound (pu), buses × periods (columns:
        timestamps); buses or periods not in a table keep their band.
    s_max_factor
        Community name → factor on its transformer's rating per period (a Series).
    """

    vm_min_pu: dict[str, pd.DataFrame] = field(default_factory=dict)
    s_max_factor: dict[str, pd.Series] = field(default_factory=dict)

    def vm_min(self, key: str, buses, periods: pd.DatetimeIndex,
               band_lo: np.ndarray) -> np.ndarray | None:
        """Lower bounds (buses × periods) of network ``key``: its band, raised where a
        correction says so; None when nothing is corrected there."""
        table = self.vm_min_pu.get(key)
        if table is None:
            return None
        raised = table.reindex(index=list(buses), columns=periods).to_numpy(dtype=float)
        if not np.isfinite(raised).any():
            return None
        base = np.broadcast_to(np.asarray(band_lo, dtype=float)[:, None], raised.shape)
        return np.fmax(base, raised)

    def rating_factor(self, name: str, periods: pd.DatetimeIndex) -> np.ndarray | None:
        """Factor on community ``name``'s transformer rating per period (None: none)."""
        factor = self.s_max_factor.get(name)
        if factor is None:
            return None
        values = factor.reindex(periods).to_numpy(dtype=float)
        return None if not np.isfinite(values).any() else np.where(np.isfinite(values),
                                                                  values, 1.0)

    def raise_vm_min(self, key: str, bus_period_values: pd.DataFrame) -> None:
        """Raise network ``key``'s lower bounds to at least the given (bus × period)."""
        old = self.vm_min_pu.get(key)
        self.vm_min_pu[key] = (bus_period_values if old is None else
                               old.combine(bus_period_values, np.fmax))

    def scale_rating(self, name: str, factors: pd.Series) -> None:
        """Multiply community ``name``'s transformer rating per period by ``factors``."""
        old = self.s_max_factor.get(name)
        self.s_max_factor[name] = factors if old is None else old.mul(
            factors, fill_value=1.0)
