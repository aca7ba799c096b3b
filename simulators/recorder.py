"""A recorder that writes tidy tables as each simulated day finishes.

Connect any attribute of any entity to a ``Recorder`` entity. Numbers, strings and booleans
go to ``<sim>.csv`` (one row per step and entity, one column per attribute; entities with
ids ``kind-name`` to ``<sim>_<kind>.csv``); dicts (per bus,
per unit, per battery) go to ``<sim>__<attribute>.csv`` (time, entity, key, value); horizons
are left to the market operator's own clearing files. Rows of a day are appended to disk at
the day's last step, before the next day's clearing starts, and then committed
(``recorded.json``: the time up to which every table is complete, and each table's size;
:mod:`mosaik_bilevel.results.run_folder`); the rest is appended, uncommitted, when mosaik
finalises the run. A run killed at any moment keeps every finished day, and a torn one is cut
off when the run is resumed.
"""

from __future__ import annotations

from pathlib import Path

import mosaik_api_v3
import pandas as pd

from mosaik_bilevel.results.files import recorder_file, recorder_table
from mosaik_bilevel.results.run_folder import commit_tables

META = {"api_version": "3.0", "type": "time-based",
        "models": {"Recorder": {"public": True, "params": [], "attrs": [],
                                "any_inputs": True}}}


class RecorderSimulator(mosaik_api_v3.Simulator):
    """``sim_params``: ``out`` (folder), ``start`` (ISO time of mosaik time 0), ``step``
    (ticks per step), ``time_resolution``; ``flush_every`` ticks (default a day)."""

    def __init__(self):
        super().__init__(META)
        self.rows: dict[str, list[dict]] = {}
        self.dict_rows: dict[str, list[dict]] = {}
        self.columns: dict[str, list[str]] = {}
        self.written: set[str] = set()

    def init(self, sid, time_resolution=1.0, *, out, start, step, flush_every=None):
        self.sid = sid
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = pd.Timestamp(start)
        self.resolution = float(time_resolution)
        self.step_ticks = int(step)
        self.flush_every = int(flush_every or round(86400 / self.resolution))
        return self.meta

    def create(self, num_entities, model):
        return [{"eid": f"recorder-{i}", "type": model} for i in range(num_entities)]

    def step(self, time, inputs, max_advance):
        ts = self._timestamp(time).isoformat()
        current: dict[tuple[str, str], dict] = {}
        for values in inputs.values():
            for attr, sources in values.items():
                for src, value in sources.items():
                    sim, _, entity = src.partition(".")
                    if isinstance(value, dict):
                        if "values" in value and "start" in value:
                            continue  # a horizon
                        rows = self.dict_rows.setdefault(recorder_file(sim, attr), [])
                        rows.extend({"time": ts, "entity": entity, "key": k, "value": v}
                                    for k, v in value.items())
                    elif not isinstance(value, list):
                        current.setdefault((sim, entity), {"time": ts, "entity": entity})[
                            attr] = value
        for (sim, entity), row in current.items():
            self.rows.setdefault(recorder_table(sim, entity), []).append(row)
        following = time + self.step_ticks
        if following // self.flush_every > time // self.flush_every:
            # the period's last step: on disk now, before the next period's clearing runs
            self.flush()
            commit_tables(self.out, self._timestamp(following), sorted(self.written))
        return following

    def _timestamp(self, time: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(seconds=time * self.resolution)

    def get_data(self, outputs):
        return {}

    def flush(self) -> None:
        """Append what is held to the tables on disk."""
        for sim, rows in self.rows.items():
            if not rows:
                continue
            frame = pd.DataFrame(rows)
            path = self.out / f"{recorder_file(sim)}.csv"
            cols = self.columns.get(sim)
            if cols is None:  # a table's columns never change, in a resumed run neither
                cols = _header(path) or ["time", "entity", *sorted(
                    c for c in frame.columns if c not in ("time", "entity"))]
                self.columns[sim] = cols
            frame = frame.sort_values(["time", "entity"]).reindex(columns=cols)
            _append(path, frame)
            self.written.add(f"{recorder_file(sim)}.csv")
        for stem, rows in self.dict_rows.items():
            if rows:
                _append(self.out / f"{stem}.csv", pd.DataFrame(rows))
                self.written.add(f"{stem}.csv")
        self.rows = {k: [] for k in self.rows}
        self.dict_rows = {k: [] for k in self.dict_rows}

    def finalize(self):
        self.flush()


def _header(path: Path) -> list[str] | None:
    """The columns of a table on disk (None if there is none)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    return list(pd.read_csv(path, nrows=0).columns)


def _append(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)
