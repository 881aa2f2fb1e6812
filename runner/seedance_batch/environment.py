"""The one reader of the process's settings: ``APIDOT_API_KEY`` and ``APIDOT_BASE_URL``,
from the environment, else a ``.env`` file in the working directory.

The run needs both (:func:`credentials`); the reports need every value the key may
have, to scrub it (:func:`api_keys`). Both read ``.env`` the same way, so a file that
cannot be read or parsed is the same one-line error wherever it is met. The key is
never taken from a manifest, and never shown.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from .errors import Location, UsageError

__all__ = ["DEFAULT_BASE_URL", "KEY_ENV", "URL_ENV", "api_keys", "credentials", "read_dotenv"]

KEY_ENV = "APIDOT_API_KEY"
URL_ENV = "APIDOT_BASE_URL"
DEFAULT_BASE_URL = "https://api.apidot.ai"
DOTENV = ".env"


def credentials(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> tuple[str, str]:
    """(base URL, API key) from the environment, else ``.env``; refused when no request could use them."""
    from .run.client import check_credentials  # the run's stack (httpx): only a run needs it

    environ = os.environ if environ is None else environ
    from_file = read_dotenv((cwd or Path.cwd()) / DOTENV)
    key = environ.get(KEY_ENV) or from_file.get(KEY_ENV)
    if not key:
        raise UsageError(f"{KEY_ENV} is not set",
                         hint=f"export {KEY_ENV}=... or put it in a .env file here; or try --simulate (free, local)")
    base_url = environ.get(URL_ENV) or from_file.get(URL_ENV) or DEFAULT_BASE_URL
    check_credentials(base_url, key)
    return base_url, key


def api_keys(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> tuple[str, ...]:
    """Every value the API key has here (the environment's, ``.env``'s): what a report scrubs.

    A ``.env`` that cannot be read is an error, not an empty answer: without the key
    there is no scrubbing it, and no report is better than one that may leak it.
    """
    environ = os.environ if environ is None else environ
    from_file = read_dotenv((cwd or Path.cwd()) / DOTENV)
    return tuple(key for key in (environ.get(KEY_ENV), from_file.get(KEY_ENV)) if key)


def read_dotenv(path: Path) -> dict[str, str]:
    """The non-empty values of a ``.env`` file ({} when there is none).

    A line python-dotenv cannot parse is an error naming it (dotenv itself would log a
    warning without the file name and go on, so a mistyped key line read as "not set").
    """
    if not path.is_file():
        return {}
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    where = Location(file=path.name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise UsageError(f"cannot read it: {why}", location=where, hint="fix or remove the file") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # a statement's text starts with the blank lines before it: count past them
            source = binding.original.string
            line = binding.original.line + source[:len(source) - len(source.lstrip())].count("\n")
            raise UsageError("cannot parse this line (expected NAME=value)",
                             location=replace(where, line=line), hint="fix or remove it")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v}
