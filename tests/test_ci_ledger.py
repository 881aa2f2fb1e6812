"""The double payment the old CI recipe made, and the shared ledger that ends it (issue 10).

The old .github/workflows/render.yml kept the SQLite ledger (.seedance/) and the videos in
actions/cache. Caches are scoped: a pull request's run saves into the pull request's scope,
which main's runs cannot restore. So in the ordinary course of work (main renders, a pull
request labelled ``render`` adds jobs and renders them, it is merged, main renders) main
restores its own older ledger, sees the pull request's jobs as new, and pays for them again.

Both tests replay that sequence with real ``seedance-batch run`` processes, each in a fresh
folder as a CI runner is, against one simulator whose stats count the tasks created per job
key: with the ledger in a cache (:class:`ActionsCache`, restore and save as the old recipe
did them), every job of the pull request is paid twice; with one PostgreSQL ledger
(SEEDANCE_STATE, as render.yml now passes it), every job is paid once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli_support import Outcome, run_cli
from engine_support import numbered_manifest
from seedance_batch.simulator import SimulatorConfig, run_simulator

SCALE = 0.01
MAIN_JOBS, PR_JOBS = 4, 7  # the pull request adds three jobs to main's four
CACHED = (".seedance", "renders")


@dataclass
class ActionsCache:
    """actions/cache as the old render.yml used it: entries are immutable and saved under a new key each
    run; a restore takes the newest entry whose key starts with the first restore-key prefix that matches,
    among the entries the run's scope may read: its own ref's and the default branch's (GitHub's rule)."""

    folder: Path
    entries: list[tuple[str, str, Path]] = field(default_factory=list)  # (ref, key, snapshot)

    def restore(self, ref: str, prefixes: list[str], workdir: Path) -> str | None:
        readable = [entry for entry in self.entries if entry[0] in (ref, "refs/heads/main")]
        for prefix in prefixes:
            found = [entry for entry in readable if entry[1].startswith(prefix)]
            if found:
                _, key, snapshot = found[-1]
                for name in CACHED:
                    if (snapshot / name).exists():
                        shutil.copytree(snapshot / name, workdir / name)
                return key
        return None

    def save(self, ref: str, key: str, workdir: Path) -> None:
        snapshot = self.folder / f"entry{len(self.entries)}"
        for name in CACHED:
            if (workdir / name).exists():
                shutil.copytree(workdir / name, snapshot / name)
        self.entries.append((ref, key, snapshot))


def runner_folder(folder: Path, name: str, jobs: int) -> Path:
    """A fresh CI runner's checkout: the branch's manifest, and nothing else (no ledger, no videos)."""
    workdir = folder / name
    workdir.mkdir()
    (workdir / "m.yaml").write_text(numbered_manifest("launch", jobs, max_in_flight=jobs))
    return workdir


def render(workdir: Path, sim: Any, env: dict[str, str] | None = None) -> Outcome:
    """``seedance-batch run m.yaml`` in ``workdir``, against the simulator."""
    return run_cli(workdir, "run", "m.yaml", "--time-scale", str(SCALE), timeout=120,
                   env={"APIDOT_BASE_URL": sim.base_url, "APIDOT_API_KEY": "sk-sim-ci", **(env or {})})


def test_the_ledger_in_a_cache_pays_twice_for_a_pull_requests_jobs(tmp_path: Path) -> None:
    cache = ActionsCache(tmp_path / "cache")
    main, pull = "refs/heads/main", "refs/pull/7/merge"
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        # 1. a push to main renders the campaign
        first = runner_folder(tmp_path, "run1", MAIN_JOBS)
        assert cache.restore(main, ["seedance-main-"], first) is None
        render(first, sim).assert_success()
        cache.save(main, "seedance-main-1-1", first)
        # 2. a pull request labelled "render" adds three jobs: it restores main's ledger, renders the new ones
        second = runner_folder(tmp_path, "run2", PR_JOBS)
        assert cache.restore(pull, ["seedance-feature-", "seedance-main-"], second) == "seedance-main-1-1"
        render(second, sim).assert_success()
        cache.save(pull, "seedance-feature-2-1", second)
        # 3. merged: the push to main restores main's own (older) ledger: the PR's entry is out of its scope
        third = runner_folder(tmp_path, "run3", PR_JOBS)
        assert cache.restore(main, ["seedance-main-"], third) == "seedance-main-1-1"
        render(third, sim).assert_success()
        by_key = sim.stats()["submits"]["by_body"]
    assert sorted(by_key.values()) == [1] * MAIN_JOBS + [2] * (PR_JOBS - MAIN_JOBS)  # the PR's jobs, paid twice


def test_the_shared_postgresql_ledger_pays_once_for_the_same_sequence(tmp_path: Path, pg_url: str) -> None:
    state = {"SEEDANCE_STATE": pg_url}  # what render.yml passes from the SEEDANCE_STATE secret
    with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        render(runner_folder(tmp_path, "run1", MAIN_JOBS), sim, state).assert_success()  # main
        pr = render(runner_folder(tmp_path, "run2", PR_JOBS), sim, state).assert_success()  # the labelled PR
        merged = render(runner_folder(tmp_path, "run3", PR_JOBS), sim, state).assert_success()  # main, merged
        by_key = sim.stats()["submits"]["by_body"]
    assert sorted(by_key.values()) == [1] * PR_JOBS  # every job paid once
    assert "submitted 3 this run" in pr.out and "submitted 0 this run" in merged.out
