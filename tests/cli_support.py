"""The one way tests run the real CLI: :func:`run_cli`, :class:`Project`, :class:`Outcome`.

Shaped after tox's ``ToxProject``: :class:`Project` writes files into a temporary
folder and runs the real ``seedance-batch`` there (a subprocess, so exit codes, stdout
and stderr are exactly what a user gets); :class:`Outcome` holds what happened, with
``assert_success`` / ``assert_failed`` / ``assert_out_err`` helpers that print
everything when they fail. The fixtures that hand these out are in conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Environment variables a test must never inherit from the developer's shell.
_OWN_ENV = ("APIDOT_", "SEEDANCE_", "GITHUB_STEP_SUMMARY")


@dataclass(frozen=True)
class Outcome:
    """How one CLI call ended."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def _show(self) -> str:
        return f"seedance-batch {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"

    def assert_success(self) -> Outcome:
        """Exit 0 and no traceback."""
        assert self.code == 0, self._show()
        assert "Traceback" not in self.err, self._show()
        return self

    def assert_failed(self, code: int) -> Outcome:
        """Exit ``code`` (not 0) and no traceback."""
        assert code != 0 and self.code == code, self._show()
        assert "Traceback" not in self.err, self._show()
        return self

    def assert_out_err(self, out: str | None, err: str | None) -> Outcome:
        """stdout and stderr are exactly these (None: not checked)."""
        if out is not None:
            assert self.out == out, self._show()
        if err is not None:
            assert self.err == err, self._show()
        return self


@dataclass(frozen=True)
class Project:
    """A folder to run the CLI in, with the environment a user in CI would have."""

    path: Path
    env: Mapping[str, str]

    def write(self, name: str, text: str) -> Path:
        """Write ``text`` to ``name`` (folders made as needed); the path."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Outcome:
        """``seedance-batch ARGS`` in this folder, as a real process."""
        return run_cli(self.path, *args, env={**self.env, **(env or {})}, timeout=timeout)


def run_cli(cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Outcome:
    """``seedance-batch ARGS`` in ``cwd`` as a real process, in :func:`clean_environment` plus ``env``."""
    done = subprocess.run([sys.executable, "-m", "seedance_batch", *args], cwd=cwd,
                          env={**clean_environment(), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    return Outcome(tuple(args), done.returncode, done.stdout, done.stderr)


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without APIDOT_*/SEEDANCE_* settings, with CI=true (plain log lines)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV)}
    return {**base, "CI": "true", **extra}


