"""The bad-manifest corpus: every mistake gets its exact one-line message and exit 2.

Each ``tests/bad_manifests/NAME.yaml`` is validated through the real CLI entry
point (in-process, from that folder, so file names in messages are short) and
its stderr must equal ``NAME.expected`` byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_batch.cli import main

CORPUS = Path(__file__).parent / "bad_manifests"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


def test_corpus_is_big_enough_and_complete() -> None:
    assert len(CASES) >= 25
    missing = [name for name in CASES if not (CORPUS / f"{name}.expected").is_file()]
    assert missing == []


@pytest.mark.parametrize("name", CASES)
def test_bad_manifest_gives_its_exact_message(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS)
    code = main(["validate", f"{name}.yaml"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (CORPUS / f"{name}.expected").read_text(encoding="utf-8")
    assert "Traceback" not in err


@pytest.mark.parametrize("name", CASES)
def test_every_error_line_is_compiler_style(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS)
    main(["validate", f"{name}.yaml"])
    for line in capsys.readouterr().err.splitlines():
        file, _, rest = line.partition(": ")
        assert file.split(":")[0].endswith((".yaml", ".csv")), line
        assert rest.strip(), line
