"""The ablations: each row of the paper's Table 3 as a change to one profile, and a resumable grid runner.

A variant is a small dict of config overrides; its runs are ``Config.from_profile(profile, **overrides)``
for each seed. Notebooks, the grid command and the summary table all read ``VARIANTS`` from here, so a
row means the same thing everywhere.

    python -m awd grid --profile book --seeds 0 1 2            # the book's grid, resumable
    python -m awd grid --profile book --variants full "no tying" --seeds 0
    python -m awd grid --profile paper-ptb --seeds 0 1 2 --launcher slurm --gpus-per-task 1   # awd/slurm.py
"""
from __future__ import annotations

import ast
import csv
import json
import os
import platform
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from .config import PROFILES, RUNTIME_FIELDS, Config

NO_DROPOUT = dict(dropout=0.0, dropouth=0.0, dropouti=0.0, dropoute=0.0, wdrop=0.0)

VARIANTS: dict[str, dict | Callable[[Config], dict]] = {
    "full": {},                                   # all techniques on, NT-ASGD
    "no tying": dict(tie_weights=False),          # the reference code's untied model: last layer hidden_size wide
    "no dropout": NO_DROPOUT,                     # no dropout of any kind (weight drop included)
    "standard dropout": dict(dropout_mode="standard"),
    "no weight drop": dict(wdrop=0.0),
    "SGD": dict(optimizer="sgd"),
    "ASGD": dict(optimizer="asgd"),
    # the other rows of the paper's ablation table; a row that depends on the profile's sizes is a function
    # of the profile's config
    "full (fine-tuned)": lambda base: dict(finetune_epochs=base.epochs),  # finetune.py reuses --epochs as its cap
    "fixed BPTT": dict(variable_bptt=False),
    "no embedding dropout": dict(dropoute=0.0),
    "no weight decay": dict(wdecay=0.0),
    "no AR/TAR": dict(alpha=0.0, beta=0.0),
    "full-sized embedding": lambda base: dict(emb_size=base.hidden_size),  # still tied: every layer hidden wide
    # rows that isolate a claim
    "untied, same sizes": lambda base: dict(tie_weights=False, last_size=base.emb_size),  # only the tying changes
    "2017 mask": dict(dropout_mode="2017"),       # the per-step locked mask the paper's tables were measured with
    "NT-ASGD n=5": dict(nonmono=5),               # the paper's non-monotone interval
}


def overrides_of(variant: str, base: Config) -> dict:
    """A variant's changes to the profile config ``base`` (the config every variant of a profile starts from)."""
    if variant not in VARIANTS:
        raise KeyError(f"variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    overrides = VARIANTS[variant]
    return overrides(base) if callable(overrides) else dict(overrides)


# What the book trains on PTB (3 seeds each) and, where the budget allows, on WikiText-2.
BOOK_GRID = ["full", "no tying", "no dropout", "standard dropout", "no weight drop", "SGD", "ASGD"]
BOOK_GRID_WT2 = ["full", "no tying"]
# The rest of the paper's table, then the rows that isolate a claim.
PAPER_ROWS = ["full (fine-tuned)", "fixed BPTT", "no embedding dropout", "no weight decay", "no AR/TAR",
              "full-sized embedding"]
ISOLATING_ROWS = ["untied, same sizes", "2017 mask", "NT-ASGD n=5"]
# `grid` trains these stages in order, each seed by seed, so that a grid stopped halfway has every variant of
# the finished stages and at least one seed of every variant of the current one.
GRID_STAGES = {"ptb": [BOOK_GRID, PAPER_ROWS, ISOLATING_ROWS], "wikitext-2": [BOOK_GRID_WT2]}

# Seeds per profile when a notebook or the grid is not told: three where the book reports a spread, and two
# at smoke, so that the tests' book build takes the chapters' several-seed paths (intervals, means) too.
SEEDS = {"book": [0, 1, 2], "smoke": [0, 1]}


def default_seeds(profile: str) -> list[int]:
    return SEEDS.get(profile, [0])


def resolve_seeds(seeds, profile: str) -> list[int]:
    """A notebook's ``seeds`` parameter as a list: None means the profile's default; a string such as
    ``"[0, 1]"`` (what ``papermill -p seeds "[0, 1]"`` passes) or ``"0"`` is parsed."""
    if seeds is None:
        return default_seeds(profile)
    if isinstance(seeds, str):
        seeds = ast.literal_eval(seeds)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds={seeds!r}: give a list of integers, e.g. [0, 1, 2]")
    return seeds


# The paper's Table 3 (validation / test perplexity), for setting beside ours. "full" is the model
# without fine-tuning, which is what our runs are (finetune_epochs=0).
PAPER_ABLATIONS = {
    "ptb": {"full (fine-tuned)": (60.0, 57.3), "full": (60.7, 58.8), "SGD": (66.3, 63.7),
            "fixed BPTT": (61.3, 58.9), "no embedding dropout": (65.1, 62.7), "no weight decay": (63.7, 61.0),
            "no AR/TAR": (62.7, 60.3), "full-sized embedding": (68.0, 65.6), "no weight drop": (71.1, 68.9)},
    "wikitext-2": {"full (fine-tuned)": (68.6, 65.8), "full": (69.1, 66.0), "SGD": (73.3, 69.7),
                   "fixed BPTT": (69.3, 66.2), "no embedding dropout": (71.1, 68.1),
                   "no weight decay": (71.9, 68.7), "no AR/TAR": (73.2, 70.1),
                   "full-sized embedding": (73.7, 70.7), "no weight drop": (78.4, 74.9)},
}


# Cited results for the comparisons the paper's Table 3 has no row for (PTB; the sources are in the
# facts file, ../shared/reference/awd-lstm-facts.md). Weight tying, test perplexity: (source, model,
# untied, tied, untied and tied parameters in millions where the source gives them).
TYING_RESULTS = [
    ("Inan et al. 2016", "small LSTM", 87.3, 85.1, None, None),
    ("Inan et al. 2016", "medium LSTM", 77.7, 73.9, None, None),
    ("Inan et al. 2016", "large LSTM", 72.6, 69.0, None, None),
    ("Press & Wolf 2016", "large LSTM", 78.4, 74.3, 66, 51),
]
# Standard (a fresh mask per time step, Zaremba et al. 2014) against variational dropout, Gal & Ghahramani
# 2016: (source, model, dropout, validation, test).
DROPOUT_RESULTS = [
    ("Gal & Ghahramani 2016", "medium LSTM", "standard (Zaremba et al.)", 86.2, 82.7),
    ("Gal & Ghahramani 2016", "medium LSTM", "variational", 81.9, 79.7),
    ("Gal & Ghahramani 2016", "large LSTM", "standard (Zaremba et al.)", 82.2, 78.4),
    ("Gal & Ghahramani 2016", "large LSTM", "variational", 77.9, 75.2),
]
# The authors' speed on PTB, from the reference code's README (facts file): (GPU, batch size, seconds/epoch).
PAPER_SPEED = [("NVIDIA Quadro GP100", 20, 65.0), ("NVIDIA Quadro GP100", 40, 45.0)]
DEVICE_RUNS = "device"  # results/device/<run id>/: the paper's configuration on a GPU (tools/device_check.sh)


def variant_config(variant: str, profile: str = "book", seed: int = 0, **overrides) -> Config:
    base = Config.from_profile(profile, seed=seed, **overrides)
    return base.replace(**{**overrides_of(variant, base), **overrides})


def variant_of(cfg: Config) -> str:
    """Name the variant a stored config is (its changes against its profile), or describe the changes."""
    base = Config.from_profile(cfg.profile, dataset=cfg.dataset, seed=cfg.seed, epochs=cfg.epochs) \
        if cfg.profile in PROFILES else None
    if base is None:
        return "custom"
    diff = {k: v for k, v in cfg.to_dict().items()
            if k not in RUNTIME_FIELDS and v != getattr(base, k)}
    for name in VARIANTS:
        if diff == {k: v for k, v in overrides_of(name, base).items() if v != getattr(base, k)}:
            return name
    return ", ".join(f"{k}={v}" for k, v in sorted(diff.items()))


def stored_runs(variants, profile: str = "book", seeds=None, dataset: str = "ptb",
                results_dir: str | Path = "results", **overrides) -> tuple[list, list[Config]]:
    """The finished runs of each variant and seed in ``results_dir``, and the configs that have none yet.
    Reads only: a page that shows a grid still being trained shows what is there and lists the rest."""
    from .train import is_finished, load_run
    runs, missing = [], []
    for variant in variants:
        for seed in resolve_seeds(seeds, profile):
            cfg = variant_config(variant, profile, seed, dataset=dataset, **overrides)
            path = Path(results_dir) / cfg.run_id()
            if is_finished(path):
                runs.append(load_run(path))
            else:
                missing.append(cfg)
    return runs, missing


# --- running ----------------------------------------------------------------------------------------------
def _train_one(cfg_json: str, results_dir: str) -> str:
    from .train import train
    run = train(Config.from_json(cfg_json), results_dir=results_dir)
    return run.id


def run_grid(configs: list[Config], results_dir: str | Path = "results", jobs: int = 1) -> list[str]:
    """Train every config that is not finished yet; ``jobs`` single-thread runs side by side.

    Each run checkpoints every epoch, so an interrupted grid picks up where it stopped when asked again.
    On 2 cores, two single-thread runs give about 1.2x the throughput of one two-thread run. A run that
    another process is training (its lock is held: another grid, a notebook) is left for later, so that
    several grids on one results folder share the work instead of waiting on each other's runs.
    """
    from .train import is_finished
    results_dir = Path(results_dir)
    todo = []
    for cfg in configs:
        if is_finished(results_dir / cfg.run_id()):
            continue
        todo.append(cfg.replace(threads=cfg.threads or 1, progress=False) if jobs > 1 else cfg)
    print(f"{len(configs) - len(todo)} of {len(configs)} runs already finished; training {len(todo)}", flush=True)
    done = []
    if jobs <= 1:
        while todo:
            cfg = todo.pop(_next_free(todo, results_dir))
            done.append(_train_one(cfg.to_json(), str(results_dir)))
            write_index(results_dir)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            running = {}
            try:
                while todo or running:
                    # a run is chosen when a worker is free, not queued up front: by then another grid may hold it
                    while todo and len(running) < jobs:
                        cfg = todo.pop(_next_free(todo, results_dir))
                        running[pool.submit(_train_one, cfg.to_json(), str(results_dir))] = cfg
                    ended, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in ended:
                        cfg = running.pop(fut)
                        done.append(fut.result())
                        print(f"finished {done[-1]} ({variant_of(cfg)})", flush=True)
                        write_index(results_dir)
            except BaseException:
                # Ctrl-C (or a failed run) stops the grid: the run still in progress stops with it and resumes
                # from its last checkpoint next time.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    write_index(results_dir)
    return done


def _next_free(todo: list[Config], results_dir: Path) -> int:
    """The index of the first run in ``todo`` that no other process is training; where all of them are being
    trained, the first (training it then waits for its holder and reads the result)."""
    from .train import lock_holder
    for i, cfg in enumerate(todo):
        holder = lock_holder(results_dir / cfg.run_id())
        if holder is None:
            return i
        print(f"{cfg.run_id()}: {holder} is training it; leaving it for later", flush=True)
    return 0


# --- reading --------------------------------------------------------------------------------------------
INDEX_FIELDS = ["run_id", "dataset", "profile", "variant", "seed", "status", "epochs_done", "best_epoch",
                "best_val_ppl", "test_ppl", "averaging_start_epoch", "params", "wall_time_s",
                "train_tokens_per_s", "device_name", "git_commit"]


def index_rows(results_dir: str | Path = "results") -> list[dict]:
    """One row per run that has ended (finished, or stopped by divergence). A run still in progress has no row:
    its folder is not a result yet (``grid --status`` shows how far it is)."""
    rows = []
    for cfg_path in sorted(Path(results_dir).glob("*/config.json")):
        summary_path = cfg_path.with_name("summary.json")
        if not summary_path.exists():
            continue
        cfg = Config.from_json(cfg_path.read_text())
        s = json.loads(summary_path.read_text())
        if s.get("status") == "running":
            continue
        rows.append(dict(run_id=cfg_path.parent.name, dataset=cfg.dataset, profile=cfg.profile,
                         variant=variant_of(cfg), seed=cfg.seed,
                         **{k: s.get(k) for k in INDEX_FIELDS[5:]}))
    return rows


def write_index(results_dir: str | Path = "results") -> Path:
    """``results/index.csv``: one row per ended run (rewritten atomically from the run folders)."""
    path = Path(results_dir) / "index.csv"
    tmp = path.with_name(f"index.csv.{platform.node()}.{os.getpid()}.tmp")  # Slurm tasks on several nodes
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
        writer.writeheader()
        writer.writerows(index_rows(results_dir))
    os.replace(tmp, path)
    return path


def grid_status(configs: list[Config], results_dir: str | Path = "results") -> list[dict]:
    """Where each run of a grid stands, read from its folder: not started, running (epochs done) or done; and,
    for a run submitted to Slurm from this results folder, its job and the scheduler's state while known."""
    from .train import load_run
    jobs = {}
    if (Path(results_dir) / "slurm").is_dir():
        from .slurm import scheduler_states
        jobs = scheduler_states(Path(results_dir), [cfg.run_id() for cfg in configs])
    rows = []
    for cfg in configs:
        path = Path(results_dir) / cfg.run_id()
        started = (path / "config.json").exists()
        s = load_run(path).summary if started else {}
        rows.append(dict(variant=variant_of(cfg), seed=cfg.seed, run_id=cfg.run_id(),
                         status=s.get("status", "started" if started else "not started"),
                         epochs=f"{s.get('epochs_done', 0)}/{cfg.epochs}",
                         best_val_ppl=s.get("best_val_ppl"), test_ppl=s.get("test_ppl"),
                         averaging_from=s.get("averaging_start_epoch"),
                         slurm=" ".join(jobs.get(cfg.run_id(), ()))))
    return rows


def print_status(rows: list[dict]) -> None:
    fmt = "{variant:21s} {seed:>4} {status:12s} {epochs:>7s} {best:>9s} {test:>9s} {avg:>9s}  {run_id}"
    if any(r.get("slurm") for r in rows):
        fmt += "  {slurm}"
    print(fmt.format(variant="variant", seed="seed", status="status", epochs="epochs", best="best val",
                     test="test", avg="avg from", run_id="run", slurm="slurm job and state"))
    for r in rows:
        shown = {k: "" if r[k] is None else f"{r[k]:.1f}" for k in ("best_val_ppl", "test_ppl")}
        print(fmt.format(**{"slurm": "", **r}, best=shown["best_val_ppl"], test=shown["test_ppl"],
                         avg="" if r["averaging_from"] is None else str(r["averaging_from"])))
    done = sum(r["status"] in ("finished", "diverged") for r in rows)
    print(f"{done} of {len(rows)} runs done")


def main(args) -> int:
    stages = [args.variants] if args.variants else GRID_STAGES[args.dataset]
    seeds = args.seeds or default_seeds(args.profile)
    configs = [variant_config(v, args.profile, seed, dataset=args.dataset, **_overrides(args))
               for variants in stages for seed in seeds for v in variants]
    if args.status:
        print_status(grid_status(configs, args.results_dir))
        return 0
    if getattr(args, "launcher", "local") == "slurm":
        from .slurm import SlurmOptions, submit_grid
        options = SlurmOptions(partition=args.partition, time=args.time, cpus_per_task=args.cpus_per_task,
                               gpus_per_task=args.gpus_per_task, mem=args.mem,
                               array_parallelism=args.array_parallelism, max_timeouts=args.max_timeouts,
                               sbatch_args=args.sbatch_args)
        submit_grid(configs, args.results_dir, options, dry_run=args.dry_run, wait=args.wait)
        return 0
    if getattr(args, "dry_run", False):
        from .train import is_finished
        todo = [c for c in configs if not is_finished(Path(args.results_dir) / c.run_id())]
        print(f"{len(configs) - len(todo)} of {len(configs)} runs already finished; would train {len(todo)}, "
              f"{args.jobs} side by side:")
        for cfg in todo:
            print(f"  {cfg.run_id()} ({variant_of(cfg)}, seed {cfg.seed})")
        return 0
    run_grid(configs, args.results_dir, jobs=args.jobs)
    print(f"index: {Path(args.results_dir) / 'index.csv'}")
    return 0


def _overrides(args) -> dict:
    """The grid's overrides of every config: its epochs and torch threads, where given."""
    return {k: v for k in ("epochs", "threads") if (v := getattr(args, k, None))}

