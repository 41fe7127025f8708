"""Training and evaluation as in the paper (Sections 3-5) and its code (``main.py``, ``finetune.py``).

One epoch: the training stream is cut into windows of variable length (Section 4.1); each window's
learning rate is scaled by ``seq_len / bptt`` so that short windows do not weigh as much as long ones;
the loss is cross-entropy plus AR/TAR; gradients are clipped to norm ``clip``; the optimizer takes an
SGD step and, once averaging is on, updates the running average. After each epoch the model is
evaluated on the validation set (on the averaged weights once averaging is on), NT-ASGD observes that
value, and the best weights so far are kept.

Every run lives in ``results/<run id>/``: ``config.json``, ``history.csv`` (a row per epoch),
``summary.json`` and, not committed, ``checkpoint.pt`` (every epoch) and ``best.pt``. All are written
atomically, so an interrupted run resumes from its last epoch and never leaves a half-written file, and
``best.pt`` always holds the weights of the best epoch that the last checkpoint records.

Weights and checkpoints are written behind a sha256 digest of their bytes, and a resume verifies it: a
damaged or truncated file is reported by name and never loaded. The previous epoch's checkpoint and best
weights are kept (``checkpoint-previous.pt``, ``best-previous.pt``), so that such a run goes on from the
last state that verifies, or from scratch when none does.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import Config
from .data import Corpus, batchify, bptt_batches
from .model import AWDLSTM, count_parameters, repackage_hidden
from .optim import NTASGD
from .regularize import ar_tar

HISTORY_FIELDS = ["epoch", "phase", "train_loss", "train_ppl", "val_loss", "val_ppl", "val_loss_raw",
                  "val_ppl_raw", "lr", "averaging", "seconds", "tokens_per_s"]
FINISHED = ("finished", "diverged")


@dataclass
class Run:
    """A run folder read back: what was asked (config), what happened per epoch, and the final numbers."""
    id: str
    path: Path
    config: Config
    history: list[dict]
    summary: dict

    @property
    def finished(self) -> bool:
        return self.summary.get("status") in FINISHED


# --- evaluation -------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: AWDLSTM, data: torch.Tensor, bptt: int) -> float:
    """Mean cross-entropy per token over a batchified split, in fixed-length windows, carrying the state."""
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total, count = data.new_zeros((), dtype=_acc_dtype(data)), 0
    for x, y, _ in bptt_batches(data, bptt, variable=False):
        logits, hidden = model(x, hidden)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        count += y.numel()
    return (total / count).item()


def train_epoch(model: AWDLSTM, opt: NTASGD, data: torch.Tensor, cfg: Config, rng: random.Random,
                progress=None) -> tuple[float, int]:
    """One pass over the training stream; returns the mean cross-entropy (without AR/TAR) and token count."""
    model.train()
    hidden = model.init_hidden(cfg.batch_size)
    total, count = data.new_zeros((), dtype=_acc_dtype(data)), 0
    for x, y, lr_scale in bptt_batches(data, cfg.bptt, variable=cfg.variable_bptt, rng=rng):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_scale  # Section 4.1: short windows get a proportionally smaller step
        hidden = repackage_hidden(hidden)
        logits, hidden, raw, dropped = model(x, hidden, return_h=True)
        raw_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        loss = raw_loss + ar_tar(raw[-1], dropped[-1], cfg.alpha, cfg.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        total += raw_loss.detach() * y.numel()
        count += y.numel()
        if progress is not None:
            progress.update(y.numel())
    for group in opt.param_groups:
        group["lr"] = cfg.lr
    return (total / count).item(), count


# --- the run ----------------------------------------------------------------------------------------------
def train(config: Config, results_dir: str | Path = "results", retrain: bool = False) -> Run:
    """Train ``config`` (or resume it, or return it when it is already finished) and return the run."""
    run_dir = Path(results_dir) / config.run_id()
    if not retrain and is_finished(run_dir):  # building the book: nothing to write, no lock needed
        return load_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir):  # another process training this config: wait for it, then read its result
            if retrain:  # under the lock, so that a run another process is training is never deleted
                for path in run_dir.iterdir():
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.name != LOCK:
                        path.unlink()
            return load_run(run_dir) if is_finished(run_dir) else _train(config, run_dir)
    finally:
        if {p.name for p in run_dir.iterdir()} <= {LOCK}:  # e.g. the data was not found: no empty run folder
            shutil.rmtree(run_dir, ignore_errors=True)


def is_finished(run_dir: str | Path) -> bool:
    """Whether a run folder holds a finished run (its summary says so)."""
    run_dir = Path(run_dir)
    return (run_dir / "summary.json").exists() and load_run(run_dir).finished


def _train(cfg: Config, run_dir: Path) -> Run:
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    corpus = Corpus.load(cfg.dataset, data_dir=cfg.data_dir)
    train_data = batchify(corpus.train[:cfg.max_train_tokens], cfg.batch_size).to(device)
    val_data = batchify(corpus.valid[:cfg.max_eval_tokens], cfg.eval_batch_size).to(device)
    test_data = batchify(corpus.test[:cfg.max_eval_tokens], cfg.test_batch_size).to(device)

    torch.manual_seed(cfg.seed)
    model = AWDLSTM.from_config(cfg, len(corpus.dictionary)).to(device)
    atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")

    state = dict(epoch=0, phase="train", history=[], best_val=math.inf, best_epoch=None,
                 avg_start_epoch=1 if cfg.optimizer == "asgd" else None, wall_time=0.0, status="running")
    opt = make_optimizer(model, cfg, "train")
    # One line per epoch always; with progress off (the grid's side-by-side jobs) each line names its run.
    say = _printer("" if cfg.progress else f"[{cfg.run_id()}] ")
    ckpt = resume_point(run_dir, device, say)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt = make_optimizer(model, cfg, ckpt["state"]["phase"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]

    n_params = count_parameters(model)
    meta = run_metadata(device, n_params)
    say(f"run {cfg.run_id()}: {n_params:,} parameters on {meta['device_name']}"
        + (f", resuming after epoch {state['epoch']}" if state["epoch"] else ""))
    # the thread count a run starts with (older checkpoints did not record it: assume the current one)
    started_with = state.setdefault("threads", torch.get_num_threads())
    if started_with != torch.get_num_threads():
        # CPU kernels may sum in another order: the rest of the run is as valid, but not bit for bit the same
        say(f"note: this run started with {started_with} thread(s) and resumes with {torch.get_num_threads()}, "
            f"so it will not repeat an uninterrupted run bit for bit (set threads={started_with} to do so)")

    def write_records():
        write_history(run_dir / "history.csv", state["history"])
        atomic_write_text(run_dir / "summary.json", json.dumps(
            make_summary(cfg, state, meta), indent=2) + "\n")

    total_epochs = cfg.epochs + cfg.finetune_epochs
    try:
        while state["status"] == "running" and state["epoch"] < total_epochs and not state.get("stopped"):
            if state["phase"] == "train" and state["epoch"] >= cfg.epochs:
                # Fine-tuning (reference finetune.py): ASGD from the best weights, averaging from the start.
                # Those weights are also the model without fine-tuning: kept, for evaluations of both.
                atomic_copy(run_dir / BEST, run_dir / BEFORE_FINETUNE)  # the copy keeps best.pt's digest
                state["before_finetune"] = dict(best_epoch=state["best_epoch"], best_val=state["best_val"])
                model.load_state_dict(load_verified(run_dir / BEST, device, say=say))
                state["phase"] = "finetune"
                opt = make_optimizer(model, cfg, "finetune")
            epoch = state["epoch"] + 1
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # per-epoch seeds: a resumed run repeats exactly
            rng = random.Random(cfg.seed * 100_003 + epoch)
            start = time.perf_counter()
            with _bar(cfg.progress, train_data.numel(), f"epoch {epoch}") as bar:
                train_loss, tokens = train_epoch(model, opt, train_data, cfg, rng, bar)
            train_seconds = time.perf_counter() - start
            val_raw = evaluate(model, val_data, cfg.bptt)
            averaged = opt.averaging  # whether this epoch's val is of averaged weights (before observe)
            with opt.averaged():
                val = evaluate(model, val_data, cfg.bptt) if averaged else val_raw
                if math.isfinite(val) and val < state["best_val"]:
                    state["best_val"], state["best_epoch"] = val, epoch
                    # best.pt changes only once the checkpoint that names this epoch the best (by its
                    # digest) is written
                    state["best_sha256"] = atomic_torch_save(model.state_dict(), _pending_best(run_dir, epoch))
            if state["phase"] == "train":
                if opt.observe(val):
                    state["avg_start_epoch"] = epoch + 1  # averaging acts from the next epoch's first step
            else:
                # Fine-tuning stops on the same non-monotone criterion that triggers NT-ASGD.
                n, logs = cfg.nonmono, opt.logs
                state["stopped"] = len(logs) > n and val > min(logs[:-n])
                logs.append(val)
            seconds = time.perf_counter() - start
            state["wall_time"] += seconds
            state["history"].append(dict(
                epoch=epoch, phase=state["phase"], train_loss=train_loss, train_ppl=_ppl(train_loss),
                val_loss=val, val_ppl=_ppl(val), val_loss_raw=val_raw, val_ppl_raw=_ppl(val_raw),
                lr=cfg.lr, averaging=averaged, seconds=round(seconds, 3),
                tokens_per_s=round(tokens / train_seconds, 1)))
            say(f"epoch {epoch:3d} | train ppl {_ppl(train_loss):8.2f} | valid ppl {_ppl(val):8.2f}"
                + (" (averaged)" if averaged else "") + f" | {seconds:6.1f} s")
            state["epoch"] = epoch
            if not (math.isfinite(train_loss) and math.isfinite(val)):
                state["status"] = "diverged"
                say(f"loss is not finite at epoch {epoch}: the run is recorded as diverged")
            save_checkpoint(run_dir, dict(model=model.state_dict(), optimizer=opt.state_dict(), state=state))
            _settle_best(run_dir, state)
            write_records()
        if state["status"] == "running":
            model.load_state_dict(load_verified(run_dir / BEST, device, say=say))
            state["test_loss"] = evaluate(model, test_data, cfg.bptt)
            if "before_finetune" in state:  # the same run without fine-tuning: the paper's "- fine-tuning" row
                before = AWDLSTM.from_config(cfg, len(corpus.dictionary)).to(device)
                before.load_state_dict(load_verified(run_dir / BEFORE_FINETUNE, device, say=say))
                state["before_finetune"]["test_loss"] = evaluate(before, test_data, cfg.bptt)
            state["status"] = "finished"
            say(f"best valid ppl {_ppl(state['best_val']):.2f} (epoch {state['best_epoch']}), "
                f"test ppl {_ppl(state['test_loss']):.2f}")
        write_records()
        save_checkpoint(run_dir, dict(model=model.state_dict(), optimizer=opt.state_dict(), state=state))
    except (KeyboardInterrupt, SystemExit):  # SystemExit: e.g. Slurm's preemption signal, through submitit
        state["status"] = "interrupted"  # the checkpoint of the last whole epoch stays as it was
        write_records()
        state["status"] = "running"
        raise
    return load_run(run_dir)


def make_optimizer(model: AWDLSTM, cfg: Config, phase: str) -> NTASGD:
    mode = cfg.optimizer if phase == "train" else "asgd"
    return NTASGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.wdecay, mode=mode, nonmono=cfg.nonmono)


def make_summary(cfg: Config, state: dict, meta: dict) -> dict:
    hist = state["history"]
    test_loss = state.get("test_loss")
    return dict(
        run_id=cfg.run_id(), status=state["status"], epochs_done=state["epoch"] if hist else 0,
        best_epoch=state["best_epoch"],
        best_val_loss=state["best_val"] if state["best_epoch"] else None,
        best_val_ppl=_ppl(state["best_val"]) if state["best_epoch"] else None,
        test_loss=test_loss, test_ppl=_ppl(test_loss) if test_loss is not None else None,
        final_val_ppl=hist[-1]["val_ppl"] if hist else None,
        averaging_start_epoch=state["avg_start_epoch"],
        **(_finetune_summary(state) if cfg.finetune_epochs else {}),
        train_tokens_per_s=round(sum(h["tokens_per_s"] for h in hist) / len(hist), 1) if hist else None,
        wall_time_s=round(state["wall_time"], 1),
        **meta)


def _finetune_summary(state: dict) -> dict:
    """Where the non-monotone criterion ended fine-tuning (None: it ran to its cap), and the run's numbers at
    the end of its training stage: the same trajectory without fine-tuning, so the two pair exactly."""
    before = state.get("before_finetune", {})
    return dict(finetune_stop_epoch=state["epoch"] if state.get("stopped") else None,
                before_finetune=dict(best_epoch=before.get("best_epoch"), best_val_ppl=_ppl(before.get("best_val")),
                                     test_ppl=_ppl(before.get("test_loss"))))


def run_metadata(device: torch.device, n_params: int) -> dict:
    return dict(params=n_params, git_commit=_git("rev-parse", "HEAD"), git_dirty=bool(_git("status", "--porcelain", "--", "awd")),
                torch_version=torch.__version__, python_version=platform.python_version(),
                device=str(device), device_name=device_name(device), threads=torch.get_num_threads(),
                # the vector kernels torch picked (AVX2, AVX512...): CPUs of one model name can differ in them,
                # and then a seed's runs part in the last bits from the first step
                cpu_capability=torch.backends.cpu.get_cpu_capability(), hostname=platform.node())


# --- reading runs back ------------------------------------------------------------------------------------
def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a run folder (no config.json); runs live under results/")
    config = Config.from_json((path / "config.json").read_text())
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}
    history = []
    if (path / "history.csv").exists():
        with open(path / "history.csv", newline="") as f:
            for row in csv.DictReader(f):
                history.append({k: _parse_cell(v) for k, v in row.items()})
    return Run(path.name, path, config, history, summary)


def _parse_cell(v: str):
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


LOCK = "lock"
CHECKPOINT, CHECKPOINT_PREVIOUS = "checkpoint.pt", "checkpoint-previous.pt"
BEST, BEST_PREVIOUS = "best.pt", "best-previous.pt"
BEFORE_FINETUNE = "best-before-finetune.pt"  # a fine-tuned run's best weights of its training stage


def _pending_best(run_dir: Path, epoch: int) -> Path:
    return run_dir / f"best-pending-epoch{epoch}.pt"


def _settle_best(run_dir: Path, state: dict):
    """Make ``best.pt`` agree with the last checkpoint. An epoch's better weights wait in a pending file until
    the checkpoint that records them is written: promoted then (the weights they replace kept as
    ``best-previous.pt``, which the previous checkpoint names), or, when the run was cut off in between (the
    checkpoint still names an earlier best epoch), deleted, since the resumed run repeats that epoch."""
    for pending in run_dir.glob("best-pending-epoch*.pt"):
        epoch = int(pending.stem[len("best-pending-epoch"):])
        if epoch == state["best_epoch"] == state["epoch"]:
            if (run_dir / BEST).exists():
                os.replace(run_dir / BEST, run_dir / BEST_PREVIOUS)
            os.replace(pending, run_dir / BEST)
        else:
            pending.unlink()


def save_checkpoint(run_dir: Path, ckpt: dict) -> None:
    """Write the epoch's checkpoint; the one it replaces stays as ``checkpoint-previous.pt``, the state to go
    back to should this one be found damaged. (Cut off between the two steps, a run finds only the previous
    one, and resumes from it.)"""
    written = run_dir / f"{CHECKPOINT}.{os.getpid()}.next"
    atomic_torch_save(ckpt, written)
    if (run_dir / CHECKPOINT).exists():
        os.replace(run_dir / CHECKPOINT, run_dir / CHECKPOINT_PREVIOUS)
    os.replace(written, run_dir / CHECKPOINT)


def resume_point(run_dir: Path, device, say=print) -> dict | None:
    """The newest checkpoint of ``run_dir`` that verifies and whose best weights are there intact; None when
    there is none (a new run, or one whose every checkpoint is damaged: it starts from scratch). A damaged
    file is reported by name and set aside as ``NAME.corrupt``, so that it is never tried again."""
    tried = []
    for name in (CHECKPOINT, CHECKPOINT_PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        tried.append(name)
        try:
            ckpt = load_verified(path, device, say=say)
        except CorruptCheckpoint as e:
            say(f"{e}: set aside as {_set_aside(path).name}")
            continue
        _settle_best(run_dir, ckpt["state"])
        if _restore_best(run_dir, ckpt["state"], say):
            if name != CHECKPOINT:
                say(f"resuming from {name} (epoch {ckpt['state']['epoch']}), the last state that verifies")
            return ckpt
        say(f"{name}: the best weights it names (epoch {ckpt['state']['best_epoch']}) are not intact "
            f"in {BEST} or {BEST_PREVIOUS}")
    if tried:
        say(f"no checkpoint of {run_dir.name} verifies ({', '.join(tried)}): training it from scratch")
        for name in (BEST, BEST_PREVIOUS):
            (run_dir / name).unlink(missing_ok=True)  # they belong to a state that is gone
    return None


def _restore_best(run_dir: Path, state: dict, say) -> bool:
    """Whether the best weights that checkpoint ``state`` names are at hand: ``best.pt``, or ``best-previous.pt``
    (moved back to ``best.pt``) when the checkpoint is the previous one. A checkpoint from before digests names
    no digest: its ``best.pt`` is taken as it is."""
    want = state.get("best_sha256")
    if state["best_epoch"] is None or want is None:
        return state["best_epoch"] is None or (run_dir / BEST).exists()
    for name in (BEST, BEST_PREVIOUS):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            digest = read_verified(path)[1]
        except CorruptCheckpoint as e:
            say(f"{e}: set aside as {_set_aside(path).name}")
            continue
        if digest == want:
            if name != BEST:
                os.replace(path, run_dir / BEST)
            return True
    return False


def _set_aside(path: Path) -> Path:
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    return aside


@contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on ``run_dir/lock`` while training, so that two processes asking for the same
    run (a notebook and the grid, say) never train it at once. The operating system releases the lock
    when its holder exits, however it exits, so a killed run never leaves a stale lock behind."""
    with open(run_dir / LOCK, "a+") as f:
        try:
            _flock(f, run_dir, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            print(f"{run_dir.name}: another process (pid {f.read().strip() or '?'}) is training this run; "
                  f"waiting for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} on {platform.node()}")  # on a cluster the pid alone does not say where
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def lock_holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock (what its holder wrote: pid and host), or None when nobody does."""
    if not (run_dir / LOCK).exists():
        return None
    with open(run_dir / LOCK, "a+") as f:
        try:
            _flock(f, run_dir, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return f"pid {f.read().strip() or '?'}"
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def _flock(f, run_dir: Path, flags: int) -> None:
    try:
        fcntl.flock(f, flags)
    except BlockingIOError:
        raise
    except OSError as e:  # e.g. ENOLCK: an NFS mount without its lock manager
        raise RuntimeError(f"{run_dir / LOCK}: this file system cannot lock files ({e.strerror}), so two "
                           f"processes could train the run at once; keep results on a file system with "
                           f"POSIX locks shared by every node (see awd/slurm.py)") from e


def _acc_dtype(data: torch.Tensor) -> torch.dtype:
    return torch.float32 if data.device.type == "mps" else torch.float64  # MPS has no float64


# --- small utilities --------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available here; use device='auto' or 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device={name!r} but MPS is not available here; use device='auto' or 'cpu'")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# A weights or checkpoint file: this header, the sha256 of the rest in hex, a newline, then torch.save's bytes.
DIGEST_HEADER = b"awd-sha256 "
_HEADER_LEN = len(DIGEST_HEADER) + 64 + 1


class CorruptCheckpoint(RuntimeError):
    """A weights or checkpoint file whose bytes are not the ones it was written with: never loaded."""


def atomic_torch_save(obj, path: Path) -> str:
    """``torch.save`` to ``path`` atomically, behind a digest of the bytes (see ``read_verified``); returns the
    digest. The digest covers every byte after the header, so a flipped or missing byte anywhere is found."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(DIGEST_HEADER + digest.encode() + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest


def read_verified(path: Path) -> tuple[bytes, str | None]:
    """The torch bytes of a file that ``atomic_torch_save`` wrote, and their digest, checked; raises
    ``CorruptCheckpoint`` naming the file when they do not match. A file from before digests (a plain torch
    file) cannot be checked: its digest is None."""
    data = Path(path).read_bytes()
    if not data.startswith(DIGEST_HEADER):
        if data.startswith(b"PK"):  # torch.save's zip format, written before digests
            return data, None
        raise CorruptCheckpoint(f"{path} is corrupted: it starts with neither a digest nor a torch file")
    digest, payload = data[len(DIGEST_HEADER):_HEADER_LEN - 1].decode("ascii", "replace"), data[_HEADER_LEN:]
    if data[_HEADER_LEN - 1:_HEADER_LEN] != b"\n" or hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptCheckpoint(f"{path} is corrupted or truncated: its bytes do not match the sha256 digest "
                                f"it was written with")
    return payload, digest


def load_verified(path: Path, map_location=None, say=None):
    """``torch.load`` of a verified file (``weights_only=True``: tensors and plain values, no code). A file from
    before digests is loaded with a note that it could not be verified."""
    payload, digest = read_verified(path)
    if digest is None:
        (say or _printer(""))(f"note: {path} has no digest (written before digests were added), "
                              f"so it could not be verified")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged file from before digests, cut short or garbled
        raise CorruptCheckpoint(f"{path} is corrupted or truncated: {e}") from e


def write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def _ppl(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(loss) if loss < 50 else math.inf


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _printer(prefix: str):
    def say(msg: str):
        print(prefix + msg, file=sys.stderr, flush=True)
    return say


class _NoBar:
    def update(self, n): pass
    def __enter__(self): return self
    def __exit__(self, *exc): return False


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="tok", unit_scale=True, leave=False, mininterval=1.0)
