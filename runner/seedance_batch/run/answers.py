"""What the service says about a task, read in one place.

A submit answer, a status answer and a webhook event carry the same payload:
``{"data": {task_id, status, output: {files}, files, error_message, progress,
credits_return}}``, or the same fields flat. :func:`read_task` reads it once (every
text scrubbed and bounded); two judgements follow, because the two callers need
different things:

* :func:`task_status`, for the run's status calls: tolerant. The status words are the
  contract's: ``finished`` and ``completed`` (the web UI's alias) are finished,
  ``failed`` is failed, and anything else (``not_started``, ``running``, ``processing``,
  a word never seen, none at all) means "still in progress". The video is the entry
  whose ``file_type`` is ``video`` (a thumbnail listed before it is never taken for
  it), from ``data.output.files`` or ``data.files`` (both are read); a file URL is kept
  only when it is usable (a bounded http(s) URL without the key in it). ``progress``
  (0-100) and ``credits_return`` (a failed task's refund, in credits) are read when
  they are numbers in range, else left out.
* :func:`webhook_event`, for the receiver: strict. A body that is not a task event is
  refused (:class:`BadEvent`, answered 400), with what is wrong in words. Its file URLs
  are only counted, never used (an unsigned event cannot be trusted).

Nothing the service sends is trusted: see :mod:`.client`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..safetext import service_text

__all__ = [
    "FINISHED_WORDS",
    "MAX_FILE_URL",
    "MAX_REFUND_CREDITS",
    "MAX_STATUS_WORD",
    "BadEvent",
    "FileEntry",
    "TaskPayload",
    "TaskStatus",
    "WebhookEvent",
    "describe",
    "read_task",
    "task_data",
    "task_status",
    "text_of",
    "webhook_event",
]

# A status word is one word ("not_started", "processing"); longer is noise, kept cut as a hint.
MAX_STATUS_WORD = 64
# Signed file URLs carry long query strings (~1-2 KB for S3-style signatures).
MAX_FILE_URL = 8192
# The words that mean finished: the contract's, and the one APIDot's own web UI also reads as finished.
FINISHED_WORDS = frozenset({"finished", "completed"})
TERMINAL = FINISHED_WORDS | {"failed"}
# A refund is a count of credits; past 64 bits it is no figure a ledger can hold.
MAX_REFUND_CREDITS = 2**63 - 1
_EVENT_SHAPE = '(expected {"data": {"task_id", "status", "files"}} or the same flat)'


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One item of a payload's ``files``: an object with ``file_url`` (and maybe ``file_type``), or a plain URL."""

    url: object
    file_type: object = None
    typed: bool = False  # the item said which type of file it is


@dataclass(frozen=True, slots=True)
class TaskPayload:
    """A task as the service describes it, read but not judged.

    ``status`` and ``error_message`` are scrubbed and bounded (None when absent or
    empty); ``files`` is None when the payload's ``files`` is not a list.
    """

    task_id: object
    status: str | None
    files: tuple[FileEntry, ...] | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task as the status endpoint describes it. Unknown statuses mean "still running".

    ``status`` is the service's word, normalised: ``finished`` for ``completed`` too
    (``word`` keeps what the service said). Every text in it was scrubbed and bounded;
    every file URL is usable. ``progress`` is percent done (0-100) when the answer said;
    ``refund_credits`` what the service says it gave back for a failed task, when it said.
    """

    task_id: str
    status: str
    file_urls: tuple[str, ...] = ()
    error_message: str | None = None
    word: str | None = None
    progress: int | None = None
    refund_credits: int | None = None

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def alias(self) -> str | None:
        """The service's word when it is another word for ``status`` (``completed``), else None."""
        return self.word if self.word is not None and self.word != self.status else None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One webhook delivery, normalised: a hint to ask about ``task_id`` now."""

    task_id: str
    status: str
    file_urls: tuple[str, ...] = ()


class BadEvent(ValueError):
    """The body is not a task event (the message says what is wrong)."""


def task_data(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The payload's task fields: its ``data`` object, or the body itself when flat."""
    data = body.get("data")
    return data if isinstance(data, Mapping) else body


def read_task(data: Mapping[str, Any], secrets: Iterable[str | None] = ()) -> TaskPayload:
    """The task fields of ``data`` (see :func:`task_data`), every text scrubbed of ``secrets``."""
    message = data.get("error_message")
    return TaskPayload(
        task_id=data.get("task_id"),
        status=_status_word(data.get("status"), secrets),
        files=_files(data),
        error_message=text_of(message, secrets) if message else None,
    )


def _status_word(value: object, secrets: Iterable[str | None] = ()) -> str | None:
    """A status word as it may be stored and shown; None when there is none."""
    return service_text(value, secrets, MAX_STATUS_WORD) if isinstance(value, str) and value else None


def task_status(task_id: str, data: Mapping[str, Any], secrets: Iterable[str | None] = ()) -> TaskStatus:
    """A status answer's ``data`` as a :class:`TaskStatus` (tolerant of missing parts).

    ``task_id`` is the one asked about (an id in the answer is not trusted to replace it).
    """
    task = read_task(data, secrets)
    word = task.status or "unknown"
    return TaskStatus(task_id=task_id, status="finished" if word in FINISHED_WORDS else word,
                      file_urls=_video_urls(task.files or (), secrets), error_message=task.error_message,
                      word=word, progress=_count(data.get("progress"), 100),
                      refund_credits=_count(data.get("credits_return"), MAX_REFUND_CREDITS))


def webhook_event(body: object) -> WebhookEvent:
    """A :class:`WebhookEvent` from either shape; :class:`BadEvent` says what is wrong."""
    if not isinstance(body, Mapping):
        raise BadEvent("the body must be a JSON object")
    task = read_task(task_data(body))
    if not isinstance(task.task_id, str) or not task.task_id:
        raise BadEvent(f"task_id is missing {_EVENT_SHAPE}")
    if task.status is None:
        raise BadEvent("status is missing")
    if task.files is None:
        raise BadEvent("files must be a list")
    urls = tuple(entry.url for entry in task.files if isinstance(entry.url, str) and entry.url)
    if len(urls) != len(task.files):
        raise BadEvent("each file must be a URL or an object with file_url")
    return WebhookEvent(task.task_id, task.status, urls)


def _count(value: object, most: int) -> int | None:
    """A whole number from 0 to ``most`` (``12`` or ``12.0``); None for anything else (a bool, text, -1...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 0 <= value <= most else None


def _files(data: Mapping[str, Any]) -> tuple[FileEntry, ...] | None:
    """The items of ``data.output.files`` (the examples) then of ``data.files`` (the API reference).

    Both are read: the contract shows each, and a service may fill either (or, in part, both).
    None when a list is expected and something else is there.
    """
    output = data.get("output")
    nested = (output.get("files") if isinstance(output, Mapping) else None) or []
    flat = data.get("files") or []
    if not isinstance(nested, list) or not isinstance(flat, list):
        return None
    return tuple(
        FileEntry(item.get("file_url"), item.get("file_type"), "file_type" in item) if isinstance(item, Mapping)
        else FileEntry(item)
        for item in (*nested, *flat)
    )


def _video_urls(files: Iterable[FileEntry], secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The usable video URLs: the entries typed ``video``, else (none typed so) the untyped ones.

    An entry typed anything else (an ``image`` thumbnail) is never taken for the video. A
    URL is used as sent, so it cannot be scrubbed: one that carries the key is dropped;
    the same URL listed twice (at both places) is kept once.
    """
    entries = list(files)
    chosen = [f for f in entries if f.file_type == "video"] or [f for f in entries if not f.typed]
    urls = (f.url for f in chosen if isinstance(f.url, str) and _usable_url(f.url, secrets))
    return tuple(dict.fromkeys(urls))


def _usable_url(url: str, secrets: Iterable[str | None]) -> bool:
    if len(url) > MAX_FILE_URL or not url.isprintable() or " " in url:
        return False
    if any(secret and secret in url for secret in secrets):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def text_of(value: object, secrets: Iterable[str | None] = ()) -> str:
    """A service text as it may be stored: scrubbed of ``secrets``, then bounded."""
    return service_text(value if isinstance(value, str) else describe(value, secrets), secrets)


def describe(value: object, secrets: Iterable[str | None] = ()) -> str:
    """A short, safe rendering of a JSON value where text was expected.

    Containers are named, not printed: their repr may be nested past the recursion limit.
    """
    if isinstance(value, str):
        return repr(service_text(value, secrets, MAX_STATUS_WORD))
    if value is None or isinstance(value, (bool, int, float)):
        return service_text(repr(value), secrets, MAX_STATUS_WORD)
    return f"(a JSON {'object' if isinstance(value, Mapping) else 'array'}, not text)"
