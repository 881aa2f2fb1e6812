"""Redaction: what may never reach a report, whatever the format.

Four rules, applied to every free text a report shows (prompts, error messages,
combination values, file URLs, task ids):

* any secret the caller names (the API key) is replaced, in case a message quotes it,
  and so is anything shaped like a credential (``Bearer ...``, ``sk-...``, see
  :func:`seedance_batch.safetext.scrub`): a ledger written by an older version, read
  where the key is not in the environment (a pull request's plan job), cannot leak it;
* a URL with a query string (or a fragment, or credentials) keeps its scheme,
  host and path and loses the rest: signed media and result URLs carry their
  access token there, and the provider asks that private media URLs are never logged;
* what the service sent is bounded (:meth:`Redactor.service`), cut only after scrubbing,
  so a 20 MB message from an old ledger is not a 20 MB report;
* characters XML 1.0 cannot carry are dropped (junit.xml cleans its own text too).

Prompts of jobs marked ``private: true`` are replaced whole by :data:`PRIVATE_PROMPT`.
Making text inert for a terminal or for Markdown is each format's job, not this one's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from ..safetext import MAX_SERVICE_TEXT, scrub, xml_safe

__all__ = ["PRIVATE_PROMPT", "REDACTED", "Redactor", "redact_url"]

REDACTED = "REDACTED"
PRIVATE_PROMPT = "[private prompt: not shown in reports]"

# A URL inside running text: scheme://, then anything up to whitespace, quotes or brackets.
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>()\[\]{}]+""")
# How much of a service text is scrubbed, as a multiple of what is kept: enough that
# scrubbing never shortens the kept part below its limit, without scrubbing 20 MB to show 500.
_SCAN_FACTOR = 4
# Secrets shorter than this are not scrubbed: replacing "a" everywhere would destroy the text.
_MIN_SECRET = 6


def redact_url(url: str) -> str:
    """``https://host/path?token=..`` -> ``https://host/path?REDACTED``; plain URLs unchanged."""
    # Trailing punctuation belongs to the sentence, not to the URL.
    core = url.rstrip(".,;:!")
    tail = url[len(core):]
    try:
        parts = urlsplit(core)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unparsable port or bracket: keep nothing after the scheme
        return f"{core.split('://', 1)[0]}://{REDACTED}{tail}"
    if not (parts.query or parts.fragment or parts.username or parts.password):
        return url
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, host + port, parts.path, query, fragment)) + tail


class Redactor:
    """Cleans every text a report writes; built once per report with the secrets to hide."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def text(self, value: str | None) -> str | None:
        """``value`` with secrets, credential-shaped tokens, URL queries and XML-invalid characters removed."""
        if value is None:
            return None
        return self._finish(self._scrub(value))

    def service(self, value: str | None, limit: int = MAX_SERVICE_TEXT) -> str | None:
        """A text the service sent (a message, a task id, a file URL): :meth:`text`, bounded to ``limit``.

        Scrubbed before it is cut, so a secret at the cut cannot leave its first characters.
        """
        if value is None:
            return None
        head = value[: limit * _SCAN_FACTOR]
        clean = self._scrub(head)
        if len(clean) > limit or len(head) < len(value):
            # The count is of the text as stored, not of the part scrubbed.
            clean = f"{clean[:limit]}… ({len(value) - limit} more characters)"
        return self._finish(clean)

    def prompt(self, value: str | None, *, private: bool) -> str:
        """A job's prompt as reports may show it."""
        if private:
            return PRIVATE_PROMPT
        return self.text(value) or ""

    def _scrub(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return scrub(value)  # credential shapes: what the key may be where it is not known

    @staticmethod
    def _finish(value: str) -> str:
        if "://" in value:  # a URL can only be where its scheme separator is
            value = _URL.sub(lambda m: redact_url(m.group(0)), value)
        return xml_safe(value)
