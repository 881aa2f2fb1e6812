"""Output file names that name the same file on every OS, or say why they cannot.

A render path stays below the output folder (:func:`safe_output_path`): NFC, no
device name Windows reserves, no control or bidirectional character, none of the
characters Windows refuses, no folder ending in a dot or space. The campaign name
and shot ids name folders too (:func:`folder_name_problems`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ManifestError

if TYPE_CHECKING:
    from ..manifest import Manifest
    from .shots import PreparedShot

__all__ = ["MAX_NAME", "folder_name_problems", "safe_output_path", "windows_problem"]

MAX_NAME = 255  # bytes in one file or folder name on common file systems
_DRIVE = re.compile(r"^[A-Za-z]:")
# C1 controls, DEL, and the line and paragraph separators: invisible, and some
# terminals and file managers act on them.
_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029]")
# Unicode's Bidi_Control characters: they make a name display in another order than
# it is stored ("invoice\u202egnp.mp4" shows as "invoicemp4.png").
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_WINDOWS_REFUSED = re.compile(r'[<>:"|?*]')
_C0 = re.compile(r"[\x00-\x1f\\]")  # C0 controls (NUL included) and the backslash
# Any of the characters above: a clean name costs one search.
_SUSPECT = re.compile(r'[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069<>:"|?*]')
# Device names Windows reserves in every folder, also with an extension or trailing
# spaces before it ("nul.mp4", "CON .txt"); COM0/LPT0 and the superscript digits too.
_RESERVED = re.compile(
    r"(?i)(?:^|/)(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]|conin\$|conout\$) *(?:\.[^/]*)?(?=/|$)"
)
# A folder name ending in a dot or a space, which Windows silently drops.
_TRAILING = re.compile(r"[. ](?=/|$)")


def safe_output_path(rendered: str) -> tuple[str | None, str]:
    """``(normalised relative path, "")``, or ``(None, why it is refused)``.

    A render path must stay below the output folder: never absolute, never
    ``..``; ``.`` and empty segments are dropped; ``.mp4`` is added when missing.
    It must name the same file on every OS: it is normalised to NFC, and refused
    with a control or bidirectional character, a character Windows refuses
    (``< > : " | ? *``), a folder or file named like a Windows device (``CON``,
    ``nul.mp4``, ``com1``...) or a folder ending in a dot or space. ``why`` names
    no more than a character or a device name, so one mistake repeated by every
    job is one problem.
    """
    text = unicodedata.normalize("NFC", rendered.strip())
    if not text:
        return None, "is empty"
    suspect = _SUSPECT.search(text) is not None  # one search for the usual, clean name
    if suspect and _C0.search(text):
        return None, "contains a backslash or control character; use '/' between folders"
    for pattern, kind in ((_CONTROL, "the control character"), (_BIDI, "the bidirectional control")):
        found = pattern.search(text) if suspect else None
        if found:
            return None, f"contains {kind} U+{ord(found.group()):04X}; a file name must be visible text in reading order"
    if text.startswith("/") or _DRIVE.match(text):
        return None, "is absolute; it must be a relative path below output.dir"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "contains '..'; it must stay below output.dir"
    if not parts or any(len(p.encode("utf-8")) > MAX_NAME for p in parts):
        return None, f"has a path segment that is empty or longer than {MAX_NAME} bytes"
    path = "/".join(parts)
    path = path if path.lower().endswith(".mp4") else path + ".mp4"
    return (None, why) if (why := windows_problem(path, suspect=suspect)) else (path, "")


def windows_problem(path: str, one_name: bool = False, suspect: bool = True) -> str:
    """Why Windows could not save ``path`` as named ("" if it can); ``one_name`` for a single folder name.

    ``suspect=False`` says :data:`_SUSPECT` found nothing in it, so no refused character.
    """
    found = _WINDOWS_REFUSED.search(path) if suspect else None
    if found:
        return f"contains {found.group()!r}, which Windows does not allow in file names (< > : \" | ? *)"
    found = _RESERVED.search(path)
    if found:
        device = f"a device name on Windows ({found.group(1).upper()}, reserved with any extension)"
        return f"is {device}" if one_name else f"has a folder or file name that is {device}; choose another name"
    if _TRAILING.search(path):
        if one_name:
            return "ends in a dot, which Windows drops"
        return "has a folder name ending in a dot or space, which Windows drops"
    return ""


def folder_name_problems(manifest: Manifest, shots: Sequence[PreparedShot]) -> list[ManifestError]:
    """The campaign name and shot ids that cannot name folders and files on every OS.

    The campaign name always names folders (``reports/<campaign>``). Without
    output.filename a video goes to ``<campaign>/<shot id>/<slug>.mp4`` and the
    slug starts with the shot id (it is the whole slug without axes); slug parts
    are safe by construction (:func:`~seedance_batch.expand.shots.slug_part`).
    ``shots`` are the shots to check (none with output.filename).
    """
    found = []
    why = windows_problem(manifest.name, one_name=True)
    if why:
        found.append(ManifestError(f"the campaign name {manifest.name!r} {why}, and it names folders (reports, videos)",
                                   location=manifest.locate(("name",)), hint="choose another"))
    for shot in shots:
        why = windows_problem(shot.id, one_name=True)
        if why:
            found.append(ManifestError(
                f"the shot id {shot.id!r} {why}, and it names the folder and files of the shot's videos",
                location=manifest.locate(("shots", shot.index, "id")), hint="choose another, or set output.filename",
            ))
    return found
