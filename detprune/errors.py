"""The exceptions detprune raises on purpose.

Every error a user can cause derives from :class:`DetpruneError`; the CLI turns
it into one line and a non-zero exit code. Anything else is a bug.
"""

from __future__ import annotations


class DetpruneError(Exception):
    """Base class of every error detprune raises on purpose."""


class DatasetError(DetpruneError):
    """The dataset description or its files cannot be used."""


class ParameterError(DetpruneError, ValueError):
    """A parameter has a wrong type or value."""


class MissingDependencyError(DetpruneError, ImportError):
    """An optional dependency is needed but not installed."""


class CacheError(DetpruneError):
    """An on-disk cache is unusable (it is rebuilt where possible)."""


class OutputError(DetpruneError):
    """The output location cannot be written as asked."""


class WriteError(OutputError, OSError):
    """Writing an output file failed (disk full, no permission, a read-only folder).

    An :class:`OSError` as well, so that code writing a cache only (which tolerates a
    failed write) still catches it.
    """
