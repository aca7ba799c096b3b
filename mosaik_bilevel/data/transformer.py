"""An LV feeder's MV/LV transformer as the clearing sees it: ratio, taps and series impedance.

Two models, chosen per community (``Community.transformer_model``) and used alike by the
clearing and by the AC check:

- ``regulated``: an on-load tap changer holds the LV terminal at ``vm_set_pu``; the clearing
  keeps the feeder's root there (model.md §2) and checks that the tap this needs lies within
  the transformer's range; the AC network holds it with pandapower's tap controller.
- ``fixed``: the tap stays where the data put it (an off-load tap changer, the common case in
  European LV substations). The LV terminal's voltage follows the MV bus through the ratio
  and the series impedance, linearised as LinDistFlow linearises a line::

      w_lv = w_mv / n² − 2 (r P + x Q)

  with ``w`` squared voltage magnitudes (pu), ``n`` the off-nominal ratio at the tap
  position, ``P, Q`` the exchange (MW, MVAr; into the feeder) and ``r, x`` the series
  impedance in pu on 1 MVA, referred to the LV bus (pandapower's model: the ideal ratio on the
  tap side, the impedance on the LV side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CaseError

TRANSFORMER_MODELS = ("regulated", "fixed")


@dataclass(frozen=True)
class TransformerLink:
    """The linearised transformer of one community (see the module docstring).

    Attributes
    ----------
    ratio_nominal
        Off-nominal ratio at the neutral tap: (``vn_hv_kv`` / ``vn_lv_kv``) over the ratio of
        the nominal voltages of its buses.
    tap_pos, tap_neutral, tap_min, tap_max, tap_step_percent, tap_side
        The tap changer (``tap_step_percent`` 0 when it has none).
    r_pu, x_pu
        Series resistance and reactance in pu on 1 MVA at the LV bus's nominal voltage.
    """

    ratio_nominal: float
    tap_pos: float
    tap_neutral: float
    tap_min: float
    tap_max: float
    tap_step_percent: float
    tap_side: str
    r_pu: float
    x_pu: float

    def ratio(self, tap: float | np.ndarray | None = None):
        """Off-nominal ratio ``n`` at a tap position (default: the data's ``tap_pos``)."""
        tap = self.tap_pos if tap is None else tap
        factor = 1.0 + (np.asarray(tap, dtype=float) - self.tap_neutral) * (
            self.tap_step_percent / 100.0)
        n = self.ratio_nominal * (factor if self.tap_side == "hv" else 1.0 / factor)
        return float(n) if np.ndim(n) == 0 else n

    def lv_voltage_sq(self, w_mv, p_mw, q_mvar, tap=None):
        """Squared LV terminal voltage (pu²) under the fixed model at a tap position."""
        return (np.asarray(w_mv) / self.ratio(tap) ** 2
                - 2.0 * (self.r_pu * np.asarray(p_mw) + self.x_pu * np.asarray(q_mvar)))

    def implied_tap(self, w_mv, p_mw, q_mvar, vm_lv_pu: float) -> np.ndarray:
        """The (continuous) tap position that holds the LV terminal at ``vm_lv_pu`` for MV
        squared voltages ``w_mv`` and exchanges ``p_mw``, ``q_mvar`` (the regulated model's
        check; NaN where the transformer has no tap changer)."""
        w_need = vm_lv_pu ** 2 + 2.0 * (self.r_pu * np.asarray(p_mw)
                                        + self.x_pu * np.asarray(q_mvar))
        n = np.sqrt(np.maximum(np.asarray(w_mv, dtype=float), 0.0) / w_need)
        if self.tap_step_percent == 0:
            return np.full(np.shape(n), np.nan)
        rel = n / self.ratio_nominal
        factor = rel if self.tap_side == "hv" else 1.0 / rel
        return self.tap_neutral + (factor - 1.0) / (self.tap_step_percent / 100.0)

    def best_tap(self, vm_mv_pu: float, vm_lv_pu: float) -> int:
        """The whole tap position within range whose no-load LV voltage at ``vm_mv_pu`` is
        closest to ``vm_lv_pu`` (how a DSO sets an off-load tap)."""
        if self.tap_step_percent == 0:
            return int(self.tap_pos)
        taps = np.arange(math.ceil(self.tap_min), math.floor(self.tap_max) + 1)
        return int(taps[np.argmin(np.abs(vm_mv_pu / self.ratio(taps) - vm_lv_pu))])


def transformer_link(trafo: pd.Series, vn_mv_bus_kv: float, vn_lv_bus_kv: float,
                     source: str) -> TransformerLink:
    """The :class:`TransformerLink` of a pandapower ``trafo`` row between buses of the given
    nominal voltages."""
    def num(name, default=math.nan):
        value = trafo.get(name, default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        return default if math.isnan(value) else value

    sn = num("sn_mva") * max(num("parallel", 1.0), 1.0)
    if not (math.isfinite(sn) and sn > 0):
        raise CaseError(source, f"trafo {trafo.name}, field 'sn_mva'",
                        f"must be a positive number, got {trafo.get('sn_mva')!r}")
    z_scale = (num("vn_lv_kv") / vn_lv_bus_kv) ** 2 / sn  # pu on 1 MVA at the LV bus
    vk, vkr = num("vk_percent") / 100.0, num("vkr_percent") / 100.0
    step = num("tap_step_percent", 0.0)
    side = str(trafo.get("tap_side") or "hv").lower()
    if side not in ("hv", "lv"):
        raise CaseError(source, f"trafo {trafo.name}, field 'tap_side'",
                        f"must be 'hv' or 'lv', got {side!r}")
    neutral = num("tap_neutral", 0.0)
    pos = num("tap_pos", neutral)
    lo, hi = num("tap_min", pos), num("tap_max", pos)
    if not (lo <= pos <= hi):
        raise CaseError(source, f"trafo {trafo.name}, field 'tap_pos'",
                        f"{pos:g} lies outside [tap_min, tap_max] = [{lo:g}, {hi:g}]")
    ratio = (num("vn_hv_kv") / num("vn_lv_kv")) / (vn_mv_bus_kv / vn_lv_bus_kv)
    return TransformerLink(
        ratio_nominal=ratio, tap_pos=pos, tap_neutral=neutral, tap_min=lo, tap_max=hi,
        tap_step_percent=step, tap_side=side, r_pu=vkr * z_scale,
        x_pu=math.sqrt(max(vk * vk - vkr * vkr, 0.0)) * z_scale)
