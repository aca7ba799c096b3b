"""Errors raised by mosaik_bilevel, each naming where the problem is."""

from __future__ import annotations


class MosaikBilevelError(Exception):
    """Base class of the package's errors."""


class CaseError(MosaikBilevelError, ValueError):
    """Bad case data: names the file, the field and the reason.

    Parameters
    ----------
    source
        The file (or built-in case and table) the value came from.
    field
        The field, column or table at fault, with the row where it helps.
    reason
        Why the value is rejected.
    """

    def __init__(self, source: str, field: str, reason: str):
        self.source, self.field, self.reason = str(source), str(field), str(reason)
        super().__init__(f"{self.source}: {self.field}: {self.reason}")


class ModelError(MosaikBilevelError):
    """A model cannot be formulated as asked (e.g. a data combination with no solution)."""


class OptionsError(MosaikBilevelError, ValueError):
    """A method option that cannot be honoured: names the option and the reason."""

    def __init__(self, option: str, reason: str):
        self.option, self.reason = option, reason
        super().__init__(f"option {option}: {reason}")


class RunAbortedError(MosaikBilevelError):
    """A run that could not go on: a simulator failed or its process died (exit code 3)."""


class OutputFolderError(MosaikBilevelError, ValueError):
    """An output folder that a run may not write to (another run's results, or in use)."""


class CertificateError(MosaikBilevelError):
    """A single-level solution failed the follower-optimality certificate.

    The rejected result (for diagnosis only) is in :attr:`result`.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
