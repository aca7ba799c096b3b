"""A simulation's output folder, owned by one run: a lock, a manifest, committed days, resume.

- **Ownership.** A run holds ``.lock`` (an OS file lock, released when its process ends,
  however it ends) for as long as it writes, and describes itself in ``run.json`` (what was
  asked, its status, why it stopped). A folder that holds another run's results is refused
  unless the run is asked to ``resume`` it (same case and options) or to ``overwrite`` it.
- **Committed days.** The recorder appends a finished day's rows to every table and then
  records, in ``recorded.json`` (replaced atomically), the time up to which the tables are
  complete and each table's size. Rows beyond that are a torn day: :meth:`RunFolder.open`
  cuts them off before a resumed run appends. Every clearing is written to a temporary folder
  and renamed into ``clearings/<start>/`` (:func:`atomic_folder`): all of it or nothing.
- **Resume.** A resumed run starts at the first period after the last committed day, from the
  state recorded at the end of that day (:class:`ResumePoint`); its tables continue the
  killed run's and end as an uninterrupted run's would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from ..errors import OutputFolderError
from .files import CLEARING_FOLDER_FORMAT, CLEARINGS_FOLDER, SIM_IDS, SUMMARY_FILE, recorder_file

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
RECORDED_FILE = "recorded.json"
#: A simulation's own files beside its tables (``overwrite`` removes them, nothing else).
RUN_FILES = (RUN_FILE, RECORDED_FILE, SUMMARY_FILE)
#: Measured state a resumed run starts from: the recorder's dict tables, by attribute.
STATE_ATTRIBUTES = {"community": ("E_batteries[MWh]", "E_batteries_planned[MWh]",
                                  "shiftable_done"),
                    "market": ("P_gen[MW]",)}
#: Options that may differ between a run and its resumption (they do not change results).
RESUMABLE_CHANGES = ("days", "mode", "progress")


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a reader sees the old or the new)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """A temporary folder to write into, renamed to ``folder`` when the block ends well."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def commit_tables(out: Path, until: pd.Timestamp, files: list[str]) -> None:
    """Record that the tables in ``out`` are complete up to ``until`` (exclusive)."""
    out = Path(out)
    before = out / RECORDED_FILE
    names = set(files) | set(_read_json(before).get("tables", {}) if before.exists() else ())
    sizes = {name: (out / name).stat().st_size for name in sorted(names)
             if (out / name).exists()}
    write_json(out / RECORDED_FILE, {"until": pd.Timestamp(until).isoformat(),
                                     "tables": sizes})


@dataclass
class ResumePoint:
    """Where a run starts: ``start`` (None: the case's first period) and the measured state
    at the end of the period before it (plain dicts, by attribute)."""

    start: str | None = None
    state: dict = field(default_factory=dict)


class RunFolder:
    """The output folder of one simulation run (see the module docstring).

    Parameters
    ----------
    out
        The folder.
    run
        What the run is (case, options, method...; plain JSON): written to ``run.json`` and,
        on resume, compared with the killed run's.
    resume, overwrite
        Continue the run in ``out`` from its last finished day; or remove its results first.
    """

    def __init__(self, out, run: dict, *, resume: bool = False, overwrite: bool = False):
        if resume and overwrite:
            raise OutputFolderError("give --resume or --overwrite, not both")
        self.out = Path(out)
        self.run = run
        self.resume, self.overwrite = resume, overwrite
        self._lock: FileLock | None = None
        self.manifest: dict = {}

    # -- opening ----------------------------------------------------------------------------
    def open(self, step_h: float) -> ResumePoint:
        """Take the folder (lock), check it may be written, and say where the run starts.

        Raises :class:`~mosaik_bilevel.errors.OutputFolderError` when another run holds it,
        when it holds results and neither ``resume`` nor ``overwrite`` was asked, or when the
        run to resume was a different one.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.out / LOCK_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise OutputFolderError(f"{self.out}: in use by another run (its lock "
                                    f"{LOCK_FILE} is held); wait for it or choose another "
                                    f"--out") from None
        self._lock = lock
        try:
            point = self._prepare(step_h)
        except BaseException:
            self.close()
            raise
        self.manifest = {**self._previous(), "run": self.run, "status": "running",
                         "reason": None, "pid": os.getpid(), "host": socket.gethostname(),
                         "updated": _now()}
        self.manifest.setdefault("started", _now())
        self.manifest.setdefault("resumed", [])
        if point.start is not None:
            self.manifest["resumed"].append({"at": _now(), "from": point.start})
        write_json(self.out / RUN_FILE, self.manifest)
        return point

    def finish(self, status: str, reason: str | None = None) -> None:
        """Record how the run ended (``finished``, ``failed``, ``aborted``, ``interrupted``)."""
        if self._lock is None:
            return
        self.manifest.update(status=status, reason=reason, updated=_now())
        write_json(self.out / RUN_FILE, self.manifest)

    def close(self) -> None:
        """Release the folder."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _previous(self) -> dict:
        path = self.out / RUN_FILE
        if not (self.resume and path.exists()):
            return {}
        return {k: v for k, v in _read_json(path).items()
                if k in ("started", "resumed")}

    def _prepare(self, step_h: float) -> ResumePoint:
        held = _results_in(self.out)
        if not any(name not in RUN_FILES for name in held):
            # a run that ended before it recorded anything (say, on bad input): start afresh
            _remove(self.out, held)
            return ResumePoint()
        if self.overwrite:
            _remove(self.out, held)
            return ResumePoint()
        if not self.resume:
            raise OutputFolderError(
                f"{self.out}: holds another run's results ({', '.join(held[:3])}"
                f"{', ...' if len(held) > 3 else ''}); pass --resume to continue that run or "
                f"--overwrite to replace it, or choose another --out")
        self._check_same_run()
        return _roll_back(self.out, held, step_h)

    def _check_same_run(self) -> None:
        path = self.out / RUN_FILE
        if not path.exists():
            raise OutputFolderError(f"{path}: missing, so the results in {self.out} cannot be "
                                    f"resumed (they are not a run of this version); use "
                                    f"--overwrite")
        before = _read_json(path).get("run", {})
        differ = sorted(k for k in set(before) | set(self.run)
                        if k not in RESUMABLE_CHANGES and before.get(k) != self.run.get(k))
        if differ:
            detail = "; ".join(f"{k}: was {before.get(k)!r}, now {self.run.get(k)!r}"
                               for k in differ)
            raise OutputFolderError(f"{path}: run: --resume continues the same run, but "
                                    f"{detail}")


def _results_in(out: Path) -> list[str]:
    """Names of the results a run left in ``out`` (its files, tables and clearings)."""
    prefixes = tuple(SIM_IDS.values())
    held = [p.name for p in sorted(out.iterdir())
            if p.name in RUN_FILES or p.name == CLEARINGS_FOLDER
            or (p.suffix == ".csv" and p.name.startswith(prefixes))]
    return held


def _remove(out: Path, held: list[str]) -> None:
    for name in held:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _roll_back(out: Path, held: list[str], step_h: float) -> ResumePoint:
    """Cut the tables back to the last committed day and read the state at its end."""
    recorded = _read_json(out / RECORDED_FILE) if (out / RECORDED_FILE).exists() else {}
    sizes = recorded.get("tables", {})
    tables = [out / name for name in held if name.endswith(".csv")]
    for path in tables:  # all checked before anything is cut
        if path.name in sizes and path.stat().st_size < sizes[path.name]:
            raise OutputFolderError(f"{path}: shorter than its committed "
                                    f"{sizes[path.name]} bytes (changed after the run?); "
                                    f"it cannot be resumed: use --overwrite")
    for path in tables:
        if path.name not in sizes:
            path.unlink()  # begun after the last commit
        else:
            with path.open("r+b") as f:
                f.truncate(sizes[path.name])
    until = recorded.get("until")
    clearings = out / CLEARINGS_FOLDER
    if clearings.exists():
        for folder in clearings.iterdir():
            if folder.name.startswith(".") or until is None or _clearing_start(
                    folder.name) >= pd.Timestamp(until):
                shutil.rmtree(folder, ignore_errors=True)
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    if until is None:
        return ResumePoint()
    last = (pd.Timestamp(until) - pd.Timedelta(hours=step_h)).isoformat()
    return ResumePoint(start=pd.Timestamp(until).isoformat(), state=_state_at(out, last))


def _clearing_start(name: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(pd.to_datetime(name, format=CLEARING_FOLDER_FORMAT))
    except ValueError:
        return pd.Timestamp.min


def _state_at(out: Path, time: str) -> dict:
    """The recorded dict attributes at ``time``: ``{attribute: {entity: {key: value}}}``."""
    state: dict = {}
    for kind, attrs in STATE_ATTRIBUTES.items():
        for attr in attrs:
            path = out / f"{recorder_file(SIM_IDS[kind], attr)}.csv"
            if not path.exists():
                continue
            table = pd.read_csv(path, dtype={"entity": str, "key": str},
                                float_precision="round_trip")  # the very floats written
            rows = table[table["time"] == time]
            values: dict = {}
            for row in rows.itertuples(index=False):
                value = None if pd.isna(row.value) else (
                    int(row.value) if attr == "shiftable_done" else float(row.value))
                values.setdefault(str(row.entity), {})[str(row.key)] = value
            state[attr] = values
    return state


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise OutputFolderError(f"{path}: unreadable ({err}); use --overwrite") from None
    if not isinstance(data, dict):
        raise OutputFolderError(f"{path}: not a JSON object; use --overwrite")
    return data


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
