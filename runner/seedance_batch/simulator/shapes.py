"""What a status answer looks like: the shapes seen in the wild, chosen per task from the seed.

The contract (``/work/shared/apidot-contract.md``) shows the files at ``data.files`` in the
API reference and at ``data.output.files`` in the examples; APIDot's own web UI reads
``completed`` as finished and ``processing`` as in progress; the status may carry
``progress`` (0-100); the dashboard shows refunds of failed tasks as ``credits_return``.
Each task takes one of each shape for its whole life (:class:`~.config.Answers` says how
often), decided by :func:`~.tasks.draw` from the seed and the task id, so a test can find
a task of each kind and the same seed gives the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import Answers
from .tasks import Task, draw

__all__ = ["ERROR_TYPES", "TOP_LEVEL_MESSAGE", "error_body", "status_data", "status_word"]

# The error ``type`` of each class: the published example says ``invalid_request_error``; the
# contract's table names the others (authentication_error, insufficient_credits, rate_limited).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_credits",
               429: "rate_limited"}
# "Some carry a top-level message" (the contract): which ones is not published; here the
# account's answers (402, 429) do (*assumption*).
TOP_LEVEL_MESSAGE = frozenset({402, 429})

# A tiny thumbnail's URL is the video's with another file name (see app.py's routes).
THUMBNAIL = "thumb.png"


def error_body(status: int, kind: str | None, message: str) -> dict[str, Any]:
    """``{"code": status, "error": {"message", "type"}}``, plus a top-level ``message`` for some statuses.

    ``kind`` None: the type the contract names for ``status``.
    """
    body: dict[str, Any] = {"code": status, "error": {"message": message, "type": kind or ERROR_TYPES[status]}}
    if status in TOP_LEVEL_MESSAGE:
        body["message"] = message
    return body


def status_word(task: Task, state: str, answers: Answers, seed: int) -> str:
    """The word the status shows for ``state``: ``completed`` or ``processing`` for some tasks."""
    if state == "finished" and draw(seed, "completed", task.task_id) < answers.completed:
        return "completed"
    if state == "running" and draw(seed, "processing", task.task_id) < answers.processing:
        return "processing"
    return state


def status_data(task: Task, now: float, answers: Answers, seed: int,
                video_url: Callable[[str], str]) -> dict[str, Any]:
    """The ``data`` of a status answer for ``task`` at ``now``.

    ``video_url(name)`` is a fresh signed URL of one of the task's files (``video.mp4``,
    :data:`THUMBNAIL`).
    """
    state = task.status_at(now)
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "status": status_word(task, state, answers, seed),
        "created_time": task.created_time,
        "output": None,
        "error_message": task.error_message if state == "failed" else None,
    }
    if task.seed is not None:  # assumption: whether APIDot echoes input.seed is not published; here it does
        data["seed"] = task.seed
    if answers.progress and state in ("not_started", "running", "finished"):
        data["progress"] = task.progress_at(now)
    if state == "finished":
        _put_files(data, _files(task, answers, seed, video_url), draw(seed, "files-at", task.task_id) < answers.files_at_data)
    if state == "failed" and task.refund and draw(seed, "refund-shown", task.task_id) < answers.refund_shown:
        data["credits_return"] = task.refund
    return data


def _files(task: Task, answers: Answers, seed: int, video_url: Callable[[str], str]) -> list[dict[str, str]]:
    video = {"file_url": video_url("video.mp4"), "file_type": "video"}
    if draw(seed, "thumbnail", task.task_id) < answers.thumbnail:
        return [{"file_url": video_url(THUMBNAIL), "file_type": "image"}, video]
    return [video]


def _put_files(data: dict[str, Any], files: list[dict[str, str]], at_data: bool) -> None:
    """At ``data.files`` (the API reference) or ``data.output.files`` (the examples)."""
    if at_data:
        data["files"] = files
    else:
        data["output"] = {"files": files}
