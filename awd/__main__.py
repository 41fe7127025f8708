"""Command line: ``python -m awd {train,eval,evals,generate,grid,bench} ...`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .config import PROFILES, Config, ConfigError, parse_override


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m awd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume, or look up) one run")
    p.add_argument("--profile", default="lab", choices=sorted(PROFILES),
                   help="named settings: paper-ptb/paper-wt2 (the paper, for a GPU), book, lab, smoke")
    p.add_argument("--dataset", help="ptb, wikitext-2, or a folder with train/valid/test.txt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set wdrop=0 --set tie_weights=false")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--retrain", action="store_true", help="discard a stored run with this config and train anew")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("eval", help="evaluate a run's best weights on valid and test")
    p.add_argument("run", help="a run folder or a run id under --results-dir")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("evals", help="cache pointer and MC dropout on a run's kept weights -> evals.json")
    p.add_argument("run", help="a run folder or a run id under --results-dir")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--only", choices=["pointer", "mc"], help="one of the two evaluations (default: both)")
    p.add_argument("--samples", type=int, default=None, help="MC dropout passes on validation (default 100)")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("generate", help="sample text from a run's best weights")
    p.add_argument("run", help="a run folder or a run id under --results-dir")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--words", type=int, default=50)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")

    p = sub.add_parser("grid", help="train the ablation grid (resumable; finished runs are skipped)")
    p.add_argument("--profile", default="book", choices=sorted(PROFILES))
    p.add_argument("--dataset", default="ptb")
    p.add_argument("--variants", nargs="+", help="names from awd.experiments.VARIANTS (default: the book's grid)")
    p.add_argument("--seeds", nargs="+", type=int, help="default: 0 1 2 for the book profile, else 0")
    p.add_argument("--epochs", type=int)
    p.add_argument("--jobs", type=int, default=2, help="single-thread runs side by side (default 2)")
    p.add_argument("--threads", type=int,
                   help="torch threads per run (default: 1 with --jobs 2 or more, else torch's own); a run "
                        "resumes bit for bit only with the thread count it started with")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--status", action="store_true",
                   help="print how far each run of the grid is (and Slurm's state of its job); train nothing")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: processes on this machine (default); slurm: one Slurm job array, through submitit")
    p.add_argument("--dry-run", action="store_true", help="print what would be trained or submitted; do nothing")
    s = p.add_argument_group("--launcher slurm (each run is one task of the array; sbatch's names)")
    s.add_argument("--partition")
    s.add_argument("--time", type=int, default=240, metavar="MINUTES",
                   help="time limit per task (default 240); a run that needs longer is requeued and resumes")
    s.add_argument("--cpus-per-task", type=int, default=1, help="also the run's torch threads (default 1)")
    s.add_argument("--gpus-per-task", type=int, default=0,
                   help="GPUs per run (default 0); the trainer's device=auto uses the one Slurm gives")
    s.add_argument("--mem", help="memory per task, e.g. 8G (default: the partition's)")
    s.add_argument("--array-parallelism", type=int, default=256, help="at most this many runs at once")
    s.add_argument("--max-timeouts", type=int, default=3,
                   help="requeues of a run after its time limit (default 3; preemptions do not count)")
    s.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[], metavar="--KEY=VALUE",
                   help="any other sbatch option, repeatable, e.g. --sbatch-arg=--qos=high")
    s.add_argument("--wait", action="store_true", help="wait until every submitted run has ended")

    p = sub.add_parser("bench", help="tokens/s and memory of AWD-LSTM next to a plain LSTM")
    p.add_argument("--profiles", nargs="+", default=None, help="which sizes to measure (default: paper-ptb book)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seconds", type=float, default=None, help="measuring time per model and round")

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError, RuntimeError) as e:  # data, checksum, device: no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def cmd_train(args) -> int:
    from .train import train
    overrides = dict(parse_override(o) for o in args.overrides)
    for key in ("dataset", "epochs", "seed", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.quiet:
        overrides["progress"] = False
    cfg = Config.from_profile(args.profile, **overrides)
    run = train(cfg, results_dir=args.results_dir, retrain=args.retrain)
    s = run.summary
    print(f"{run.id}: {s['status']} after {s['epochs_done']} epochs; best valid ppl {_num(s['best_val_ppl'])} "
          f"(epoch {s['best_epoch']}), test ppl {_num(s['test_ppl'])}, {s['wall_time_s']:.0f} s on {s['device_name']}")
    print(f"results in {run.path}/ (config.json, history.csv, summary.json)")
    return 0 if s["status"] == "finished" else 1


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _load_best(args):
    from . import evals
    from .data import Corpus
    from .train import load_run, resolve_device
    path = Path(args.run)
    if not path.is_dir():
        path = Path(args.results_dir) / args.run
    run = load_run(path)
    cfg = run.config
    # the run's own best weights, else the one committed half-precision copy (awd.evals.save_half)
    halves = [path / (Path(name).stem + evals.HALF) for name in ("best.pt", evals.BEFORE_FINETUNE)]
    best = next((p for p in [path / "best.pt", *halves] if p.exists()), None)
    if best is None:
        raise FileNotFoundError(f"{path / 'best.pt'} is missing: weights are not committed with the results; "
                                f"retrain with `python -m awd train --profile {cfg.profile} ...` to get them")
    if best.name.endswith(evals.HALF):
        print(f"using {best.name}, the committed half-precision copy of the run's "
              f"{'training stage' if best.name.startswith('best-before') else 'best weights'}", file=sys.stderr)
    device = resolve_device(args.device)
    corpus = Corpus.load(cfg.dataset, data_dir=cfg.data_dir)
    # a damaged file: CorruptCheckpoint, named; a half copy is read back as float32
    return run, corpus, evals.load_weights(path, best.name, cfg, len(corpus.dictionary), device), device


def cmd_eval(args) -> int:
    import math
    from .data import batchify
    from .train import evaluate
    run, corpus, model, device = _load_best(args)
    cfg = run.config
    for split, bs in (("valid", cfg.eval_batch_size), ("test", cfg.test_batch_size)):
        data = batchify(getattr(corpus, split)[:cfg.max_eval_tokens], bs).to(device)
        loss = evaluate(model, data, cfg.bptt)
        print(f"{split:5s} loss {loss:.4f}  ppl {math.exp(loss):8.2f}")
    return 0


@torch.no_grad()
def cmd_generate(args) -> int:
    run, corpus, model, device = _load_best(args)
    if args.temperature <= 0:
        raise ConfigError(f"--temperature {args.temperature}: must be > 0 (1.0 samples from the model as is)")
    torch.manual_seed(args.seed)
    words = corpus.dictionary.idx2word
    token = torch.tensor([[corpus.dictionary.word2idx["<eos>"]]], device=device)
    hidden, out = None, []
    for _ in range(args.words):
        logits, hidden = model(token, hidden)
        probs = torch.softmax(logits[-1, 0] / args.temperature, dim=-1)
        token = torch.multinomial(probs, 1).view(1, 1)
        word = words[token.item()]
        out.append("\n" if word == "<eos>" else word)
    print(" ".join(out).replace(" \n ", "\n"))
    return 0


def cmd_evals(args) -> int:
    from .evals import EVALS, MC_SAMPLES, evaluate_run
    samples = MC_SAMPLES if args.samples is None else args.samples
    if samples < 1:
        raise ConfigError(f"--samples {samples}: give at least 1 pass (the default is {MC_SAMPLES})")
    path = Path(args.run) if Path(args.run).is_dir() else Path(args.results_dir) / args.run
    out = evaluate_run(path, args.device, pointer=args.only != "mc", mc=args.only != "pointer", samples=samples)
    for name, entry in out.items():
        if "pointer" in entry:
            ptr = entry["pointer"]
            print(f"{name}: pointer {ptr['chosen']}: valid {ptr['val_ppl_no_cache']:.2f} -> {ptr['val_ppl']:.2f}, "
                  f"test {ptr['test_ppl_no_cache']:.2f} -> {ptr['test_ppl']:.2f}")
        if "mc_dropout" in entry:
            mc = entry["mc_dropout"]
            print(f"{name}: MC dropout K={mc['chosen_samples']}: valid {mc['val_ppl_deterministic']:.2f} -> "
                  f"{mc['val_ppl']:.2f}, test {mc['test_ppl_deterministic']:.2f} -> {mc['test_ppl']:.2f}")
    print(f"written: {path / EVALS}")
    return 0


def cmd_grid(args) -> int:
    from .experiments import main as grid_main
    return grid_main(args)


def cmd_bench(args) -> int:
    from .bench import main as bench_main
    return bench_main(args)


COMMANDS = dict(train=cmd_train, eval=cmd_eval, evals=cmd_evals, generate=cmd_generate, grid=cmd_grid,
                bench=cmd_bench)

if __name__ == "__main__":
    sys.exit(main())
