"""The catalogue of built-in cases and the one way to load any case by name or folder.

Built-in names: ``paper`` (the IEEE 33-bus feeder with six European LV communities), ``tiny``
(a hand-made case that ships as a case folder) and ``random`` (a seeded generator of small
cases). Anything else is read as a case folder (:mod:`mosaik_bilevel.data.folder`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..data.case import Case
from ..data.folder import CASE_FILE, read_case_folder
from ..errors import CaseError, OptionsError


def _paper(**options) -> Case:
    from .paper import paper_case

    return paper_case(**options)


def _tiny(**options) -> Case:
    from .tiny import tiny_case

    return tiny_case(**options)


def _random(**options) -> Case:
    from .random_case import random_case

    return random_case(**options)


#: Built-in case name → its builder (imported when used: the paper case needs simbench).
BUILTIN: dict[str, Callable[..., Case]] = {"paper": _paper, "tiny": _tiny, "random": _random}


def builtin_cases() -> list[str]:
    """Names accepted by :func:`load_case` besides folders."""
    return list(BUILTIN)


def load_case(name_or_path, **options) -> Case:
    """Load a built-in case by name or a case folder (or its ``case.yaml``).

    Parameters
    ----------
    name_or_path
        ``"paper"``, ``"tiny"``, ``"random"`` or a path.
    options
        Options of the built-in case (e.g. ``day``, ``step_minutes`` for ``paper``;
        ``seed`` for ``random``). A folder takes none. Any case takes ``transformer``
        (``regulated`` or ``fixed``: every community's transformer model, see
        :meth:`~mosaik_bilevel.data.case.Case.with_transformer_model`).
    """
    transformer = options.pop("transformer", None)
    return _load(name_or_path, options).with_transformer_model(transformer)


def _load(name_or_path, options: dict) -> Case:
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key](**options)
    path = Path(key)
    if not (path.is_dir() or path.exists()):
        raise CaseError(key, "case", f"no such case: not a built-in name ({builtin_cases()}) "
                                     f"nor an existing folder or {CASE_FILE}")
    if options:
        where = path / CASE_FILE if path.is_dir() else path
        raise CaseError(str(where), "options", f"a case folder takes no options, got "
                                               f"{sorted(options)}")
    return read_case_folder(path)


def as_case(case: Case | str, **options) -> Case:
    """``case`` itself, or the case a built-in name or folder names."""
    return case if isinstance(case, Case) else load_case(case, **options)


def case_options(name: str, *, day: str | None = None, days: int = 1,
                 step_minutes: int | None = None, seed: int | None = None) -> dict:
    """The options of a built-in case that the command line's case flags set.

    ``paper`` takes ``day``, ``days`` and ``step_minutes`` (default 60); ``random`` takes
    ``seed`` (default 0) and ``days`` (as its number of horizons); ``tiny`` and folders take
    none. A flag given to a case that does not take it is an
    :class:`~mosaik_bilevel.errors.OptionsError`, not silently ignored (a folder's horizon
    starts where ``--start`` says).
    """
    takes = {"paper": ("--day", "--step-minutes"), "random": ("--seed",)}.get(name, ())
    given = {"--day": day, "--step-minutes": step_minutes, "--seed": seed}
    for flag, value in given.items():
        if value is not None and flag not in takes:
            hint = " (a case folder: give --start, a period of the case)" if (
                flag == "--day") else ""
            raise OptionsError(flag, f"does not apply to the case {name!r}: it goes with "
                                     f"{'paper' if flag != '--seed' else 'random'}{hint}")
    if name == "paper":
        from .paper import DEFAULT_DAY

        return {"day": day or DEFAULT_DAY, "days": days,
                "step_minutes": 60 if step_minutes is None else step_minutes}
    if name == "random":
        return {"seed": 0 if seed is None else seed, "horizons": days}
    return {}
