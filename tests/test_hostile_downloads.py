"""A malicious or broken file server (issue 8): what arrives is bounded, checked, and never
written outside the output folder; a paid render that cannot be saved now stays ``finished``.

Real HTTP over loopback (tests/hostile_api.py), real files and symbolic links in tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from engine_support import make_jobs, plan_for, run_engine, settings
from hostile_api import HostileApi, answer, drip, endless, finished, gzip_bomb, gzipped, raw, streamed
from seedance_batch.errors import PriceFileError, UsageError
from seedance_batch.ledger import JobState, Ledger
from seedance_batch.models import load_catalog, max_video_bytes
from seedance_batch.run.downloads import download
from seedance_batch.simulator.assets import sample_mp4

KEY = "sk-hostile-downloads-0123"
# make_jobs: seedance-2-fast, 480p, 4 s; models.json: 20 Mbit/s x 4 s + 8 MiB
BOUND = 20_000_000 // 8 * 4 + 8 * (1 << 20)
PAST = f"more than this video can take ({BOUND} bytes: max_file in the model data); not kept"
MP4_HEAD = sample_mp4()[:64]


def serving(body) -> HostileApi:
    async def file(request: Request) -> Response:
        return body()

    return HostileApi(file=file)


def run_one(api: HostileApi, ledger: Ledger, tmp_path: Path, **overrides):
    jobs = make_jobs(1)
    return run_engine(plan_for(jobs, ledger), api.base_url, ledger, settings(tmp_path, **overrides), key=KEY)


def target(tmp_path: Path) -> Path:
    return tmp_path / "renders" / make_jobs(1)[0].output_path


def notes(ledger: Ledger, kind: str) -> list[str]:
    return [e.detail["error"] for e in ledger.events("demo") if e.kind == kind]


def assert_kept_finished(result, ledger: Ledger, tmp_path: Path) -> None:
    """The render is paid: the job stays finished (never failed), nothing sits at the target."""
    [rec] = result.records
    assert rec.state is JobState.FINISHED and rec.file_url
    assert result.exit_code == 1
    folder = target(tmp_path).parent
    assert not folder.exists() or list(folder.iterdir()) == []  # no video, no .part left behind


def test_the_bound_comes_from_the_model_data() -> None:
    catalog = load_catalog()
    request = make_jobs(1)[0].request
    assert max_video_bytes(request, catalog) == BOUND
    longest = {"model": "seedance-2", "input": {"prompt": "p", "duration": 15, "resolution": "1080p"}}
    assert max_video_bytes(longest, catalog) == 80_000_000 // 8 * 15 + 8 * (1 << 20)


def test_an_endless_body_stops_at_the_bound_and_the_job_stays_finished(tmp_path: Path, ledger: Ledger) -> None:
    # 16x the bound, with no Content-Length: the old client saved all of it as the .mp4
    api = serving(lambda: streamed(endless(MP4_HEAD, total=16 * BOUND), **{"content-type": "video/mp4"}))
    with api.serve():
        result = run_one(api, ledger, tmp_path)
    assert_kept_finished(result, ledger, tmp_path)
    assert notes(ledger, "download_failed") == [f"download: more than {BOUND} bytes arrived, {PAST}"]


def test_an_announced_length_past_the_bound_is_refused_before_reading(tmp_path: Path, ledger: Ledger) -> None:
    api = serving(lambda: streamed(endless(MP4_HEAD, total=BOUND + 1), **{"content-length": str(BOUND + 1)}))
    with api.serve():
        result = run_one(api, ledger, tmp_path)
    assert_kept_finished(result, ledger, tmp_path)
    assert notes(ledger, "download_failed") == [f"download: the server announces {BOUND + 1} bytes, {PAST}"]


def test_a_gzip_bomb_is_refused_as_soon_as_it_inflates_past_the_bound(tmp_path: Path, ledger: Ledger) -> None:
    # ~260 KB on the wire, 256 MiB inflated: the old client inflated (and saved) all of it
    api = serving(lambda: streamed(gzip_bomb(MP4_HEAD, total_mib=256), **{"content-encoding": "gzip"}))
    with api.serve():
        result = run_one(api, ledger, tmp_path)
    assert_kept_finished(result, ledger, tmp_path)
    assert notes(ledger, "download_failed") == [f"download: more than {BOUND} bytes once decoded, {PAST}"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_an_encoded_video_is_decoded_and_its_length_checked_against_the_encoded_bytes(
        encoding: str, tmp_path: Path, ledger: Ledger) -> None:
    # Content-Length counts the encoded bytes: the old client compared it with the decoded size
    import zlib

    body = gzipped(sample_mp4()) if encoding == "gzip" else zlib.compress(sample_mp4())
    api = serving(lambda: raw(body, **{"content-encoding": encoding, "content-type": "video/mp4"}))
    with api.serve():
        result = run_one(api, ledger, tmp_path)
    assert result.counts() == {"done": 1}
    assert target(tmp_path).read_bytes() == sample_mp4()
    assert result.records[0].size == len(sample_mp4())


def test_a_body_that_drips_is_cut_at_run_timeout(tmp_path: Path, ledger: Ledger) -> None:
    # One byte every 0.5 s never trips a read timeout; the old client waited the 20 s out.
    api = serving(lambda: streamed(drip(MP4_HEAD, every=0.5, count=40)))
    with api.serve():
        started = time.monotonic()
        result = run_one(api, ledger, tmp_path, timeout=250)  # 1 s of real time at the tests' scale
        elapsed = time.monotonic() - started
    assert_kept_finished(result, ledger, tmp_path)
    assert notes(ledger, "download_failed") == ["download: not done within run.timeout (250 s)"]
    assert elapsed < 5


def test_an_html_page_is_not_saved_as_the_video_and_a_later_run_downloads_it(tmp_path: Path, ledger: Ledger) -> None:
    page = b"<html><body>Access denied. Please log in again.</body></html>\n"[:64]
    api = serving(lambda: raw(page, **{"content-type": "text/html"}))
    with api.serve():
        result = run_one(api, ledger, tmp_path)
        assert_kept_finished(result, ledger, tmp_path)
        assert notes(ledger, "download_failed") == [
            "download: what arrived is not an MP4 video (no 'ftyp' box at its start); not kept"]
        api.file = None  # the server behaves again: the paid render is fetched, not paid again
        again = run_one(api, ledger, tmp_path)
    assert again.counts() == {"done": 1} and again.submitted == 0
    assert [s.method for s in api.seen].count("POST") == 1


def test_a_link_planted_at_the_temp_name_is_never_written_through(tmp_path: Path, ledger: Ledger) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    final = target(tmp_path)
    final.parent.mkdir(parents=True)
    (final.parent / f".{final.name}.part").symlink_to(victim)
    api = HostileApi()
    with api.serve():
        result = run_one(api, ledger, tmp_path)
    assert result.counts() == {"done": 1}
    assert victim.read_text() == "precious"
    assert not final.is_symlink() and final.read_bytes() == sample_mp4()
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # the planted link is gone


def test_a_folder_that_leads_out_of_the_output_folder_is_never_written_in(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "evil").symlink_to(outside, target_is_directory=True)
    api = HostileApi()

    async def fetch() -> None:
        async with httpx.AsyncClient() as http:
            await download(http, f"{api.base_url}/files/video.mp4", renders / "evil" / "v.mp4",
                           max_bytes=BOUND, root=renders)

    with api.serve(), pytest.raises(UsageError) as caught:
        anyio.run(fetch)
    assert caught.value.message == f"will not write the video at {renders / 'evil'}: it is a symbolic link or not a folder"
    assert list(outside.iterdir()) == [] and api.seen == []


def test_a_target_made_unsafe_mid_run_leaves_the_job_finished(tmp_path: Path, ledger: Ledger) -> None:
    outside = tmp_path / "outside.mp4"
    final = target(tmp_path)
    api = HostileApi()

    async def status(request: Request) -> Response:  # the link appears after the render was paid
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.is_symlink():
            final.symlink_to(outside)
        return answer(finished("task-1", f"{api.base_url}/files/video.mp4"))

    api.status = status
    with api.serve():
        result = run_one(api, ledger, tmp_path)
        [rec] = result.records
        assert rec.state is JobState.FINISHED  # not failed: --retry-failed would pay again
        [why] = notes(ledger, "unsafe_target")
        assert f"would land outside the output folder {tmp_path / 'renders'} (a symbolic link leads it to {outside})" in why
        assert not outside.exists()
        final.unlink()
        api.status = None
        again = run_one(api, ledger, tmp_path)
    assert again.counts() == {"done": 1} and again.submitted == 0


# --- run refuses before spending ---------------------------------------------------------

MANIFEST = """\
version: 1
name: links
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  n: [a, b]
shots:
  - id: s
    prompt: "shot {{ n }}"
"""


def test_run_refuses_a_target_that_is_a_link_out_of_the_output_folder_before_submitting(tmp_path: Path) -> None:
    from seedance_batch.pipeline import load_plan

    (tmp_path / "m.yaml").write_text(MANIFEST)
    _, plan = load_plan(tmp_path / "m.yaml", None)
    job = plan.jobs[1].priced.job
    outside = tmp_path / "elsewhere.mp4"
    link = tmp_path / "renders" / job.output_path
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    api = HostileApi()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIDOT_", "SEEDANCE_"))}
    with api.serve():
        env.update({"CI": "true", "APIDOT_BASE_URL": api.base_url, "APIDOT_API_KEY": KEY})
        done = subprocess.run([sys.executable, "-m", "seedance_batch", "run", "m.yaml", "--time-scale", "0.004"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    where = job.location
    assert line == (f"m.yaml:{where.line}:{where.col}: {where.path} (job {job.label}): output path "
                    f"{job.output_path!r} would land outside the output folder renders (a symbolic link leads it "
                    f"to {outside}); remove the link or change output.filename; nothing was submitted")
    assert api.seen == []  # nothing submitted, nothing paid
    assert not outside.exists()


def test_the_download_bound_in_a_price_file_is_validated(tmp_path: Path) -> None:
    data = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "models.json").read_text())
    data["models"]["seedance-2-fast"]["max_file"] = {"mbit_per_second": {"480p": 0}}
    (tmp_path / "zero.json").write_text(json.dumps(data))
    with pytest.raises(PriceFileError) as caught:
        load_catalog(tmp_path / "zero.json")
    assert caught.value.format() == (f"{tmp_path / 'zero.json'}: models.seedance-2-fast.max_file.mbit_per_second.480p: "
                                     "0 is less than or equal to the minimum of 0")
    data["models"]["seedance-2-fast"]["max_file"] = {"mbit_per_second": {"1080p": 50}}
    (tmp_path / "res.json").write_text(json.dumps(data))
    with pytest.raises(PriceFileError, match=r"resolution\(s\) 1080p are not offered by seedance-2-fast"):
        load_catalog(tmp_path / "res.json")
