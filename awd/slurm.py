"""The grid on a Slurm cluster, through submitit: one job array, a task per run, each task checkpointable.

    python -m awd grid --profile paper-ptb --seeds 0 1 2 --launcher slurm --partition gpu --gpus-per-task 1

A task calls the same ``train`` as a local grid, into the same results folder, so the book, ``grid
--status`` and ``index.csv`` read its runs like any other. That folder must be on a file system every node
shares. Before a time limit or a preemption Slurm sends its warning signal (``--signal=USR2@90``); submitit
then requeues the task with the same arguments, and ``train`` resumes the run from its last epoch's
checkpoint, verified (``awd.train.resume_point``): a requeued run ends with the history of an uninterrupted
one.

A run is trained by whoever holds its lock (``results/<run>/lock``, an ``flock``). Across nodes that needs a
file system whose locks every node sees: NFS (the Linux client turns ``flock`` into POSIX byte-range locks
through its lock manager), Lustre mounted with ``-o flock``, GPFS, BeeGFS. Where locks are only local (Lustre's
``localflock``, NFS with ``local_lock=flock``), two nodes could each take a run's lock: the launcher still
never submits a run that is finished, locked from this node or queued by an earlier submission
(``results/slurm/jobs.json``), but a run started by hand on another node at the same time would be trained
twice into one folder. Where there are no locks at all, ``train`` stops with an error naming the file system.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, ConfigError

JOBS_FILE = "jobs.json"  # under results/slurm/: run id -> Slurm job id of its latest submission
# the states of a job that may still train its run: such a run is not submitted again
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
               "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "READY"}


@dataclass
class SlurmOptions:
    """What each task of the array asks Slurm for; the names are sbatch's."""
    partition: str | None = None
    time: int = 240                 # minutes per allocation; a run that needs longer is requeued (max_timeouts)
    cpus_per_task: int = 1          # also the run's torch threads
    gpus_per_task: int = 0          # with device=auto (the default) a run takes the GPU Slurm gives it
    mem: str | None = None          # e.g. 8G; None: the partition's default
    array_parallelism: int = 256    # at most this many tasks of the array at once
    max_timeouts: int = 3           # requeues after hitting the time limit (preemptions do not count)
    sbatch_args: list[str] = field(default_factory=list)  # any other sbatch option, as --key=value

    def validate(self) -> None:
        for name in ("time", "cpus_per_task", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        for name in ("gpus_per_task", "max_timeouts"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 or more")
        extra_sbatch(self.sbatch_args)

    def executor_parameters(self) -> dict:
        """The parameters of ``submitit.SlurmExecutor`` (sbatch's names, with ``_`` for ``-``)."""
        params = dict(job_name="awd-grid", time=self.time, cpus_per_task=self.cpus_per_task,
                      array_parallelism=self.array_parallelism)
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_task:
            params["gpus_per_task"] = self.gpus_per_task
        extra = extra_sbatch(self.sbatch_args)
        if self.mem:
            extra["mem"] = self.mem  # as given (sbatch's units); submitit's own `mem` takes gigabytes
        if extra:
            params["additional_parameters"] = extra
        return params


def extra_sbatch(args: list[str]) -> dict:
    """``["--qos=high", "--exclusive"]`` as submitit's ``additional_parameters``: ``{"qos": "high",
    "exclusive": True}``."""
    extra = {}
    for arg in args:
        if not arg.startswith("--") or " " in arg.split("=")[0]:
            raise ConfigError(f"--sbatch-arg {arg!r}: give one sbatch option as --key=value (or --flag), "
                              f"e.g. --sbatch-arg=--qos=high")
        key, eq, value = arg[2:].partition("=")
        extra[key.replace("-", "_")] = value if eq else True
    return extra


def check_available() -> None:
    """Fail before anything is submitted when this machine cannot submit: no submitit, or no sbatch."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--launcher slurm needs submitit, which is not installed here: "
                          "`pip install submitit` (it is in requirements.txt), or use --launcher local") from None
    if shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: sbatch is not on PATH, so this machine cannot submit to Slurm; "
                          "run the command on the cluster's login node, or use --launcher local")


def job_folder(results_dir: Path) -> Path:
    return Path(results_dir) / "slurm"


def read_jobs(results_dir: Path) -> dict[str, str]:
    path = job_folder(results_dir) / JOBS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_jobs(results_dir: Path, jobs: dict[str, str]) -> None:
    from .train import atomic_write_text
    atomic_write_text(job_folder(results_dir) / JOBS_FILE, json.dumps(jobs, indent=2, sort_keys=True) + "\n")


def scheduler_states(results_dir: Path, run_ids: list[str]) -> dict[str, tuple[str, str]]:
    """run id -> (job id, Slurm's state of it) for the runs submitted from ``results_dir``, read with one sacct
    call; empty where this machine has no sacct (the state is not known here)."""
    jobs = {r: j for r, j in read_jobs(results_dir).items() if r in run_ids}
    if not jobs or shutil.which("sacct") is None:
        return {}
    import submitit
    handles = {r: submitit.SlurmJob(folder=job_folder(results_dir) / "%j", job_id=j) for r, j in jobs.items()}
    return {r: (h.job_id, h.state) for r, h in handles.items()}


def _train_task(cfg_json: str, results_dir: str) -> str:
    from .experiments import _train_one, write_index
    run_id = _train_one(cfg_json, results_dir)
    write_index(results_dir)
    return run_id


class TrainTask:
    """One run as a Slurm task. Checkpointable (submitit calls ``checkpoint`` on the warning signal): requeued
    with the same arguments, it resumes from the checkpoint the trainer writes every epoch, so there is
    nothing else to save."""

    def __call__(self, cfg_json: str, results_dir: str) -> str:
        return _train_task(cfg_json, results_dir)

    def checkpoint(self, cfg_json: str, results_dir: str):
        import submitit
        return submitit.helpers.DelayedSubmission(TrainTask(), cfg_json, results_dir)


def to_submit(configs: list[Config], results_dir: Path) -> tuple[list[Config], list[str]]:
    """The configs to submit, and a line for each one left out: finished, trained by a process that holds its
    lock, or queued by an earlier submission whose job is still alive."""
    from .train import is_finished, lock_holder
    states = scheduler_states(results_dir, [c.run_id() for c in configs])
    todo, skipped = [], []
    for cfg in configs:
        run_dir = results_dir / cfg.run_id()
        if is_finished(run_dir):
            continue
        holder = lock_holder(run_dir)
        if holder is not None:
            skipped.append(f"{cfg.run_id()}: being trained by another process ({holder}); not submitted")
        elif cfg.run_id() in states and states[cfg.run_id()][1].split()[0] in LIVE_STATES:
            job, state = states[cfg.run_id()]
            skipped.append(f"{cfg.run_id()}: already queued as Slurm job {job} ({state}); not submitted")
        else:
            todo.append(cfg)
    return todo, skipped


def submit_grid(configs: list[Config], results_dir: str | Path, options: SlurmOptions, dry_run: bool = False,
                wait: bool = False) -> list[str]:
    """Submit the grid's unfinished runs as one Slurm job array; returns the job ids (with ``wait``, once every
    job has ended). Each run's torch threads are its ``cpus_per_task``."""
    from .experiments import variant_of, write_index
    results_dir = Path(results_dir)
    options.validate()
    if not dry_run:
        check_available()
    todo, skipped = to_submit(configs, results_dir)
    todo = [cfg.replace(threads=options.cpus_per_task, progress=False) for cfg in todo]
    for line in skipped:
        print(line, flush=True)
    print(f"{len(configs) - len(todo) - len(skipped)} of {len(configs)} runs already finished; "
          f"{'would submit' if dry_run else 'submitting'} {len(todo)} as one Slurm job array", flush=True)
    if not todo:
        return []
    params = options.executor_parameters()
    if dry_run:
        flags = {k: v for k, v in params.items() if k not in ("additional_parameters", "array_parallelism")}
        flags.update(params.get("additional_parameters", {}))
        flags["array"] = f"0-{len(todo) - 1}%{min(len(todo), options.array_parallelism)}"
        flags["signal"] = "USR2@90"
        print("sbatch " + " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}")
                                   for k, v in sorted(flags.items())))
        for i, cfg in enumerate(todo):
            print(f"  task {i}: {cfg.run_id()} ({variant_of(cfg)}, seed {cfg.seed}) -> {results_dir / cfg.run_id()}")
        if shutil.which("sbatch") is None:
            print("note: sbatch is not on PATH here; submit from the cluster's login node")
        return []
    import submitit
    executor = submitit.SlurmExecutor(folder=job_folder(results_dir) / "%j", max_num_timeout=options.max_timeouts)
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(TrainTask(), cfg.to_json(), str(results_dir.resolve())) for cfg in todo]
    _write_jobs(results_dir, {**read_jobs(results_dir), **{c.run_id(): j.job_id for c, j in zip(todo, jobs)}})
    for cfg, job in zip(todo, jobs):
        print(f"job {job.job_id}: {cfg.run_id()} ({variant_of(cfg)}, seed {cfg.seed})", flush=True)
    print(f"logs in {job_folder(results_dir)}/<job id>/; follow with `python -m awd grid ... --status`", flush=True)
    if wait:
        failed = []
        for job in submitit.helpers.as_completed(jobs):
            try:
                print(f"finished {job.result()} (job {job.job_id})", flush=True)
            except Exception as e:  # a job that failed or was cancelled: the others go on
                failed.append(job.job_id)
                print(f"job {job.job_id} did not finish: {e}", flush=True)
        write_index(results_dir)
        if failed:
            raise RuntimeError(f"Slurm job(s) {', '.join(failed)} did not finish; their logs are in "
                               f"{job_folder(results_dir)}/<job id>/")
    return [job.job_id for job in jobs]
