"""Text that comes from outside: scrubbed, bounded, and shown inert.

Three kinds of text reach the user that nobody here wrote: what the service says
(error messages, statuses, task ids), what a webhook body carries, and what a
manifest or a data file holds. Each may be hostile or broken. The rules, applied
at the edges:

* **scrub before anything else**: a secret (the API key, a database password) a
  server echoes back is replaced before the text is stored, printed or cut, and
  so is anything shaped like a bearer credential (``Bearer ...``, ``sk-...``):
  a report written later, without the key in the environment, cannot scrub what
  it does not know (:func:`scrub`);
* **bound**: a stored or printed text has a length limit, cut *after* scrubbing, so
  a key near the cut cannot leak its first characters (:func:`bound`);
  :func:`service_text` does both, in that order;
* **inert on a terminal**: control characters (C0, DEL, C1), bidirectional overrides
  and zero-width marks are shown escaped (``\\x1b``, ``\\u202e``), so a text can
  neither clear the screen, set a hyperlink, reorder what is shown, nor hide
  characters (:func:`inert`); rich markup is never interpreted in outside text
  (callers print it with ``markup=False`` or as :class:`rich.text.Text`);
* **well-formed XML**: :func:`xml_safe` drops what XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "MAX_SERVICE_TEXT",
    "REDACTED",
    "bound",
    "inert",
    "one_line",
    "scrub",
    "service_text",
    "xml_safe",
]

REDACTED = "***"
# The longest service text (an error message, a status) kept or shown. APIDot's own
# messages are a sentence; anything longer is noise or an attack.
MAX_SERVICE_TEXT = 500
# Secrets shorter than this are not scrubbed by value: replacing "a" everywhere would
# destroy the text (and no real key is that short).
_MIN_SECRET = 6

# A credential in running text: "Bearer <token>" (what an echoed Authorization header
# looks like) and OpenAI-style "sk-..." keys (APIDot's keys look alike). Defence in
# depth for text scrubbed where the exact key is not known.
_CREDENTIAL = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+|\bsk-[A-Za-z0-9_\-]{8,}")
# Shown escaped on a terminal: C0 controls but tab, DEL, C1 controls, bidi embeddings,
# overrides and isolates, zero-width and invisible formatting characters, line and
# paragraph separators, and the byte-order mark.
_NOT_INERT = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
# Outside XML 1.0's Char production (tab, newline and carriage return are allowed),
# and lone surrogates, which no encoder writes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret given and every credential-shaped token replaced."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    lowered = text.lower()  # the pattern is case-insensitive: so is its precheck
    if "sk-" not in lowered and "bearer" not in lowered:
        return text  # nothing credential-shaped (most texts: a report scrubs thousands of them)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}" if m.group(1) else REDACTED, text)


def bound(text: str, limit: int = MAX_SERVICE_TEXT, *, total: int | None = None) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was left out.

    ``total``: the length of the text ``text`` was already cut from, for the count.
    """
    length = max(len(text), total or 0)
    if length <= limit:
        return text
    return f"{text[:limit]}… ({length - limit} more characters)"


def service_text(value: object, secrets: Iterable[str | None] = (), limit: int = MAX_SERVICE_TEXT) -> str:
    """Any text the service sent, as it may be stored: scrubbed first, then bounded.

    Lone surrogates (which no file or terminal can encode) become U+FFFD.
    """
    text = value if isinstance(value, str) else str(value)
    total = len(text)
    # Cut generously first so a 20 MB message costs no 20 MB of scrubbing; secrets
    # straddling that first cut are gone with the rest.
    text = text[: limit * 4]
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text
    scrubbed = scrub(text, secrets)
    return bound(scrubbed, limit, total=total - len(text) + len(scrubbed))


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def inert(text: str) -> str:
    """``text`` safe to print on a terminal or in a CI log: invisible and control characters escaped.

    ``\\n`` is escaped too: one outside text is one line.
    """
    return _NOT_INERT.sub(_escape, text)


def one_line(text: str) -> str:
    """:func:`inert`, with tabs as spaces too (a table cell, a log line)."""
    return inert(text).replace("\t", " ")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry."""
    if text.isprintable():
        return text  # no control character, surrogate or noncharacter: the usual case, at C speed
    return _NOT_XML.sub("", text)
