"""Reports of output folders: ``mosaik-bilevel report DIR`` (see :func:`write_report`)."""

from .data import ReportInputError, RunData, read_run
from .page import Report, write_report

__all__ = ["Report", "ReportInputError", "RunData", "read_run", "write_report"]
