"""Guarded reading of untrusted inputs: confined files, bounded sizes, checked numbers.

A case folder is data from someone else. Every file it names must lie inside the folder (after
resolving ``..`` and symbolic links) and be a regular file of at most :data:`MAX_FILE_BYTES`
(``case.yaml`` itself at most :data:`MAX_CASE_FILE_BYTES`); ``case.yaml`` is UTF-8 YAML without
aliases; a pandapower network JSON may name no module outside pandapower's own serialisation
(:data:`JSON_MODULES`). Numbers are checked for type (a bool is not a number), finiteness,
integrality where they are ids or counts, sign and range. Every problem is a
:class:`~mosaik_bilevel.errors.CaseError` naming the file, the field and the reason.
"""

from __future__ import annotations

import json
import math
import re
import stat
from pathlib import Path

import yaml

from ..errors import CaseError

#: Largest magnitude of any finite number of a case (MW, MWh, kV, prices, costs): beyond it a
#: value is a typo or a stand-in for "no limit" (write ``.inf`` where a limit may be absent;
#: HiGHS reads 1e20 and more as infinite).
MAX_MAGNITUDE = 1e9
#: Largest data file (CSV table, network JSON) a case folder may hold: 200 MiB.
MAX_FILE_BYTES = 200 * 2**20
#: Largest ``case.yaml``: 1 MiB (it holds names and a few numbers).
MAX_CASE_FILE_BYTES = 2**20
#: Longest text in a ``time`` cell of a table (longer cells are refused before parsing).
MAX_TIME_CELL_CHARS = 64
#: Top-level packages a pandapower network JSON may name in its ``_module`` entries: what
#: pandapower's own ``to_json`` writes for a network.
JSON_MODULES = ("pandapower", "pandas", "numpy", "builtins")
#: Deepest nesting of a network JSON (pandapower's own files nest less than 10 levels).
MAX_JSON_DEPTH = 64
#: A name that is safe as one file name: letters, digits, ``_``, ``-``, ``.``, spaces; not
#: starting with a dot or a space; at most 64 characters.
SAFE_NAME = re.compile(r"[^\W_][\w .-]{0,63}")


def safe_name(value, src: str, field: str) -> str:
    """``value`` as a name that is safe as a file name (:data:`SAFE_NAME`), else an error."""
    if not isinstance(value, str):
        raise CaseError(src, field, f"must be text, got {type(value).__name__} {value!r}")
    if not SAFE_NAME.fullmatch(value) or value.endswith((".", " ")):
        raise CaseError(src, field, f"{value!r} is not a safe name: use 1 to 64 letters, "
                                    f"digits, '_', '-', '.' or spaces, starting with a letter "
                                    f"or digit (it names a folder when the case is written)")
    return value


# -- numbers --------------------------------------------------------------------------------
def number(value, src: str, field: str, *, minimum=None, maximum=None, positive=False,
           allow_inf=False) -> float:
    """A finite (or, with ``allow_inf``, infinite) number within the given range.

    ``positive`` asks for ``> 0``, ``minimum``/``maximum`` for ``>=``/``<=``. Text that reads
    as a number is accepted (YAML reads ``1e3`` as text); a bool is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CaseError(src, field, f"not a number: {value!r}")
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise CaseError(src, field, f"not a number: {value!r}") from None
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise CaseError(src, field, f"must be a finite number, got {value!r}")
    rule = None
    if math.isfinite(out) and abs(out) > MAX_MAGNITUDE:
        raise CaseError(src, field, f"{value!r} is beyond the magnitude limit of "
                                    f"{MAX_MAGNITUDE:g}" + (" (write .inf for no limit)"
                                                            if allow_inf else ""))
    if positive and out <= 0:
        rule = "> 0"
    elif minimum is not None and out < minimum:
        rule = f">= {minimum}"
    elif maximum is not None and out > maximum:
        rule = f"<= {maximum:g}"
    if rule:
        raise CaseError(src, field, f"must be a number {rule}, got {value!r}")
    return out


def integer(value, src: str, field: str, *, minimum=None, maximum=None) -> int:
    """A whole number (an id or a count) within ``[minimum, maximum]``; a bool is refused,
    and so is a fraction (``2.7`` is not bus 2)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CaseError(src, field, f"not a whole number: {value!r}")
    if isinstance(value, int):
        out = value
    else:
        x = number(value, src, field)
        if not x.is_integer():
            raise CaseError(src, field, f"not a whole number: {value!r}")
        out = int(x)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        rule = " and ".join(x for x in (
            "" if minimum is None else f">= {minimum}",
            "" if maximum is None else f"<= {maximum}") if x)
        raise CaseError(src, field, f"must be a whole number {rule}, got {value!r}")
    return out


# -- files ----------------------------------------------------------------------------------
def checked_file(path: Path, src: str, field: str, *, limit: int = MAX_FILE_BYTES) -> Path:
    """``path`` if it is an existing regular file of at most ``limit`` bytes."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CaseError(src, field, f"file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise CaseError(src, field, f"cannot read {_cut(str(path))}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CaseError(src, field, f"{path} is not a regular file")
    if info.st_size > limit:
        raise CaseError(src, field, f"{path} has {info.st_size} bytes, more than the limit "
                                    f"of {limit} bytes")
    return path


def confined_file(folder: Path, name, src: str, field: str, *, confine: bool = True) -> Path:
    """The file ``name`` (relative to ``folder``) after the checks of :func:`checked_file`;
    with ``confine`` (the default) it must lie inside ``folder`` once ``..`` and symbolic
    links are resolved."""
    if not isinstance(name, str) or not name.strip():
        raise CaseError(src, field, f"must be a file name, got {_cut(repr(name))}")
    if "\x00" in name:
        raise CaseError(src, field, "a file name cannot hold a NUL character")
    path = folder / name
    try:
        if confine and not path.resolve().is_relative_to(folder.resolve()):
            raise CaseError(src, field, f"{_cut(repr(name))} lies outside the case folder: "
                                        f"files must be inside it (after '..' and symbolic "
                                        f"links)")
        exists = path.exists()
    except (OSError, RuntimeError) as exc:  # a name too long, a symbolic link loop
        raise CaseError(src, field, f"cannot open {_cut(repr(name))}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
    if not exists:
        raise CaseError(src, field, f"file not found: {_cut(name)}")
    checked_file(path, src, field)
    return path


def _cut(text: str, width: int = 80) -> str:
    """``text``, cut to ``width`` characters for a one-line message."""
    return text if len(text) <= width else f"{text[:width - 3]}..."


def read_text(path: Path, src: str, field: str = "file", *, limit: int = MAX_FILE_BYTES
              ) -> str:
    """The UTF-8 text of the checked file ``path``."""
    data = checked_file(path, src, field, limit=limit).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(src, field, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                                    f"position {exc.start})") from None


# -- YAML -----------------------------------------------------------------------------------
class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (``*name``, ``<<: *name``): an alias bomb (a
    billion laughs) cannot expand, and a case file has no need for them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases are not allowed (*{event.anchor})", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(path: Path, src: str) -> object:
    """The document of the YAML file ``path`` (UTF-8, at most :data:`MAX_CASE_FILE_BYTES`,
    no aliases)."""
    text = read_text(path, src, limit=MAX_CASE_FILE_BYTES)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a safe loader, without aliases
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise CaseError(src, "file", f"not valid YAML ({reason})") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a 5000-digit integer
        raise CaseError(src, "file", f"not valid YAML ({type(exc).__name__}: "
                                     f"{str(exc)[:200]})") from None


# -- pandapower JSON ------------------------------------------------------------------------
def check_network_json(path: Path, src: str) -> None:
    """Refuse a network JSON that would make pandapower import or read anything of its own
    choosing: every ``_module`` must lie in :data:`JSON_MODULES`, no object may be a function
    or a method, and a table must be inline (pandapower reads a table given as the path of a
    ``.json`` file from that path)."""
    text = read_text(path, src)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CaseError(src, "file", f"not a readable pandapower JSON network ({exc})") \
            from None
    _scan(doc, src, "", 0)


def _scan(node, src: str, where: str, depth: int) -> None:
    """Walk a JSON document, and any JSON held in its strings (pandapower decodes those)."""
    if depth > MAX_JSON_DEPTH:
        raise CaseError(src, where or "file", f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(node, str):
        text = node.lstrip()
        if text[:1] in ("{", "["):
            try:
                inner = json.loads(text)
            except (ValueError, RecursionError):
                return
            _scan(inner, src, where, depth + 1)
        return
    if isinstance(node, list):
        for item in node:
            _scan(item, src, where, depth + 1)
        return
    if not isinstance(node, dict):
        return
    if "_module" in node or "_class" in node:
        _check_object(node, src, where)
    for key, value in node.items():
        _scan(value, src, f"{where}.{key}" if where else str(key), depth + 1)


def _check_object(node: dict, src: str, where: str) -> None:
    """One serialised object of pandapower's JSON format."""
    module, cls = node.get("_module", ""), node.get("_class", "")
    field = where or "file"
    if not isinstance(module, str) or not isinstance(cls, str):
        raise CaseError(src, field, "_module and _class must be text")
    if module.split(".")[0] not in JSON_MODULES:
        raise CaseError(src, field, f"names the module {module!r}: a network may name only "
                                    f"modules of {list(JSON_MODULES)} (pandapower's own "
                                    f"format)")
    if cls in ("function", "method", "exec", "eval"):
        raise CaseError(src, field, f"holds a {cls} object ({module}): not network data")
    obj = node.get("_object")
    if cls in ("DataFrame", "Series") and isinstance(obj, str) and obj.lstrip()[:1] not in (
            "{", "["):
        raise CaseError(src, field, "a table must be held inline, not as a file path")
