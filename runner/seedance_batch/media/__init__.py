"""The source media, checked before a cent is spent.

Before ``run`` submits anything (and in ``plan --check-media``), every distinct URL in
the ``image_urls`` and ``reference_*_urls`` of the jobs the run would submit is asked
about once: reachable (2xx after at most a few redirects, only ever to http(s)), of a
content type its field takes, within its kind's size (``schemas/models.json``'s
``media`` section). By meaning: :mod:`.uses` (which URLs, where written, the problems'
lines), :mod:`.records` (the policy, what a host said), :mod:`.probe` (one URL over HTTP:
HEAD, or a one-byte ranged GET; the HTTP stack is imported only then), :mod:`.cache`
(the ledger's cache: fresh for an hour, then revalidated), :mod:`.check` (all of it,
bounded) and :mod:`.preflight` (when it runs: before ``run``, in ``plan --check-media``).
The API key never reaches a media host; a URL's query string never reaches a message
or the ledger.
"""

from __future__ import annotations

from .check import MediaReport, check_media
from .preflight import check_before_run, check_for_plan
from .records import Facts, MediaPolicy, Probe
from .uses import MediaUse, media_uses, shown_url

__all__ = [
    "Facts", "MediaPolicy", "MediaReport", "MediaUse", "Probe", "check_before_run", "check_for_plan", "check_media",
    "media_uses", "shown_url",
]
