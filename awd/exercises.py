"""Checkers for the implement-it-yourself exercises: a reader's function against awd's, and what differs.

Each ``check_*`` runs the reader's function and awd's on the same inputs under the same seed, and prints a
verdict instead of raising, so that a chapter with an unsolved exercise still runs:

- "matches awd exactly" when the outputs are equal;
- otherwise the first property that fails (shape, scaling, what the mask is shared over, how much is
  dropped, which tensor a penalty reads), or, when every property holds, that only the random draw differs
  and which call awd makes to draw it;
- "not written yet" while the function returns None.

The checkers return True on an exact match, so a test (tests/test_exercises.py) can hold the solutions to it.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from .optim import nonmono_trigger
from .regularize import EmbeddingDropout, LockedDropout, ar_tar

SEED = 0


def _run(fn, *args):
    """The reader's output under the fixed seed, or the exception it raised."""
    torch.manual_seed(SEED)
    try:
        return fn(*args), None
    except Exception as err:  # a reader's bug is a verdict, not a crash of the chapter
        return None, err


def _reference(fn, *args):
    torch.manual_seed(SEED)
    return fn(*args)


def _say(name: str, ok: bool, lines: list[str]) -> bool:
    print(f"{name}: " + ("matches awd exactly." if ok else lines[0]))
    for line in lines[1:]:
        print(f"  {line}")
    return ok


def _not_written(name: str, out, err) -> list[str] | None:
    if err is not None:
        return [f"raised {type(err).__name__}: {err}"]
    if out is None:
        return ["not written yet (the function returns None)."]
    if not isinstance(out, torch.Tensor):
        return [f"returns a {type(out).__name__}, not a tensor."]
    return None


def _kept_scale(out: torch.Tensor, x: torch.Tensor, p: float) -> list[str]:
    """Problems with an output that should be x where kept, scaled by 1/(1-p), and 0 where dropped."""
    ratio = out / x
    kept = ratio != 0
    if not torch.allclose(ratio[kept], torch.full_like(ratio[kept], 1 / (1 - p)), atol=1e-5):
        seen = sorted({round(v, 3) for v in ratio[kept].flatten()[:1000].tolist()})[:4]
        return [f"what is kept should be scaled by 1 / (1 - p) = {1 / (1 - p):.3f}; the kept values are "
                f"scaled by {seen}."]
    return []


def check_locked_dropout(fn, p: float = 0.4) -> bool:
    """``fn(x, p)`` on x of shape (time, batch, features), in training: awd's `LockedDropout` (variational)."""
    name = "locked_dropout"
    x = torch.rand(30, 8, 64) + 0.5  # positive, so a zero in the output is a drop
    out, err = _run(fn, x.clone(), p)
    problem = _not_written(name, out, err)
    if problem:
        return _say(name, False, problem)
    ref = _reference(LockedDropout(p).train(), x.clone())
    if out.shape == ref.shape and torch.allclose(out, ref):
        return _say(name, True, [])
    if out.shape != x.shape:
        return _say(name, False, [f"the output has shape {tuple(out.shape)}, the input {tuple(x.shape)}."])
    problems = _kept_scale(out, x, p)
    dropped = out == 0
    if (dropped != dropped[:1]).any():
        problems.append("a unit dropped at one time step is kept at another: the mask must be the same at "
                        "every step of a sequence (draw it with shape (1, batch, features)).")
    elif (dropped[0] == dropped[0, :1]).all():
        problems.append("every sequence of the batch has the same mask: draw one per sequence, shape "
                        "(1, batch, features).")
    share = dropped.float().mean().item()
    if abs(share - p) > 0.1:
        problems.append(f"{share:.0%} of the units are dropped; with p = {p} it should be about {p:.0%} "
                        "(p is the probability to drop, 1 - p to keep).")
    if not problems:
        problems = ["right shape, scaling and sharing; only the random draw differs from awd's.",
                    "awd draws the mask as x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p); draw it "
                    "the same way, as the first random call, to match exactly."]
    return _say(name, False, problems)


def check_embedding_dropout(fn, p: float = 0.3) -> bool:
    """``fn(weight, words, p)``: the vectors of ``words`` (time, batch) looked up in ``weight`` (V, E) with
    whole words dropped, as awd's `EmbeddingDropout`."""
    name = "embedding_dropout"
    torch.manual_seed(1)
    weight = torch.rand(50, 16) + 0.5
    words = torch.randint(0, 50, (20, 6))
    out, err = _run(fn, weight.clone(), words, p)
    problem = _not_written(name, out, err)
    if problem:
        return _say(name, False, problem)
    ref = _reference(EmbeddingDropout(p).train(), nn.Embedding.from_pretrained(weight.clone()), words)
    if out.shape == ref.shape and torch.allclose(out, ref):
        return _say(name, True, [])
    if out.shape != ref.shape:
        return _say(name, False, [f"the output has shape {tuple(out.shape)}; the vectors of the words have "
                                  f"{tuple(ref.shape)}."])
    looked_up = weight[words]
    problems = _kept_scale(out, looked_up, p)
    zero = (out == 0)
    if (zero.any(-1) != zero.all(-1)).any():
        problems.append("some vectors are dropped only in part: embedding dropout removes a word's whole "
                        "vector (a mask of shape (V, 1) over the rows of the matrix).")
    else:
        per_word = {}
        for w, z in zip(words.flatten().tolist(), zero.all(-1).flatten().tolist()):
            per_word.setdefault(w, set()).add(z)
        if any(len(v) > 1 for v in per_word.values()):
            problems.append("a word is dropped at one position and kept at another: drop word types (rows of "
                            "the matrix), so that a dropped word is gone everywhere in the batch.")
    if not problems:
        problems = ["whole words dropped and the rest scaled; only the random draw differs from awd's.",
                    "awd draws weight.new_empty(V, 1).bernoulli_(1 - p) as its first random call."]
    return _say(name, False, problems)


def check_weight_drop(fn, p: float = 0.5) -> bool:
    """``fn(w_hh, p)``: the hidden-to-hidden matrix with DropConnect applied, as awd's `WeightDrop` does it
    for one forward call."""
    name = "weight_drop"
    w = torch.rand(4 * 32, 32) + 0.5
    out, err = _run(fn, w.clone(), p)
    problem = _not_written(name, out, err)
    if problem:
        return _say(name, False, problem)
    ref = _reference(lambda m: F.dropout(m, p, training=True), w.clone())
    if out.shape == ref.shape and torch.allclose(out, ref):
        return _say(name, True, [])
    if out.shape != w.shape:
        return _say(name, False, [f"the output has shape {tuple(out.shape)}, the matrix {tuple(w.shape)}."])
    problems = _kept_scale(out, w, p)
    zero = out == 0
    if zero.all(1).float().mean() > 0.5 * p or zero.all(0).float().mean() > 0.5 * p:
        problems.append("whole rows or columns are dropped: DropConnect drops single weights, each with "
                        "probability p.")
    share = zero.float().mean().item()
    if abs(share - p) > 0.05:
        problems.append(f"{share:.0%} of the weights are dropped; with p = {p} it should be about {p:.0%}.")
    if not problems:
        problems = ["single weights dropped and the rest scaled; only the random draw differs from awd's.",
                    "awd calls F.dropout(w_hh, p, training=True)."]
    return _say(name, False, problems)


def check_ar_tar(fn, alpha: float = 2.0, beta: float = 1.0) -> bool:
    """``fn(raw_last, dropped_last, alpha, beta)``: the AR + TAR penalty, as `awd.ar_tar`."""
    name = "ar_tar"
    torch.manual_seed(2)
    raw, dropped = torch.randn(15, 4, 8), torch.randn(15, 4, 8)
    got, err = _run(fn, raw, dropped, alpha, beta)
    problem = _not_written(name, got, err)
    if problem:
        return _say(name, False, problem)
    want = ar_tar(raw, dropped, alpha, beta)
    if got.numel() == 1 and torch.allclose(got.reshape(()), want):
        return _say(name, True, [])
    if got.numel() != 1:
        return _say(name, False, [f"the penalty should be one number; it has shape {tuple(got.shape)}."])
    problems = [f"{got.item():.4f} where awd gives {want.item():.4f}."]
    for part, a, b in (("AR (beta = 0)", alpha, 0.0), ("TAR (alpha = 0)", 0.0, beta)):
        mine, ref = fn(raw, dropped, a, b), ar_tar(raw, dropped, a, b)
        if not torch.allclose(torch.as_tensor(mine).reshape(()), ref):
            swapped = torch.allclose(torch.as_tensor(fn(dropped, raw, a, b)).reshape(()), ref)
            problems.append(f"{part} differs: {float(mine):.4f} against {ref.item():.4f}"
                            + (" (it matches with raw and dropped swapped: AR reads the dropped output, TAR "
                               "the raw one)." if swapped else " (a mean of squares, times its coefficient)."))
    return _say(name, False, problems)


def check_trigger(fn, n: int = 5) -> bool:
    """``fn(logs, v, n)``: whether NT-ASGD starts averaging after the check ``v``, given the earlier checks
    ``logs``, as `awd.optim.nonmono_trigger`."""
    name = "trigger"
    rng = random.Random(SEED)
    cases = [([100, 150, 150, 150, 150, 150], 120, n), ([100, 90, 80], 85, n), ([], 1.0, n)]
    for _ in range(500):
        length = rng.randint(0, 12)
        cases.append(([rng.choice([1, 2, 3, 4, 5]) for _ in range(length)], rng.choice([1, 2, 3, 4, 5]),
                      rng.randint(1, 6)))
    for logs, v, k in cases:
        try:
            got = fn(list(logs), v, k)
        except Exception as err:
            return _say(name, False, [f"raised {type(err).__name__}: {err} for logs={logs}, v={v}, n={k}."])
        if got is None:
            return _say(name, False, ["not written yet (the function returns None)."])
        want = nonmono_trigger(list(logs), v, k)
        if bool(got) != want:
            typo = len(logs) > k and v > min(logs[-k:])
            hint = (" That is the arXiv v1 text's condition (the best of the last n); the authors' code compares "
                    "with the best from before the last n checks." if bool(got) == typo else "")
            return _say(name, False, [f"for logs={logs}, v={v}, n={k} it returns {got}, awd {want}.{hint}"])
    return _say(name, True, [])
