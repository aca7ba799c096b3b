"""The output folders, declared once: what a solve writes, what the mosaik recorder writes,
and how the report reads both.

- A **solve** folder holds ``summary.json`` and one CSV per table of :data:`SOLVE_TABLES`
  (long views: one row per element and period, units in the column names).
- A **simulation** folder holds the recorder's tables: ``<sim>.csv`` (one row per step and
  entity, a column per attribute, attributes named as in the simulators' attribute table,
  e.g. ``P[MW]``), ``<sim>_<kind>.csv`` for entities with ids ``kind-name``, and
  ``<sim>__<attribute>.csv`` (``time, entity, key, value``) for attributes whose values are
  dicts; every clearing as a solve folder under ``clearings/<start>/``; ``summary.json``.

:func:`recorder_file` names the recorder's files; :data:`GRID_TO_AC` maps the grid
simulator's attributes onto the columns of a solve's ``ac.csv``, so that one function
summarises the AC check of either.
"""

from __future__ import annotations

import re

import numpy as np

SUMMARY_FILE = "summary.json"
#: Tables a solve writes (``<name>.csv``), in order.
SOLVE_TABLES = ("exchanges", "dlmp", "mv_dispatch", "batteries", "rooftop_pv", "shiftable",
                "mv_voltage", "periods", "residuals", "deviation", "ac", "transformers",
                "ac_correction")
#: Folder of a simulation's clearings (one solve folder per clearing).
CLEARINGS_FOLDER = "clearings"
#: A clearing's folder name: its horizon's start.
CLEARING_FOLDER_FORMAT = "%Y-%m-%dT%H%M"


def json_float(v) -> float | None:
    """A number as a JSON float: None for missing, NaN or infinite."""
    return float(v) if v is not None and np.isfinite(v) else None


def recorder_file(sim: str, attr: str | None = None) -> str:
    """The file stem of a simulator's table (and of a dict attribute's), without ``.csv``."""
    name = sim if attr is None else f"{sim}__{attr}"
    name = name.replace("[$/MWh]", "_per_mwh").replace("[%]", "_percent")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def recorder_table(sim: str, entity: str) -> str:
    """Scalar table of an entity: its simulator's, or ``<sim>_<kind>`` for ``kind-name`` ids."""
    kind, dash, _ = entity.partition("-")
    return f"{sim}_{kind}" if dash else sim


#: The simulators' ids in a World (``scenarios.system``): prefixes of the recorder's files.
SIM_IDS = {"community": "communities", "market": "market", "grid": "grid"}
#: Recorder columns (simulator attributes) the report reads, → the solve dialect's names.
COMMUNITY_TO_SOLVE = {"entity": "community", "P[MW]": "p_mw",
                      "P_scheduled[MW]": "p_scheduled_mw", "E[MWh]": "e_mwh"}
MARKET_SUBSTATION = "P_sub[MW]"
MARKET_DLMP, MARKET_P_GEN, MARKET_P_PV = "dlmp[$/MWh]", "P_gen[MW]", "P_pv_plant[MW]"

#: The grid simulator's outputs (``grid.csv``) → the columns of a solve's ``ac.csv``.
GRID_TO_AC = {
    "converged": "converged", "P_loss[MW]": "p_loss_mw", "P_sub[MW]": "p_sub_mw",
    "vm_violations": "vm_violations", "loading_violations": "loading_violations",
    "ldf_error_mv[pu]": "ldf_mv_error_pu", "ldf_error_lv[pu]": "ldf_lv_error_pu",
    "loading_max[%]": "loading_max_percent", "pf_time[s]": "time_s",
    **{f"vm_{level}_{how}{tag}[pu]": f"{level}_vm_{how}_{model}_pu"
       for level in ("mv", "lv") for how in ("min", "max")
       for tag, model in (("", "ac"), ("_ldf", "ldf"))},
}
