"""PostgreSQL rows as records. The columns' types are the database's to keep (``CHECK``ed counts,
``numeric`` money); what is left to check is what a newer version or a hand edit could
have put in a text column: a state word this version does not know, a request that is
not a JSON object. Such a row is one :class:`~seedance_batch.errors.LedgerError`
naming the job, never a traceback (the same words as the SQLite backend's).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from ...errors import Location
from ..records import JobRecord
from ..sqlite.rows import COLUMNS, BadRow, state_of, unreadable

__all__ = ["to_record"]

_AT = {name: index for index, name in enumerate(COLUMNS)}
_STATE, _REQUEST, _COST = _AT["state"], _AT["request"], _AT["cost_usd"]


def to_record(row: tuple[Any, ...], where: Location) -> JobRecord:
    """A ``jobs`` row (selected in :data:`COLUMNS` order) as a record; an unreadable one is a LedgerError."""
    values = list(row)
    try:
        values[_STATE] = state_of(values[_STATE])
        values[_REQUEST] = _request(values[_REQUEST])
    except BadRow as bad:
        raise unreadable(values[_AT["label"]], values[_AT["key"]], bad, where) from None
    values[_COST] = Decimal(values[_COST])  # numeric: already a Decimal (the CHECK keeps it >= 0)
    return JobRecord(*values)


def _request(text: str) -> dict[str, Any]:
    try:
        request = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            request = json.loads(text)  # what orjson refuses (an integer past 64 bits) as json.dumps wrote it
        except ValueError:
            raise BadRow("its request is not valid JSON") from None
    if not isinstance(request, dict):
        raise BadRow("its request is not a JSON object")
    return request
