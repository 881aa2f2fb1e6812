"""Time as the ledger writes it and everyone reads it back: ISO 8601, UTC.

One writer (:func:`now_iso`) and one reader (:func:`parse_time`), so the ledger, the
run and the reports never disagree about a moment (a near-copy once printed a
``+02:00`` time as UTC). A stamp without a zone is UTC: the ledger writes UTC, and
APIDot's ``created_time`` has no zone.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["now_iso", "parse_time", "seconds_since"]


def now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds (the ledger's timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def parse_time(value: datetime | str | None) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` accepted, no zone read as UTC) as an aware datetime; None if absent or bad."""
    if value is None or isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def seconds_since(stamp: str | None) -> float:
    """Real seconds from ``stamp`` until now; 0 when it is missing, unreadable or in the future."""
    moment = parse_time(stamp)
    return 0.0 if moment is None else max(0.0, time.time() - moment.timestamp())
