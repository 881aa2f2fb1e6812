"""The errors a user sees.

Every error a user can fix derives from :class:`SeedanceError`. Each carries
where it happened (a :class:`Location`: file, line, column, path in the
manifest, or the job label) and what would be right, and knows its exit code.
The CLI turns any of them into one line per problem in one place
(``cli.main``); anything else is a bug and keeps its traceback.

This is also the one place exit codes are decided: each error type carries its
code, :func:`run_ending` says which error a run that ended a given way is reported
with, and :func:`exit_code` turns that into the process's code (0: no error).

Hierarchy::

    SeedanceError                    exit 2 unless said otherwise
    +-- UsageError                   a bad command-line flag or argument
    +-- ManifestError                one problem in a manifest (or a file it names)
    +-- ManifestErrors               several independent ManifestErrors at once
    +-- PriceFileError               a bad model/price data file (--prices)
    +-- LedgerError                  the ledger cannot be opened or is from the future (a file; a database:
    |                                unreachable, login refused, missing privileges: one line each)
    |   +-- LedgerFailed             exit 5: the ledger failed while a run was rendering
    |   +-- TransitionRefused        a write the ledger's state machine refuses (defined in
    |                                ledger/transitions.py, beside the table it enforces)
    +-- BudgetExceeded               exit 3: the plan costs more than the budget
    +-- JobsNotDone                  exit 1: the run ended with jobs not done (says nothing more)
    +-- ApiError                     an answer (or no answer) from APIDot
    |   +-- InvalidRequest           400: never retried unchanged
    |   +-- AccountError             exit 4: the account cannot proceed
    |   |   +-- AuthenticationError  401
    |   |   +-- InsufficientCredits  402
    |   +-- RateLimited              429: retried, honouring Retry-After
    |   +-- TransientError           5xx, connect errors, malformed answers: retried
    |   +-- AmbiguousSubmit          the submit was sent, no answer came: never resubmitted
    +-- Interrupted                  exit 130: Ctrl-C, state saved
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "EXIT_ACCOUNT",
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LEDGER",
    "EXIT_OK",
    "EXIT_USAGE",
    "AccountError",
    "AmbiguousSubmit",
    "ApiError",
    "AuthenticationError",
    "BudgetExceeded",
    "InsufficientCredits",
    "Interrupted",
    "InvalidRequest",
    "JobsNotDone",
    "LedgerError",
    "LedgerFailed",
    "Location",
    "ManifestError",
    "ManifestErrors",
    "PriceFileError",
    "RateLimited",
    "RepeatedProblems",
    "SeedanceError",
    "TransientError",
    "UsageError",
    "exit_code",
    "run_ending",
]

# Exit codes, the same for every command (design.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_ACCOUNT = 4
# The ledger failed mid-run (a full disk, a database connection that dropped): the
# run stopped at once. Not 2 (which says nothing was submitted: here some jobs were) and
# not 1 (which says the run ended and its reports name the jobs not done: here it did
# not end, and no report was written). Everything committed before stays; fix the
# ledger and run the same command again to resume.
EXIT_LEDGER = 5
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: a file position and/or a path inside the manifest.

    ``path`` is the manifest path in the user's notation (``shots[1].duration``);
    ``job`` is a job label when the problem belongs to one expanded job.
    Lines and columns are 1-based, as editors show them.
    """

    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str | None = None
    job: str | None = None

    def prefix(self) -> str:
        """``file:line:col`` (as much of it as is known), compiler style."""
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def where(self) -> str:
        """The manifest path and job label, e.g. ``shots[1].prompt (job hero/en-US)``."""
        if self.path and self.job:
            return f"{self.path} (job {self.job})"
        return self.path or (f"job {self.job}" if self.job else "")


class SeedanceError(Exception):
    """Root of every error the user can fix. Rendered as one line by the CLI."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def lines(self) -> list[str]:
        """The lines the CLI prints for this error (one, for a single error)."""
        return [self.format()]

    def format(self) -> str:
        """``file:line:col: where: what is wrong, and what is allowed``."""
        text = self.message
        if self.hint:
            text = f"{text}; {self.hint}"
        if self.location is None:
            return text
        where = self.location.where()
        head = self.location.prefix()
        return f"{head}: {where}: {text}" if where else f"{head}: {text}"

    def __str__(self) -> str:
        return self.format()


class UsageError(SeedanceError):
    """A bad command-line flag, argument or environment setting."""


class ManifestError(SeedanceError):
    """One problem in a manifest or in a file it refers to."""


class ManifestErrors(SeedanceError):
    """Several independent problems found in one pass, reported together."""

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        self.errors = sorted(errors, key=_position)
        super().__init__(f"{len(self.errors)} problem(s) in the manifest")

    def lines(self) -> list[str]:
        return [e.format() for e in self.errors]

    def format(self) -> str:
        return "\n".join(self.lines())

    @classmethod
    def raise_if_any(cls, errors: Iterable[ManifestError]) -> None:
        """Raise one error (or all of them together) if there are any."""
        found = list(errors)
        if len(found) == 1:
            raise found[0]
        if found:
            raise cls(found)


def _position(error: ManifestError) -> tuple[str, int, int]:
    loc = error.location or Location()
    return (loc.file or "", loc.line or 0, loc.col or 0)


class RepeatedProblems:
    """Per-job problems, each reported once: the first job it showed in, and how many more.

    A mistake in ``defaults`` or in a shot repeats in every job it reaches; the user
    needs the line to fix once, not a thousand copies of it. ``key`` says which
    problems are the same one.
    """

    def __init__(self, more: str = "more job(s)") -> None:
        self._more = more
        self._found: dict[object, list[object]] = {}

    def add(self, key: object, message: str, location: Location, label: str) -> None:
        """Count one job's problem; the first one seen keeps its location and label."""
        found = self._found.get(key)
        if found is not None:
            found[2] += 1  # type: ignore[operator]
        else:
            where = Location(location.file, location.line, location.col, location.path, label)
            self._found[key] = [message, where, 0]

    def errors(self) -> list[ManifestError]:
        """One error per distinct problem, with ``and N more job(s)`` when it repeats."""
        return [
            ManifestError(str(message), location=where, hint=f"and {more} {self._more}" if more else None)  # type: ignore[arg-type]
            for message, where, more in self._found.values()
        ]


class PriceFileError(SeedanceError):
    """The model and price data file is missing or malformed."""


class LedgerError(SeedanceError):
    """The ledger cannot be opened (a file, or a database: unreachable, login refused, missing
    privileges), is locked, or was written by a newer version."""


class LedgerFailed(LedgerError):
    """The ledger failed while a run was rendering: the run stopped at once (exit 5).

    Same words as the :class:`LedgerError` it stands for; only the exit code differs,
    since some jobs may have been submitted (see :data:`EXIT_LEDGER`).
    """

    exit_code = EXIT_LEDGER

    @classmethod
    def mid_run(cls, error: LedgerError) -> LedgerFailed:
        """``error``, raised while the run rendered, as the error that ends the run."""
        if isinstance(error, LedgerFailed):
            return error
        return cls(error.message, location=error.location, hint=error.hint)


class BudgetExceeded(SeedanceError):
    """The jobs this run would submit cost more than the budget allows."""

    exit_code = EXIT_BUDGET


class Interrupted(SeedanceError):
    """The user interrupted the run; the ledger is consistent and the run resumable."""

    exit_code = EXIT_INTERRUPTED


class JobsNotDone(SeedanceError):
    """The run ended with jobs not done (failed, unknown, timed out, not submitted): exit 1.

    Prints nothing: the run's summary line and its reports already say which.
    """

    exit_code = EXIT_FAILED

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} job(s) not done")
        self.count = count

    def lines(self) -> list[str]:
        return []


class ApiError(SeedanceError):
    """An answer from APIDot that is not a success, or no usable answer at all.

    ``status`` is the HTTP status (None when no response arrived), ``error_class``
    the documented class (``invalid_request``, ``rate_limited``...). Messages never
    contain the API key or request headers.
    """

    exit_code = EXIT_FAILED
    error_class: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_class: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, location=location, hint=hint)
        self.status = status
        if error_class is not None:
            self.error_class = error_class


class InvalidRequest(ApiError):
    """400: the service rejected the request; retrying it unchanged cannot help."""

    error_class = "invalid_request"


class AccountError(ApiError):
    """The account cannot proceed: stop submitting, keep tracking, exit 4."""

    exit_code = EXIT_ACCOUNT


class AuthenticationError(AccountError):
    """401: the API key is missing, expired or invalid."""

    error_class = "authentication_error"


class InsufficientCredits(AccountError):
    """402: the balance cannot cover the job."""

    error_class = "insufficient_credits"


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` is the server's advice in seconds."""

    error_class = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, status=429, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransientError(ApiError):
    """5xx, a connection that failed before the request was sent, or a malformed answer."""

    error_class = "transient"


class AmbiguousSubmit(ApiError):
    """A submit was sent but no answer arrived: the task may exist and may be billed.

    Never resubmitted automatically (no idempotency key exists); the job becomes
    ``unknown`` and is resubmitted only with ``--resubmit-unknown``.
    """

    error_class = "ambiguous_submit"


def run_ending(*, interrupted: bool, stopped_by: SeedanceError | None, stopped_by_budget: bool,
               not_done: int) -> SeedanceError | None:
    """The error a run that ended this way is reported with (its exit code with it); None: exit 0.

    The first that applies wins: interrupted (130), what stopped the submits, an account
    error (4), the budget (3), jobs not done (1). ``not_done``: jobs of the plan not done.
    """
    if interrupted:
        return Interrupted("interrupted: the ledger is saved; run the same command again to resume")
    if stopped_by is not None:
        return stopped_by
    if stopped_by_budget:
        return BudgetExceeded("stopped before the budget was crossed; jobs left unsubmitted",
                              hint="raise budget.max_usd or --max-usd, then run again")
    return JobsNotDone(not_done) if not_done else None


def exit_code(error: SeedanceError | None) -> int:
    """The exit code of a command that ended with ``error`` (None: everything asked for succeeded)."""
    return EXIT_OK if error is None else error.exit_code
