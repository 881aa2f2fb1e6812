"""Redaction: what may never reach a report, whatever the format.

Three rules, applied to every free text a report shows (prompts, error messages,
combination values, file URLs):

* a URL with a query string (or a fragment, or credentials) keeps its scheme,
  host and path and loses the rest: signed media and result URLs carry their
  access token there, and the provider asks that private media URLs are never logged;
* any secret the caller names (the API key) is replaced, in case a message quotes it;
* characters XML 1.0 cannot carry are dropped, so junit.xml stays well-formed.

Prompts of jobs marked ``private: true`` are replaced whole by :data:`PRIVATE_PROMPT`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PRIVATE_PROMPT", "REDACTED", "Redactor", "redact_url"]

REDACTED = "REDACTED"
PRIVATE_PROMPT = "[private prompt: not shown in reports]"

# A URL inside running text: scheme://, then anything up to whitespace, quotes or brackets.
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>()\[\]{}]+""")
# Characters outside XML 1.0's Char production (tab, newline and carriage return are allowed).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
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
        """``value`` with secrets, URL queries and XML-invalid characters removed."""
        if value is None:
            return None
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        value = _URL.sub(lambda m: redact_url(m.group(0)), value)
        return _NOT_XML.sub("", value)

    def prompt(self, value: str | None, *, private: bool) -> str:
        """A job's prompt as reports may show it."""
        if private:
            return PRIVATE_PROMPT
        return self.text(value) or ""
