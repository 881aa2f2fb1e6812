"""The built wheel works on its own: data files found from site-packages, from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel built from this checkout, offline.

    Its dependencies come from the environment running the tests (a virtualenv or the
    system Python alike): that environment's site-packages is put on the new venv's path
    by a .pth file. Only plain paths are added, so the checkout's own editable install
    (a .pth in that site-packages, which is not processed) cannot shadow the wheel.
    """
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(REPO)],
        check=True, capture_output=True, timeout=120,
    )
    wheel = next(root.glob("seedance_batch-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    outer = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "_outer_dependencies.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )
    return env_dir


def test_wheel_carries_schemas_and_runs_from_elsewhere(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, seedance_batch, seedance_batch._data as d;"
        "print(json.dumps([seedance_batch.__file__, str(d.schemas_dir())]))"
    )
    out = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True
    )
    package_file, schemas = json.loads(out.stdout)
    assert package_file.startswith(str(installed)), package_file
    assert schemas.startswith(str(installed)), schemas
    assert {"models.json", "models.schema.json", "manifest.schema.json"} <= {p.name for p in Path(schemas).iterdir()}


def test_installed_console_script_prints_prices(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed / "bin" / "seedance-batch"), "prices"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "snapshot 2026-04-19" in result.stdout
    assert str(installed) in result.stdout.replace("\n", "")  # read from the wheel, not the checkout
