"""The grid through Slurm (awd/slurm.py): against a real one-node cluster where one runs, as in CI.

`.ci/run` starts the cluster (`.ci/slurm-up`), exports SLURM_CONF and AWD_TEST_SLURM=1, and stops it again. On
a machine without one the cluster tests skip with the reason; under CI=true they fail instead. The first tests
need no cluster: what is submitted, and what is left out.
"""
import importlib
import json
import os
import subprocess
import sys
import time

import pytest

from awd.config import ConfigError
from awd.experiments import run_grid, variant_config
from awd.train import load_run
from test_train import interrupted_in_epoch  # killed in epoch N, as test_train's resume tests do

S = importlib.import_module("awd.slurm")
T = importlib.import_module("awd.train")
pytestmark = pytest.mark.usefixtures("data_dir")

EPOCHS = 3  # the smoke profile's own: `grid --profile smoke` as the README would run it
WALL_CLOCK = ("seconds", "tokens_per_s")  # the only columns a run on another process may change


def smoke(variant="full"):
    return variant_config(variant, "smoke", 0, epochs=EPOCHS, progress=False)


def history_without_wall_clock(path):
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in load_run(path).history]


def grid_cli(*args):
    return subprocess.run([sys.executable, "-m", "awd", "grid", "--profile", "smoke", "--seeds", "0",
                           "--epochs", str(EPOCHS), *args], capture_output=True, text=True, timeout=300)


# --- without a cluster ---------------------------------------------------------------------------------------
def test_dry_run_prints_the_array_and_submits_nothing(tmp_path):
    out = grid_cli("--variants", "full", "no tying", "--launcher", "slurm", "--dry-run", "--partition", "gpu",
                   "--gpus-per-task", "1", "--mem", "8G", "--sbatch-arg=--qos=high", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "would submit 2 as one Slurm job array" in out.stdout
    sbatch = next(line for line in out.stdout.splitlines() if line.startswith("sbatch "))
    for flag in ("--array=0-1%2", "--partition=gpu", "--gpus-per-task=1", "--mem=8G", "--qos=high",
                 "--cpus-per-task=1", "--time=240", "--signal=USR2@90"):
        assert flag in sbatch.split(), flag
    assert f"task 1: {smoke('no tying').run_id()} (no tying, seed 0)" in out.stdout
    assert not any(tmp_path.iterdir())


def test_without_submitit_or_sbatch_nothing_is_submitted_and_the_error_says_why(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "submitit", None)  # as if it were not installed
        with pytest.raises(ConfigError, match="needs submitit.*pip install submitit"):
            S.submit_grid([smoke()], tmp_path, S.SlurmOptions())
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="sbatch is not on PATH.*--launcher local"):
        S.submit_grid([smoke()], tmp_path, S.SlurmOptions())
    with pytest.raises(ConfigError, match=r"--sbatch-arg 'qos=high': give one sbatch option as --key=value"):
        S.SlurmOptions(sbatch_args=["qos=high"]).validate()
    assert not any(tmp_path.iterdir())


def test_finished_and_locked_runs_are_not_submitted(tmp_path):
    done, held, free = smoke("full"), smoke("no tying"), smoke("no dropout")
    (tmp_path / done.run_id()).mkdir()
    (tmp_path / done.run_id() / "config.json").write_text(done.to_json())
    (tmp_path / done.run_id() / "summary.json").write_text('{"status": "finished"}')
    (tmp_path / held.run_id()).mkdir()
    with T.run_lock(tmp_path / held.run_id()):  # as a process training it would (flock: per open file)
        todo, skipped = S.to_submit([done, held, free], tmp_path)
    assert [c.run_id() for c in todo] == [free.run_id()]
    assert skipped == [f"{held.run_id()}: being trained by another process (pid {os.getpid()} on "
                       f"{os.uname().nodename}); not submitted"]


# --- against a real cluster -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    if not os.environ.get("AWD_TEST_SLURM"):
        reason = "no Slurm cluster: `.ci/run` starts one (.ci/slurm-up) and sets AWD_TEST_SLURM=1 and SLURM_CONF"
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against a real Slurm cluster; {reason}")
        pytest.skip(reason)
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "idle" in out.stdout, f"the cluster does not answer: {out.stdout}{out.stderr}"


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory, data_dir):
    """The smoke grid trained locally, single-threaded: what a Slurm run must repeat bit for bit."""
    results = tmp_path_factory.mktemp("local")
    run_grid([smoke("full"), smoke("no tying")], results, jobs=2)
    return results


def task_log(results_dir, run_id) -> str:
    job = S.read_jobs(results_dir)[run_id]
    return "".join(p.read_text() for p in sorted((results_dir / "slurm" / job).glob("*_log.err")))


def test_the_grid_through_slurm_trains_what_the_local_grid_trains(cluster, local_grid, tmp_path):
    out = grid_cli("--variants", "full", "no tying", "--launcher", "slurm", "--wait", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    for variant in ("full", "no tying"):
        run_id = smoke(variant).run_id()
        assert load_run(tmp_path / run_id).finished
        assert history_without_wall_clock(tmp_path / run_id) == history_without_wall_clock(local_grid / run_id)
        assert load_run(tmp_path / run_id).summary["test_ppl"] == load_run(local_grid / run_id).summary["test_ppl"]
    status = grid_cli("--variants", "full", "no tying", "--status", "--results-dir", str(tmp_path))
    assert status.stdout.count("COMPLETED") == 2 and "2 of 2 runs done" in status.stdout
    again = grid_cli("--variants", "full", "no tying", "--launcher", "slurm", "--results-dir", str(tmp_path))
    assert "2 of 2 runs already finished; submitting 0" in again.stdout, "finished runs are never resubmitted"


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        time.sleep(0.2)


def test_a_preempted_run_is_requeued_and_ends_as_the_uninterrupted_one(cluster, local_grid, tmp_path):
    import submitit
    cfg = smoke("full")
    (job_id,) = S.submit_grid([cfg], tmp_path, S.SlurmOptions())
    history = tmp_path / cfg.run_id() / "history.csv"
    wait_for(lambda: history.exists() and len(load_run(history.parent).history) >= 1, 120, "no epoch ended")
    job = submitit.SlurmJob(folder=S.job_folder(tmp_path) / "%j", job_id=job_id)
    job._interrupt()  # what Slurm sends a job it preempts: SIGTERM, then the warning signal (USR2)
    assert job.result() == cfg.run_id()
    log = task_log(tmp_path, cfg.run_id())
    assert "this job is preempted" in log and "resuming after epoch" in log, log
    assert history_without_wall_clock(history.parent) == history_without_wall_clock(local_grid / cfg.run_id())


def test_a_corrupted_checkpoint_is_reported_and_never_resumed_from(cluster, local_grid, tmp_path, monkeypatch):
    cfg = smoke("full").replace(threads=1)
    interrupted_in_epoch(3, cfg, tmp_path, monkeypatch)
    checkpoint = tmp_path / cfg.run_id() / "checkpoint.pt"
    data = bytearray(checkpoint.read_bytes())
    for i in range(20):
        data[len(data) // 2 + 97 * i] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    S.submit_grid([cfg], tmp_path, S.SlurmOptions(), wait=True)
    log = task_log(tmp_path, cfg.run_id())
    assert f"{checkpoint} is corrupted" in log and "resuming from checkpoint-previous.pt (epoch 1)" in log, log
    assert history_without_wall_clock(checkpoint.parent) == history_without_wall_clock(local_grid / cfg.run_id())
    assert json.loads((checkpoint.parent / "summary.json").read_text())["status"] == "finished"
