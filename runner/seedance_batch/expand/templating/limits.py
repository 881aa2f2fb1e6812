"""What a template may build: the limits, and the problem a template that breaks one is.

Plain data, no Jinja: the compiler's cache and simple path read these without
loading Jinja (:mod:`.sizes` measures values against them).
"""

from __future__ import annotations

__all__ = [
    "MAX_BITS", "MAX_EXPONENT", "MAX_ITEMS", "MAX_NESTING", "MAX_QUOTE", "MAX_RANGE", "MAX_SOURCE", "MAX_TEXT",
    "MAX_WRITTEN", "TemplateProblem", "too_long",
]

# The longest text a template may build or render: a prompt, URL or output file name.
# APIDot publishes no prompt limit; a prompt is a paragraph (scene, motion, style,
# audio), and 20,000 characters (some 3,000 words) is far beyond any. Small enough
# that building one costs microseconds and a campaign of them fits in memory.
MAX_TEXT = 20_000
# The longest template source. Jinja compiles about 40,000 characters a second
# (dense templates), so one source costs at most half a second to compile.
MAX_SOURCE = 20_000
# The most items a template may put in one list (``[x] * n``, ``|list``, ``|sort``):
# every CSV axis (at most 10,000 values) fits with room to spare.
MAX_ITEMS = 100_000
# Every ``{{ ... }}`` write of one render, into the output or a ``{% set %}`` block,
# and the text of loop bodies, counted together: a render writes more than its
# output only when it writes blocks it then reuses.
MAX_WRITTEN = 4 * MAX_TEXT
# Deepest expression or statement nesting: the parser and Python's compiler recurse
# per level, and 1,000 chained filters or 100 parentheses overflow the stack.
MAX_NESTING = 32
# range() in a template: one loop of at most this many steps (loops do not nest).
MAX_RANGE = 1000
# ``**`` and ``*`` on numbers: an exponent, and a result of at most this many bits
# (about 1,200 digits), so arithmetic stays microseconds however it is chained.
MAX_EXPONENT = 64
MAX_BITS = 4096
# Problem messages quote the template's values; a quoted value is cut to this.
MAX_QUOTE = 200


class TemplateProblem(Exception):
    """A template that cannot compile or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int | None = None, *, undefined: bool = False) -> None:
        super().__init__(message)
        self.message, self.line, self.undefined = message, line, undefined

    def copy(self) -> TemplateProblem:
        """The same problem as a fresh exception (no traceback from an earlier raise)."""
        return TemplateProblem(self.message, self.line, undefined=self.undefined)


def too_long() -> str:
    """The problem of a text over :data:`MAX_TEXT`."""
    return f"the text is longer than {MAX_TEXT} characters, the most a prompt, URL or file name may have"
