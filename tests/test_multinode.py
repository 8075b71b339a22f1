"""Many machines: two "machines" of one CPU process each, started by torchrun on the loopback address, train exactly
as one machine with two processes started by Lightning, and a job killed as a whole continues exactly when it is
launched again with --resume. Also the rank rules that need no training (who sets up the run, what is refused)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset

from mtl.cli.main import main
from mtl.engine.train import is_launcher_process

pytestmark = pytest.mark.slow

TIMEOUT_S = 300  # per launch: a hang fails with the processes' output instead of holding up the suite
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}  # the same threads in every launch
# 8 training images, 2 per step on each of 2 processes: 2 steps per epoch, 4 in all; a gradient method is included
# because it all-reduces task gradients itself (mtl.weighting) besides DDP's own all-reduce.
FLAGS = [*FAST_TRAIN_FLAGS, "--num_epochs", "2", "--checkpoint_every_n_steps", "1", "--accelerator", "cpu",
         "--precision", "32", "--loss_weighting", "pcgrad", "--prepare_submission", "no",
         "--aspp_channels", "32", "--decoder_channels", "32", "--skip_channels", "16"]
KILLER = str(Path(__file__).with_name("kill_after_step.py"))
TORCHELASTIC = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": "29500"}
SLURM = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "2", "SLURM_LOCALID": "0",
         "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "1234"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class Job:
    """The processes of one launch of the run in ``run``; their output goes to files beside it (no pipe to fill up)
    and they are stopped whatever happens."""

    def __init__(self, run: Path, name: str, commands: list[list[str]]) -> None:
        run.parent.mkdir(parents=True, exist_ok=True)
        self.run = run
        self.logs = [run.parent / f"{name}-{i}.log" for i in range(len(commands))]
        self.procs = []
        for command, log in zip(commands, self.logs):
            with log.open("w") as out:
                self.procs.append(subprocess.Popen(command, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                                   start_new_session=True))

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs)

    def wait(self) -> list[int]:
        deadline = time.monotonic() + TIMEOUT_S
        try:
            return [proc.wait(timeout=max(0.0, deadline - time.monotonic())) for proc in self.procs]
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {TIMEOUT_S} s:\n{self.output()}")
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGTERM first: torchrun then stops its workers, which run in sessions of their own; then SIGKILL."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def lightning_job(run: Path, *args: str) -> Job:
    """One machine, two processes: `mtl train --devices 2 --strategy ddp`, Lightning starting the second process."""
    command = [sys.executable, "-m", "mtl.cli.main", "train", "--log_dir", str(run), "--devices", "2", "--strategy"]
    return Job(run, "lightning", [[*command, "ddp", *args]])


def torchrun_job(run: Path, name: str, *program: str) -> Job:
    """Two machines of one process each: one torchrun per machine, as on a cluster, on the loopback address."""
    port = str(free_port())
    return Job(run, name, [
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
         "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", port, *program]
        for node in (0, 1)
    ])


def rows_without_blanks(path: Path) -> list[dict[str, str]]:
    """metrics.csv rows without their empty cells (a file cut short lacks the columns that came later)."""
    return [{key: value for key, value in row.items() if value != ""} for row in read_rows(path)]


def finished(job: Job) -> Path:
    codes = job.wait()
    assert codes == [0] * len(codes), job.output()
    return job.run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("multinode") / "data", {"train": 8, "val": 2, "test": 2})


def test_two_machines_killed_and_launched_again_end_as_one_machine_with_two_processes(
    dataset: Path, tmp_path: Path
) -> None:
    """Three launches (each costs two imports of torch and Lightning; the suite has two cores): the uninterrupted
    reference alongside the two-machine job that is killed, then that job launched again with --resume."""
    reference = lightning_job(tmp_path / "reference" / "run", "--dataset_root", str(dataset), *FLAGS)
    try:
        run = tmp_path / "torchrun" / "run"
        # Every process SIGKILLs itself right after step 3 and its checkpoint (kill_after_step.py), mid epoch 1:
        # the whole job dies at that step, whatever the timing.
        killed = torchrun_job(run, "killed", KILLER, "3", "--log_dir", str(run), "--dataset_root", str(dataset),
                              "--devices", "1", "--num_nodes", "2", *FLAGS)
        assert 0 not in killed.wait(), killed.output()
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
        killed_rows = rows_without_blanks(run / "metrics.csv")

        resumed = torchrun_job(run, "resumed", "-m", "mtl.cli.main", "train", "--resume", str(run),
                               "--prepare_submission", "yes")
        finished(resumed)
        rank0, rank1 = (log.read_text() for log in resumed.logs)
        assert "submission:" in rank0 and "submission:" not in rank1  # packed once, by global rank 0
        assert "run directory:" not in rank1
        assert (run / "submission.zip").is_file()
        finished(reference)
    finally:
        reference.stop()

    # Until the kill, the two machines logged what one machine with two processes logged (no resume involved) ...
    expected_rows = rows_without_blanks(reference.run / "metrics.csv")
    assert any("metrics_summary/grader" in row for row in killed_rows)  # epoch 0's validation
    assert killed_rows == expected_rows[: len(killed_rows)]
    # ... and after the resume they end with bit-identical weights and the same metrics.csv (no wall-clock columns).
    first = torch.load(reference.run / "checkpoints" / "last.ckpt", weights_only=True)
    second = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == second["global_step"] == 4
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key
    assert read_rows(reference.run / "metrics.csv") == read_rows(run / "metrics.csv")


def launched_by(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """This process as if a launcher had started it with ``env`` (and no other launcher's variables)."""
    for key in [*TORCHELASTIC, *SLURM, "RANK", "GROUP_RANK", "SLURM_PROCID", "SLURM_NODEID", "NODE_RANK"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    ("env", "rank_zero"),
    [
        ({**TORCHELASTIC, "RANK": "0", "GROUP_RANK": "0"}, True),
        ({**TORCHELASTIC, "RANK": "1", "GROUP_RANK": "1"}, False),  # local rank 0 of the second machine
        ({**SLURM, "SLURM_PROCID": "0", "SLURM_NODEID": "0"}, True),
        ({**SLURM, "SLURM_PROCID": "1", "SLURM_NODEID": "1"}, False),
        ({"LOCAL_RANK": "1"}, False),  # a process Lightning's own launcher started
        ({}, True),
    ],
)
def test_only_global_rank_zero_sets_up_the_run(monkeypatch: pytest.MonkeyPatch, env: dict, rank_zero: bool) -> None:
    launched_by(monkeypatch, env)
    assert is_launcher_process() is rank_zero


SECOND_MACHINE = {**TORCHELASTIC, "RANK": "1", "GROUP_RANK": "1"}


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        (SECOND_MACHINE, ["--devices", "1", "--num_nodes", "2"], "--log_dir is required under torchrun or srun"),
        (SECOND_MACHINE, ["--log_dir", "RUN", "--devices", "2", "--num_nodes", "2"],
         "--devices 2 × --num_nodes 2 must equal the 2 processes"),
        (SECOND_MACHINE, ["--log_dir", "RUN", "--devices", "2", "--strategy", "ddp_spawn"], "--strategy ddp_spawn"),
        ({}, ["--log_dir", "RUN", "--num_nodes", "2"], "--num_nodes 2: start mtl train on every machine"),
    ],
)
def test_launch_refusals_come_first_and_name_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path, env: dict, flags: list[str],
    message: str,
) -> None:
    """Refused by every process before anything is written (no run directory to clean up, no process left waiting)."""
    launched_by(monkeypatch, env)
    monkeypatch.chdir(tmp_path)
    data = make_tiny_dataset(tmp_path / "data", {"train": 2})
    flags = [str(tmp_path / "run") if flag == "RUN" else flag for flag in flags]
    assert main(["train", "--dataset_root", str(data), "--accelerator", "cpu", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_a_run_left_before_its_first_step_is_named_as_such(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """What a process killed while it waited for the other machines leaves: set up, no checkpoint, no cleanup."""
    launched_by(monkeypatch, {})
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "source.zip").write_bytes(b"")
    data = make_tiny_dataset(tmp_path / "data", {"train": 2})
    assert main(["train", "--dataset_root", str(data), "--log_dir", str(run), "--accelerator", "cpu"]) == 2
    assert "stopped before its first step (no checkpoint): delete it" in capsys.readouterr().err
