"""The exception tree of searchkit.

* SearchkitError          catch this in apps; the CLI turns it into exit code 1
  x CorpusError           "corpus.jsonl:17: missing field 'text'"
  x DatasetError          evaluation data: "qrels/test.tsv:4: expected 3 columns"
  x IndexError_           an index folder that cannot be used
    x IndexNotFound       no index at that path
    x IndexExists         refusing to overwrite without force
    x IncompatibleIndex   unknown format version, model dimension mismatch
    x CorruptIndex        missing file, checksum or count mismatch
    x IndexLocked         another writer holds the index's lock
  x UnknownBackend        no such vector backend or kind
  x ModelUnavailable      a model that cannot be loaded
    x RuntimeUnavailable  an inference runtime whose libraries are not installed
  x InvalidParameter      a bad option value (k, candidates, efSearch, ...)
    x FilterError         a malformed metadata filter or an unknown field
  x Overloaded            the server's queue for that work is full (HTTP 503, Retry-After)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SearchkitError(Exception):
    """Base class of every error searchkit raises on purpose."""


class CorpusError(SearchkitError):
    """Bad corpus input; the message names the file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[CorpusError], tuple[str, int | None, str]]:
        # pickle (Ray, multiprocessing) rebuilds from __init__'s arguments, not from the message
        return type(self), (self.path, self.line, self.problem)


class DatasetError(CorpusError):
    """Bad evaluation data (queries, qrels, BEIR layout); names file and line when it can."""


class IndexError_(SearchkitError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """An index folder that cannot be used as asked."""


class IndexNotFound(IndexError_):
    """No searchkit index at the given path."""


class IndexExists(IndexError_):
    """The target index exists and overwriting was not asked for."""


class IncompatibleIndex(IndexError_):
    """The index was written by an incompatible version or for another model."""


class CorruptIndex(IndexError_):
    """A file of the index is missing or does not match its recorded checksum."""


class IndexLocked(IndexError_):
    """Another writer is changing the index; only one writer at a time."""


class UnknownBackend(SearchkitError):
    """No such vector-index backend or kind."""


class ModelUnavailable(SearchkitError):
    """A model could not be loaded (not a local folder, not installed, hub not reachable)."""


class RuntimeUnavailable(ModelUnavailable):
    """An inference runtime (onnx, openvino) whose libraries are not installed."""


class InvalidParameter(SearchkitError, ValueError):
    """An option value out of range; ``param`` names the Python parameter when there is one
    (the CLI shows it as its flag)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def __reduce__(self) -> Any:
        return _rebuild, (type(self), str(self), self.param)


def _rebuild(cls: type[InvalidParameter], message: str, param: str | None) -> InvalidParameter:
    return cls(message, param=param)


class FilterError(InvalidParameter):
    """A metadata filter that cannot be parsed or names a field the index does not have."""


class Overloaded(SearchkitError):
    """Too much work of one kind is queued, or a request waited past its deadline; retry after
    ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> Any:
        return type(self), (str(self),), {"retry_after": self.retry_after}


class RerankerUnavailableWarning(UserWarning):
    """The default reranker could not be loaded; hits come back in retrieval order."""


class PrecisionFallbackWarning(UserWarning):
    """bf16 was asked for on a CPU without native bf16; fp32 is used instead."""


class RuntimeMismatchWarning(UserWarning):
    """Queries are embedded with another runtime than the index's documents were."""


class DatasetWarning(UserWarning):
    """Bad evaluation data that is not used, e.g. a malformed query of another split; the
    message names the file and line."""
