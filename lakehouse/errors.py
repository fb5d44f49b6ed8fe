"""One error root for the whole project.

Every error a user can cause is a :class:`LakehouseError`. Adapters re-raise SDK errors as one of these
(``raise ... from e``); the CLI prints ``error: <message>`` and exits non-zero, the API answers with a JSON
problem document whose status comes from :attr:`LakehouseError.http_status`.

Subclasses also inherit a builtin where it fits, so callers may catch ``LookupError`` or ``ValueError``::

    >>> issubclass(TableNotFoundError, LookupError)
    True
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Root of every error this project raises on purpose.

    Attributes:
        http_status: the HTTP status the API answers with.
        transient: True when retrying the same call may succeed (a commit conflict, a network blip).
        hint: an optional sentence telling the user what to do.
    """

    http_status: int = 500
    transient: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(LakehouseError, ValueError):
    """The settings (lakehouse.toml, LAKEHOUSE_* environment, arguments) are invalid."""

    http_status = 500


class DependencyMissingError(LakehouseError, ImportError):
    """An optional dependency (a format SDK, DuckDB) is not installed."""

    http_status = 501


class InvalidInputError(LakehouseError, ValueError):
    """A user's input is malformed: a bad name, schema spec, filter or option."""

    http_status = 400


class InvalidTableNameError(InvalidInputError):
    """A table name is not ``namespace.table`` made of safe characters."""


class InvalidSchemaError(InvalidInputError):
    """A schema or partition spec cannot be used."""


class InvalidPredicateError(InvalidInputError):
    """A filter expression cannot be parsed or refers to unknown columns."""


class QueryError(InvalidInputError):
    """A SQL query is invalid or failed in the engine."""


class TableNotFoundError(LakehouseError, LookupError):
    """No table of that name is registered in the catalog (or none exists at a location)."""

    http_status = 404


class NamespaceNotFoundError(TableNotFoundError):
    """No namespace of that name (the served Iceberg REST catalog's namespaces)."""


class NamespaceNotEmptyError(LakehouseError):
    """A namespace to drop still holds tables."""

    http_status = 409


class TableExistsError(LakehouseError, FileExistsError):
    """A table of that name, or a table at that location, already exists."""

    http_status = 409


class SchemaMismatchError(LakehouseError, ValueError):
    """Data does not fit the table's schema (missing column, wrong type, lossy cast)."""

    http_status = 422


class VersionNotFoundError(LakehouseError, LookupError):
    """A version, snapshot or timestamp does not exist (or is no longer retained) in a table."""

    http_status = 404


class UnsupportedOperationError(LakehouseError, NotImplementedError):
    """The table's format does not support an operation (see its declared capabilities)."""

    http_status = 422


class CommitConflictError(LakehouseError):
    """A concurrent writer committed first and retries did not resolve it."""

    http_status = 409
    transient = True


class CommitTimeoutError(CommitConflictError):
    """Concurrent writers kept winning until the commit timeout (``commit_timeout``) ran out: nothing was committed,
    and the caller removes what it wrote for the commit."""


class StorageError(LakehouseError, OSError):
    """The object store or filesystem failed (unreachable endpoint, denied access, missing bucket)."""

    http_status = 502
    transient = True


class CatalogEntryError(LakehouseError):
    """A table's catalog entry cannot be read (a type an older release wrote, a corrupt definition): the table
    is listed with this error, and dropping it still works."""

    http_status = 500


class ContentMismatchError(LakehouseError):
    """A rewrite's output does not hold the rows it read (a value changed, a row was lost or doubled): nothing
    was committed. A defect to report, never retried."""

    http_status = 500


class CommitOutcomeUnknownError(StorageError):
    """A commit call failed and whether it landed could not be told (the history was unreadable too): keep what
    was written for it; ``lakehouse orphans`` removes it later if it did not land."""


class IncompleteError(LakehouseError):
    """A run over several tables failed on one before committing there, after committing on others: the message
    names what was committed (with versions) and what is left; the status is that of the failure."""

    def __init__(self, message: str, *, hint: str | None = None, http_status: int = 500) -> None:
        super().__init__(message, hint=hint)
        self.http_status = http_status


class QueryTimeoutError(QueryError):
    """A query ran longer than its time limit and was cancelled."""

    http_status = 408


class QueryResourceError(QueryError):
    """A query needed more memory than its worker may use (or sent back a larger answer than allowed); it was
    stopped and its worker replaced."""

    http_status = 413


class AuthError(LakehouseError):
    """No API key, or one that is unknown or revoked."""

    http_status = 401


class ForbiddenError(LakehouseError, PermissionError):
    """The caller's role does not allow this."""

    http_status = 403


def interruption(e: BaseException) -> BaseException | None:
    """The interruption (Ctrl-C, SIGTERM turned into SystemExit) behind ``e``: ``e`` itself, or one it was
    raised from or during. Python wraps what a signal handler raises in some places, such as a class being
    created by a lazy import (``RuntimeError: Error calling __set_name__``), so an interruption can arrive as an
    ordinary exception. None when there is none.

    >>> wrapped = RuntimeError("Error calling __set_name__")
    >>> wrapped.__cause__ = SystemExit(143)
    >>> type(interruption(wrapped)).__name__, interruption(ValueError("bad"))
    ('SystemExit', None)
    """
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        if not isinstance(current, Exception):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_text(e: BaseException) -> str:
    """What a job's record says of the exception that ended it: its message, or for an interruption (Ctrl-C,
    SIGTERM turned into SystemExit, whose message is only an exit status, also when Python wrapped it: see
    :func:`interruption`) that it was interrupted.

    >>> error_text(SystemExit(143)), error_text(ValueError("bad")), error_text(KeyError())
    ('interrupted (SystemExit)', 'bad', 'KeyError')
    """
    stop = interruption(e)
    if stop is not None:
        return f"interrupted ({type(stop).__name__})"
    return str(e) or type(e).__name__
