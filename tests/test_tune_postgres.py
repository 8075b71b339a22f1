"""`mtl tune --storage postgresql://...` against a real PostgreSQL server: two workers on one study, and a worker
killed mid-trial whose trial the other worker records as FAIL (Optuna's heartbeat) while the study goes on.

The server: MTL_TEST_POSTGRES_URL, default postgresql://mtl:mtl@127.0.0.1:5432/mtl_test (`.ci/run`, as root,
installs Debian's postgresql, starts it and creates that role and database). When none is reachable the tests
are skipped, unless MTL_REQUIRE_POSTGRES is set (as `.ci/run` does): then they fail.

Run as a script, this file is one `mtl tune` worker process (`python tests/test_tune_postgres.py TUNE_ARGS` is
`mtl tune TUNE_ARGS`), with three hooks that only decide *when* a trial trains, so that no assertion depends on
timing luck; each is set by an environment variable and acts on the worker's first trial:
  MTL_TEST_BARRIER=DIR:N  wait until N workers are inside a trial (each writes DIR/<pid>): they overlap for sure
  MTL_TEST_GATE=FILE      wait until FILE exists
  MTL_TEST_HOLD=DIR       after the first training step, write DIR/<pid> and wait to be killed
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset
from optuna.trial import TrialState

DEFAULT_URL = "postgresql://mtl:mtl@127.0.0.1:5432/mtl_test"
HEARTBEAT_S = 1
GRACE_S = 3
WAIT_S = 240  # longest wait for one worker event (a loaded 2-core machine); normally a few seconds
SPACE = "optimizer_lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"


# ------------------------------------------------------------------------------------------------ the worker
def _wait_for_file(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"test hook: gave up waiting for {what}")
        time.sleep(0.1)


def worker(argv: list[str]) -> int:
    """`mtl tune ARGV` with the timing hooks of the module docstring around the worker's first trial."""
    import pytorch_lightning as pl

    import mtl.tuning.study as study_module
    from mtl.cli.main import main

    real_run_training = study_module.run_training
    first = [True]

    class HoldAfterFirstStep(pl.Callback):
        def __init__(self, folder: Path) -> None:
            self.folder = folder

        def on_train_batch_end(self, *args: object) -> None:
            (self.folder / f"{os.getpid()}.tmp").write_text("mid-trial")
            os.replace(self.folder / f"{os.getpid()}.tmp", self.folder / str(os.getpid()))
            while True:  # until SIGKILL; the heartbeat thread keeps beating meanwhile
                time.sleep(1)

    def run_training(cfg, extra_callbacks=()):
        if first[0]:
            first[0] = False
            if barrier := os.environ.get("MTL_TEST_BARRIER"):
                folder, count = barrier.rsplit(":", 1)
                (Path(folder) / str(os.getpid())).touch()
                _wait_for_file(lambda: len(os.listdir(folder)) >= int(count), f"{count} workers in {folder}")
            if gate := os.environ.get("MTL_TEST_GATE"):
                _wait_for_file(lambda: os.path.exists(gate), gate)
            if hold := os.environ.get("MTL_TEST_HOLD"):
                extra_callbacks = [*extra_callbacks, HoldAfterFirstStep(Path(hold))]
        return real_run_training(cfg, extra_callbacks=extra_callbacks)

    study_module.run_training = run_training
    return main(["tune", *argv])


# ------------------------------------------------------------------------------------------------- the tests
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """The server's URL, once it answered a query; skip (or fail under MTL_REQUIRE_POSTGRES) otherwise."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = os.environ.get("MTL_TEST_POSTGRES_URL", DEFAULT_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # no driver (pip install mtl[postgres]), no server, wrong credentials, ...
        reason = f"no PostgreSQL server reachable at {shown} ({type(exc).__name__}: {' '.join(str(exc).split())})"
        if os.environ.get("MTL_REQUIRE_POSTGRES"):
            pytest.fail(f"MTL_REQUIRE_POSTGRES is set but {reason}", pytrace=False)
        pytest.skip(f"{reason}; set MTL_TEST_POSTGRES_URL, or run .ci/run as root to install and start one")
    return url


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("pg") / "data", {"train": 4, "val": 2}, 64, 64)


@pytest.fixture
def study_name(postgres_url: str):
    """A study name of its own; the study is deleted afterwards so that the database stays clean."""
    name = f"mtl-test-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=postgres_url)
    except KeyError:
        pass


class Workers:
    """`mtl tune` worker processes of one study; each one's output goes to a log file."""

    def __init__(self, root: Path, url: str, study: str, data: Path) -> None:
        self.root, self.url, self.study, self.data = root, url, study, data
        self.space = root / "space.yaml"
        self.space.write_text(SPACE)
        self.procs: list[subprocess.Popen] = []

    def start(self, n_trials: int, seed: int, grace: int = GRACE_S, **hooks: str) -> subprocess.Popen:
        log = self.root / f"worker-{len(self.procs)}.log"
        argv = [
            sys.executable, __file__, "--study", self.study, "--n-trials", str(n_trials), "--seed", str(seed),
            "--storage", self.url, "--runs-dir", str(self.root / "runs"), "--space", str(self.space),
            "--heartbeat-interval", str(HEARTBEAT_S), "--grace-period", str(grace), "--",
            "--dataset_root", str(self.data), *FAST_TRAIN_FLAGS, "--observe_valid_ids", "0", "--num_epochs", "1",
        ]
        env = {**os.environ, **hooks, "PYTHONUNBUFFERED": "1"}
        with log.open("w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return proc.log.read_text()  # type: ignore[attr-defined]

    def finish(self, proc: subprocess.Popen) -> int:
        try:
            return proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {proc.pid} still running after {WAIT_S} s:\n{self.output(proc)}")

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        # A storage opened from the URL alone has no heartbeat: reading never fails a trial itself.
        return optuna.load_study(study_name=self.study, storage=self.url).get_trials()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path, postgres_url: str, study_name: str, dataset: Path):
    group = Workers(tmp_path, postgres_url, study_name, dataset)
    yield group
    group.stop_all()


def wait_until(condition: Callable[[], object], what: str, proc: subprocess.Popen, workers: Workers) -> object:
    """Poll ``condition`` until it holds; fail early (with its output) when ``proc`` exits meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"worker {proc.pid} exited ({proc.returncode}) before {what}:\n{workers.output(proc)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {WAIT_S} s:\n{workers.output(proc)}")
        time.sleep(0.1)


def val_graders(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [float(r["metrics_summary/grader"]) for r in csv.DictReader(f) if r.get("metrics_summary/grader")]


def test_two_workers_share_one_study(workers: Workers) -> None:
    """Two workers at the same time, 2 trials each: 4 trials, numbers 0..3, each trained once, none lost."""
    barrier = workers.root / "barrier"
    barrier.mkdir()
    # A long grace period: here no trial may be failed, even if a loaded machine delays a heartbeat.
    a = workers.start(2, seed=0, grace=60, MTL_TEST_BARRIER=f"{barrier}:2")
    b = workers.start(2, seed=1000, grace=60, MTL_TEST_BARRIER=f"{barrier}:2")
    codes = [workers.finish(a), workers.finish(b)]
    assert codes == [0, 0], "\n\n".join(workers.output(p) for p in (a, b))
    for proc in (a, b):
        assert "Traceback" not in workers.output(proc)

    trials = workers.trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.state) for t in trials]
    assert Counter(t.user_attrs["pid"] for t in trials) == {a.pid: 2, b.pid: 2}
    run_dirs = {Path(t.user_attrs["run_dir"]) for t in trials}
    assert run_dirs == set((workers.root / "runs" / workers.study).glob("trial_*"))
    assert len(run_dirs) == 4
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        assert run.name == f"trial_{t.number}"
        assert val_graders(run) == [t.value]  # one epoch, trained once: one validation row
    # the first trials of the two workers were running at the same time (the barrier made sure of it)
    firsts = [min((t for t in trials if t.user_attrs["pid"] == p.pid), key=lambda t: t.number) for p in (a, b)]
    assert max(t.datetime_start for t in firsts) < min(t.datetime_complete for t in firsts)


def test_a_killed_workers_trial_is_failed_by_the_other_worker(workers: Workers) -> None:
    """Worker A is killed mid-trial while B runs; B records A's trial as FAIL and the study goes on."""
    hold, gate = workers.root / "hold", workers.root / "gate"
    hold.mkdir()
    a = workers.start(1, seed=0, MTL_TEST_HOLD=str(hold))
    b = workers.start(2, seed=1000, MTL_TEST_GATE=str(gate))

    # A is mid-trial: past its first training step, and its trial is RUNNING in the database
    wait_until(lambda: (hold / str(a.pid)).exists(), "first training step of worker A", a, workers)
    running = wait_until(
        lambda: [t for t in workers.trials() if t.user_attrs.get("pid") == a.pid and t.state == TrialState.RUNNING],
        "RUNNING trial of worker A", a, workers,
    )
    # B is inside its first trial too, held at the gate
    wait_until(lambda: [t for t in workers.trials() if t.user_attrs.get("pid") == b.pid], "B's trial", b, workers)
    os.kill(a.pid, signal.SIGKILL)
    assert a.wait(timeout=WAIT_S) == -signal.SIGKILL
    killed_at = time.monotonic()

    # A can send no more heartbeats; once its last one is older than the grace period, let B go on
    time.sleep(GRACE_S + 1.5)
    (killed,) = running
    assert {t.number: t.state for t in workers.trials()}[killed.number] == TrialState.RUNNING  # nobody checked yet
    gate.touch()
    assert workers.finish(b) == 0, workers.output(b)
    assert time.monotonic() - killed_at > GRACE_S

    trials = workers.trials()
    by_number = {t.number: t for t in trials}
    states = {t.number: (t.state, t.user_attrs["pid"]) for t in trials}
    assert states[killed.number] == (TrialState.FAIL, a.pid), states
    b_trials = sorted((t for t in trials if t.user_attrs["pid"] == b.pid), key=lambda t: t.number)
    assert len(trials) == 3 and [t.state for t in b_trials] == [TrialState.COMPLETE] * 2, states
    # B's first trial waited at the gate far longer than the grace period: its heartbeats kept it alive.
    # B's second trial started after A's trial had been failed: B found it stale at that trial's start.
    assert b_trials[1].datetime_start >= by_number[killed.number].datetime_complete
    out = workers.output(b)
    assert f"trial {killed.number} (host " in out
    assert f"pid {a.pid}) stopped sending heartbeats; recorded as FAIL" in out
    assert "Traceback" not in out


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))




def test_workers_started_together_on_an_empty_database_all_open_it(postgres_url: str) -> None:
    """Four workers create Optuna's tables in an empty schema at the same moment: those that lose the race to
    create a table or type find it made and open the storage (without the retry, most of them fail here).
    Threads, released together by a barrier, race as processes do: the driver waits on the server without the GIL."""
    import threading

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from mtl.tuning.study import TuneError, open_storage

    schema, count = f"race_{uuid.uuid4().hex[:12]}", 4
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    together, outcomes = threading.Barrier(count), []

    def open_one() -> None:
        together.wait()
        try:
            open_storage(url.render_as_string(hide_password=False))
            outcomes.append("ok")
        except TuneError as exc:
            outcomes.append(str(exc))

    workers = [threading.Thread(target=open_one) for _ in range(count)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=WAIT_S)
        assert outcomes == ["ok"] * count
        with engine.connect() as connection:
            tables = connection.execute(text(f"SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"))
            assert tables.scalar() > 0  # the tables were made in the empty schema, not found elsewhere
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
