"""Evaluations of a trained model beyond its plain perplexity: the continuous cache pointer and MC dropout.

    python -m awd evals RUN_ID          # both, on every set of weights the run kept -> results/RUN_ID/evals.json

- **Continuous cache pointer** (Grave, Joulin & Usunier 2016; applied after training as the reference
  code's ``pointer.py`` does, Section 6 of the paper). The model reads the split as one stream (batch 1,
  state carried); at step t the cache holds the last ``window`` pairs (h_i, y_i) of the last layer's output
  h_i and the word y_i that followed it, and

      p_ptr(w | h_t) = sum_i softmax_i(theta * h_t . h_i) * 1[y_i = w]
      p(w)           = lambda * p_ptr(w) + (1 - lambda) * p_vocab(w).

  Only the target's probability is needed for perplexity, so the whole stream is scored with a few matrix
  products per chunk instead of a Python loop per token. Window, theta and lambda are chosen on the
  validation set; test is scored once, with the chosen settings.
- **MC dropout** (Gal & Ghahramani 2016): K forward passes with fresh training-mode masks (every dropout of
  training: embedding, locked, weight drop), averaging the predicted *probabilities* of each target, not
  their logarithms; against the deterministic evaluation (dropout off). K is chosen on validation.

The results go to ``evals.json`` in the run's folder, with the settings, the weights' digest and the code's
commit, so that the book reads them and never needs the weights.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import Corpus, batchify, bptt_batches
from .model import AWDLSTM
from .train import (BEFORE_FINETUNE, atomic_torch_save, atomic_write_text, evaluate, load_run, load_verified,
                    resolve_device, run_metadata)

# The validation grid of the pointer. It holds the reference README's PTB settings (window 500, theta 1.0,
# lambda 0.1) and the paper's window (2000); theta reaches below 1 because our hidden states are smaller.
WINDOWS = (100, 200, 500, 1000, 2000)
THETAS = (0.1, 0.25, 0.5, 1.0, 2.0)
LAMBDAS = (0.05, 0.1, 0.15, 0.2, 0.3)
# What others measured (the facts file, ../shared/reference/awd-lstm-facts.md): the paper's fine-tuned model
# without and with the pointer, (val, test) each (Section 6); the settings of the reference code's README
# (window, theta, lambda); Grave et al.'s own PTB model, test without and with their cache.
PAPER_POINTER = {"ptb": ((60.0, 57.3), (53.9, 52.8)), "wikitext-2": ((68.6, 65.8), (53.8, 52.0))}
REFERENCE_POINTER_SETTINGS = {"ptb": (500, 1.0, 0.1), "wikitext-2": (3785, 0.662, 0.1279)}
GRAVE_PTB_TEST = (82.3, 72.1)
# Gal & Ghahramani's large LSTM on PTB, test without and with MC dropout (the facts file)
GAL_MC_TEST = (75.2, 73.4)
MC_SAMPLES = 100
# K is the smallest number of passes whose validation perplexity is within this fraction of the gain of all
# MC_SAMPLES passes (more passes cost linearly and gain ever less).
MC_GAIN_SHARE = 0.95


# --- the cache pointer ------------------------------------------------------------------------------------
@torch.no_grad()
def stream_states(model: AWDLSTM, tokens: torch.Tensor, bptt: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read a split as one stream (batch 1, state carried, dropout off): per prediction step the last layer's
    output h_t (N, d), the log-probability log p_vocab(y_t) of the word that follows (N,), and y_t (N,)."""
    model.eval()
    data = tokens.view(-1, 1)
    hidden, states, logp, targets = None, [], [], []
    for x, y, _ in bptt_batches(data, bptt, variable=False):
        logits, hidden, _, dropped = model(x, hidden, return_h=True)
        states.append(dropped[-1].squeeze(1))
        logp.append(F.log_softmax(logits.squeeze(1), dim=-1).gather(1, y.view(-1, 1)).squeeze(1))
        targets.append(y.view(-1))
    return torch.cat(states), torch.cat(logp).double(), torch.cat(targets)


def pointer_probs(states: torch.Tensor, targets: torch.Tensor, window: int, theta: float,
                  chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """p_ptr(y_t | h_t) for every step t, and whether step t had a cache at all.

    As ``pointer.py``: step t attends over the pairs t-window .. t-1 (never its own), and the first
    ``window`` steps of the split, before the cache is full, get no cache (their mask is False). One
    departure: ``pointer.py`` also gives no cache to the first step of every later bptt chunk (its test
    ``start_idx + idx > window`` runs after the history was cut to ``window`` pairs, an off-by-one); here
    every step after the first ``window`` has one."""
    n = states.size(0)
    probs = torch.zeros(n, dtype=torch.float64)
    for a in range(window + 1, n, chunk):  # steps a .. b-1; their keys are the pairs a-window .. b-2
        b = min(a + chunk, n)
        keys, key_words = states[a - window:b - 1], targets[a - window:b - 1]
        scores = theta * states[a:b] @ keys.T                              # (b-a, window+b-a-1)
        rows = torch.arange(b - a).view(-1, 1)
        cols = torch.arange(keys.size(0)).view(1, -1)
        in_window = (cols >= rows) & (cols < rows + window)                # key i serves step a+r iff r <= i < r+window
        attn = torch.softmax(scores.masked_fill(~in_window, -math.inf), dim=1)
        hits = key_words.view(1, -1) == targets[a:b].view(-1, 1)
        probs[a:b] = (attn * hits).sum(1).double()
    has_cache = torch.arange(n) > window
    return probs, has_cache


def attention(states: torch.Tensor, t: int, window: int, theta: float) -> torch.Tensor:
    """The pointer's attention of step t over the pairs t-window .. t-1 (for pictures; one step at a time)."""
    keys = states[max(0, t - window):t]
    return torch.softmax(theta * keys @ states[t], dim=0)


def mix(logp_vocab: torch.Tensor, p_ptr: torch.Tensor, has_cache: torch.Tensor, lam: float) -> float:
    """Mean cross-entropy of p = lambda p_ptr + (1 - lambda) p_vocab (p_vocab alone where there is no cache)."""
    p = torch.where(has_cache, lam * p_ptr + (1 - lam) * logp_vocab.exp(), logp_vocab.exp())
    return -p.log().mean().item()


def pointer_eval(model: AWDLSTM, corpus: Corpus, cfg, device, progress: bool = True) -> dict:
    """Choose window, theta and lambda on validation (the whole grid is recorded), then score test once."""
    from tqdm.auto import tqdm
    splits = {}
    for split in ("valid", "test"):
        tokens = getattr(corpus, split)[:cfg.max_eval_tokens].to(device)
        h, logp, y = stream_states(model, tokens, cfg.bptt)
        splits[split] = (h.cpu(), logp.cpu(), y.cpu())
    h, logp, y = splits["valid"]
    grid = []
    combos = [(w, t) for w in WINDOWS for t in THETAS if w < h.size(0)]
    for window, theta in tqdm(combos, desc="pointer grid (valid)", disable=not progress):
        p_ptr, has_cache = pointer_probs(h, y, window, theta)
        grid += [dict(window=window, theta=theta, lambdah=lam, val_ppl=math.exp(mix(logp, p_ptr, has_cache, lam)))
                 for lam in LAMBDAS]
    best = min(grid, key=lambda r: r["val_ppl"])
    h, logp, y = splits["test"]
    p_ptr, has_cache = pointer_probs(h, y, best["window"], best["theta"])
    return dict(
        method="continuous cache pointer (Grave et al. 2016) as the reference pointer.py applies it: batch 1, "
               "state carried, no cache for the first `window` steps of a split",
        grid=grid, chosen=dict(window=best["window"], theta=best["theta"], lambdah=best["lambdah"]),
        chosen_by="lowest validation perplexity over the grid",
        val_ppl_no_cache=math.exp(-splits["valid"][1].mean().item()),
        test_ppl_no_cache=math.exp(-splits["test"][1].mean().item()),
        val_ppl=best["val_ppl"], test_ppl=math.exp(mix(logp, p_ptr, has_cache, best["lambdah"])))


# --- MC dropout -------------------------------------------------------------------------------------------
@torch.no_grad()
def target_logprobs(model: AWDLSTM, data: torch.Tensor, bptt: int) -> torch.Tensor:
    """log p(y_t) of every target of a batchified split, in the model's current mode (train: masks drawn)."""
    hidden, out = model.init_hidden(data.size(1)), []
    for x, y, _ in bptt_batches(data, bptt, variable=False):
        logits, hidden = model(x, hidden)
        out.append(F.log_softmax(logits, dim=-1).gather(2, y.unsqueeze(2)).squeeze(2).reshape(-1))
    return torch.cat(out).double()


def mc_logprobs(model: AWDLSTM, data: torch.Tensor, bptt: int, samples: int, seed: int = 0,
                progress: bool = True) -> torch.Tensor:
    """(samples, N) target log-probabilities, one row per pass with fresh training-mode masks."""
    from tqdm.auto import tqdm
    model.train()
    rows = []
    for k in tqdm(range(samples), desc="MC dropout passes", disable=not progress):
        torch.manual_seed(seed * 100_003 + k)
        rows.append(target_logprobs(model, data, bptt).cpu())
    model.eval()
    return torch.stack(rows)


def mc_perplexity(logprobs: torch.Tensor, k: int) -> float:
    """Perplexity of the mean of the first k passes' probabilities: exp(-mean_t log((1/k) sum_j p_j(y_t)))."""
    mean_logp = torch.logsumexp(logprobs[:k], dim=0) - math.log(k)
    return math.exp(-mean_logp.mean().item())


def mc_eval(model: AWDLSTM, corpus: Corpus, cfg, device, samples: int = MC_SAMPLES, progress: bool = True) -> dict:
    """Perplexity against K on validation, K chosen there, then test at that K (and the deterministic pair)."""
    def split_data(split, bs):
        return batchify(getattr(corpus, split)[:cfg.max_eval_tokens], bs).to(device)
    val_data, test_data = split_data("valid", cfg.eval_batch_size), split_data("test", cfg.test_batch_size)
    val_det, test_det = (math.exp(evaluate(model, d, cfg.bptt)) for d in (val_data, test_data))
    val_lp = mc_logprobs(model, val_data, cfg.bptt, samples, seed=1, progress=progress)
    ks = list(range(1, samples + 1))
    curve = [mc_perplexity(val_lp, k) for k in ks]
    gain = curve[0] - curve[-1]
    chosen = next(k for k, ppl in zip(ks, curve) if curve[0] - ppl >= MC_GAIN_SHARE * gain) if gain > 0 else 1
    test_lp = mc_logprobs(model, test_data, cfg.bptt, chosen, seed=2, progress=progress)
    return dict(
        method="MC dropout (Gal & Ghahramani 2016): mean of the probabilities of K passes with training-mode masks",
        samples=ks, val_ppl_by_samples=curve, chosen_samples=chosen,
        chosen_by=f"the smallest K with {MC_GAIN_SHARE:.0%} of the validation gain of K={samples} "
                  "(K=1 when there is no gain)",
        val_ppl_deterministic=val_det, test_ppl_deterministic=test_det,
        val_ppl=curve[chosen - 1], test_ppl=mc_perplexity(test_lp, chosen))


# --- a run's evaluations ----------------------------------------------------------------------------------
WEIGHTS = {"best.pt": ("best_val_ppl",), BEFORE_FINETUNE: ("before_finetune", "best_val_ppl")}
MODEL_NAMES = {"best.pt": "fine-tuned", BEFORE_FINETUNE: "full"}  # what each file of a fine-tuned run is
EVALS = "evals.json"
HALF = ".fp16.pt"  # the committed copy of a run's weights: half precision, a few MB
# results/retrained/<run id>/: a committed run trained again, to evaluate its weights (no weights are committed)
RETRAINED = "retrained"


def model_name(run, name: str) -> str:
    """What the weights ``name`` of ``run`` are: a fine-tuned run keeps two models (its training stage, a full
    model, and the fine-tuned one); any other run's best weights are its variant's model."""
    from .experiments import variant_of
    return MODEL_NAMES[name] if run.config.finetune_epochs else variant_of(run.config)


def with_weights(run, results_dir: str | Path):
    """The run whose weights stand for ``run`` in an evaluation: ``run`` itself when its folder kept weights,
    else its copy under ``results_dir/retrained/`` (the same config and seed trained again where the weights
    stayed: its own run, with its own history, since floating point on another CPU takes another trajectory),
    else None."""
    if any((run.path / name).exists() for name in WEIGHTS) or (run.path / EVALS).exists():
        return run
    copy = Path(results_dir) / RETRAINED / run.path.name
    if (copy / "summary.json").exists():
        again = load_run(copy)
        if again.config.run_id() != run.config.run_id():
            raise ValueError(f"{copy} holds {again.config.run_id()}, not a retrain of {run.config.run_id()}")
        return again
    return None


def save_half(run_dir: str | Path, name: str = BEFORE_FINETUNE) -> Path:
    """A half-precision copy of a run's weights, small enough to commit, so that a reader can generate text and
    try the evaluations without training (``load_weights`` reads it back as float32)."""
    run_dir = Path(run_dir)
    state = load_verified(run_dir / name, "cpu")
    path = run_dir / (Path(name).stem + HALF)
    # a tied decoder's weight is the encoder's tensor: convert each tensor once, so that torch.save stores it
    # once (converting key by key would store the embedding twice, half of the file again)
    halves, out = {}, {}
    for k, v in state.items():
        if v.is_floating_point():
            same = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())
            if same not in halves:
                halves[same] = v.half()
            v = halves[same]
        out[k] = v
    atomic_torch_save(out, path)  # digest too
    return path


def evals_frame(runs) -> "pandas.DataFrame":
    """One row per run and kept model with its evaluations (the runs' ``evals.json``; none where missing)."""
    import pandas as pd
    from .experiments import variant_of
    rows = []
    for run in runs:
        path = run.path / EVALS
        if not path.exists():
            continue
        for name, e in json.loads(path.read_text()).items():
            row = dict(variant=variant_of(run.config), seed=run.config.seed, model=model_name(run, name),
                       weights=name, sha256=e.get("weights_sha256"))
            if "pointer" in e:
                ptr = e["pointer"]
                row.update({"val": ptr["val_ppl_no_cache"], "val + pointer": ptr["val_ppl"],
                            "test": ptr["test_ppl_no_cache"], "test + pointer": ptr["test_ppl"],
                            "window": ptr["chosen"]["window"], "theta": ptr["chosen"]["theta"],
                            "lambda": ptr["chosen"]["lambdah"]})
            if "mc_dropout" in e:
                mc = e["mc_dropout"]
                row.update({"val (dropout off)": mc["val_ppl_deterministic"], "val MC": mc["val_ppl"],
                            "test (dropout off)": mc["test_ppl_deterministic"], "test MC": mc["test_ppl"],
                            "K": mc["chosen_samples"]})
            rows.append(row)
    return pd.DataFrame(rows)


def kept_seeds(scores) -> list:
    """The seeds whose evaluated fine-tuned model is, byte for byte, its own run's training stage: fine-tuning
    never beat the training stage, so the two are one model. ``scores``: rows with seed, weights, model and
    sha256, as ``evals_frame`` gives them."""
    if not {"seed", "weights", "model", "sha256"} <= set(scores.columns):
        return []  # evaluations that name no weights cannot show that two are the same
    stage = {seed: sha for seed, weights, sha in zip(scores.seed, scores.weights, scores.sha256)
             if weights == BEFORE_FINETUNE}
    return sorted(seed for seed, model, sha in zip(scores.seed, scores.model, scores.sha256)
                  if model == MODEL_NAMES["best.pt"] and isinstance(sha, str) and sha == stage.get(seed))


def finetuning_kept_weights(scores) -> bool:
    """Whether fine-tuning kept the training stage's weights for every seed whose fine-tuned model was
    evaluated (``kept_seeds``), so that the fine-tuned model is the full model throughout."""
    tuned = set(scores.seed[scores.model == MODEL_NAMES["best.pt"]]) if "model" in scores else set()
    return bool(tuned) and tuned == set(kept_seeds(scores))


def load_weights(run_dir: Path, name: str, cfg, vocab_size: int, device) -> AWDLSTM:
    model = AWDLSTM.from_config(cfg, vocab_size)
    model.load_state_dict({k: v.float() for k, v in
                           load_verified(run_dir / name, device).items()})  # digest checked
    return model.to(device).eval()


def evaluate_run(run_path: str | Path, device: str = "auto", pointer: bool = True, mc: bool = True,
                 samples: int = MC_SAMPLES, progress: bool = True) -> dict:
    """Both evaluations for every set of weights the run kept, written to ``evals.json`` in its folder.

    The weights must reproduce the validation perplexity that the run recorded for them (checked first), so
    that the numbers belong to the run they are filed under."""
    run = load_run(run_path)
    if not run.finished:
        raise RuntimeError(f"{run.path} is not a finished run ({run.summary.get('status', 'no summary')}); "
                           "train it first")
    cfg, dev = run.config, resolve_device(device)
    corpus = Corpus.load(cfg.dataset, data_dir=cfg.data_dir)
    present = [name for name in WEIGHTS if (run.path / name).exists()]
    if not present:
        raise FileNotFoundError(f"{run.path} holds no weights (best.pt): weights are not committed; retrain the "
                                f"run (python -m awd train --profile {cfg.profile} ... --retrain) to get them")
    out = json.loads((run.path / EVALS).read_text()) if (run.path / EVALS).exists() else {}
    val_data = batchify(corpus.valid[:cfg.max_eval_tokens], cfg.eval_batch_size).to(dev)
    done = {}  # sha256 -> the name evaluated with those bytes in this call
    for name in present:
        start = time.perf_counter()
        sha = hashlib.sha256((run.path / name).read_bytes()).hexdigest()
        model = load_weights(run.path, name, cfg, len(corpus.dictionary), dev)
        recorded = run.summary
        for key in WEIGHTS[name]:
            recorded = recorded[key]
        measured = math.exp(evaluate(model, val_data, cfg.bptt))
        if not math.isclose(measured, recorded, rel_tol=1e-4):
            raise RuntimeError(f"{run.path / name}: validation perplexity {measured:.3f}, but the run recorded "
                               f"{recorded:.3f} for these weights; they are not the run's (retrain it)")
        entry = dict(out.get(name, {}))
        entry.pop("same_weights_as", None)
        if sha in done:
            # fine-tuning never beat the training stage: the same bytes, and both evaluations are
            # deterministic (MC dropout draws its masks from a fixed seed), so the numbers are the same
            twin = out[done[sha]]
            entry.update({k: twin[k] for k, wanted in (("pointer", pointer), ("mc_dropout", mc)) if wanted},
                         same_weights_as=done[sha])
        else:
            if pointer:
                entry["pointer"] = pointer_eval(model, corpus, cfg, dev, progress)
            if mc:
                entry["mc_dropout"] = mc_eval(model, corpus, cfg, dev, samples, progress)
            done[sha] = name
        entry.update(weights_sha256=sha, val_ppl_check=measured, seconds=round(time.perf_counter() - start, 1),
                     **{k: v for k, v in run_metadata(dev, 0).items() if k != "params"})
        out[name] = entry
        atomic_write_text(run.path / EVALS, json.dumps(out, indent=2) + "\n")
    return out
