"""The evaluations after training: the cache pointer's exact semantics and MC dropout's averaging."""
import json
import math
import os
from pathlib import Path

import pytest
import torch

from awd.evals import mc_perplexity, mix, pointer_probs


def pointer_loop(states, targets, window, theta):
    """The reference pointer.py's loop, one step at a time (every step after the first `window` has a cache)."""
    probs = []
    for t in range(states.size(0)):
        if t <= window:
            probs.append(0.0)
            continue
        keys, words = states[t - window:t], targets[t - window:t]
        attn = torch.softmax(theta * keys @ states[t], dim=0)
        probs.append(attn[words == targets[t]].sum().item())
    return torch.tensor(probs, dtype=torch.float64)


@pytest.mark.parametrize("window,chunk", [(3, 2), (5, 7), (8, 1024)])
def test_vectorized_pointer_equals_the_loop(window, chunk):
    torch.manual_seed(0)
    states, targets = torch.randn(40, 6), torch.randint(0, 5, (40,))
    p, has_cache = pointer_probs(states, targets, window, theta=0.7, chunk=chunk)
    assert torch.allclose(p, pointer_loop(states, targets, window, 0.7), atol=1e-6)
    assert has_cache.tolist() == [t > window for t in range(40)]


def test_pointer_on_a_hand_made_sequence():
    """Equal states attend uniformly, so p_ptr(y_t) is the share of the window's next words equal to y_t."""
    words = torch.tensor([1, 2, 1, 3, 1, 2, 1, 1])
    p, has_cache = pointer_probs(torch.ones(8, 4), words, window=4, theta=1.0)
    # step 5 (word 2) sees the next words of steps 1..4: 2, 1, 3, 1 -> one 2 of four
    assert p[5].item() == pytest.approx(1 / 4)
    # step 6 (word 1): 1, 3, 1, 2 -> two of four; step 7 (word 1): 3, 1, 2, 1 -> two of four
    assert p[6].item() == pytest.approx(2 / 4) and p[7].item() == pytest.approx(2 / 4)
    assert not has_cache[:5].any() and has_cache[5:].all()
    # a sharp theta puts all the attention on the most similar state: here the one that was followed by 3
    states = torch.tensor([[0.0], [0.0], [0.0], [1.0], [0.0], [1.0]])
    p, _ = pointer_probs(states, torch.tensor([0, 0, 0, 3, 0, 3]), window=4, theta=50.0)
    assert p[5].item() == pytest.approx(1.0, abs=1e-6)


def test_mixture_with_the_vocabulary_distribution():
    logp = torch.log(torch.tensor([0.5, 0.2, 0.1], dtype=torch.float64))
    p_ptr = torch.tensor([0.0, 0.8, 1.0], dtype=torch.float64)
    has_cache = torch.tensor([False, True, True])
    expected = -(math.log(0.5) + math.log(0.3 * 0.8 + 0.7 * 0.2) + math.log(0.3 * 1.0 + 0.7 * 0.1)) / 3
    assert mix(logp, p_ptr, has_cache, 0.3) == pytest.approx(expected)
    assert mix(logp, p_ptr, has_cache, 0.0) == pytest.approx(-logp.mean().item())


def test_mc_dropout_averages_probabilities_not_log_probabilities():
    # two passes, two tokens: p = (0.9, 0.1) and (0.1, 0.9) for the targets
    lp = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64))
    assert mc_perplexity(lp, 2) == pytest.approx(1 / 0.5)            # mean probability 0.5 for both tokens
    assert mc_perplexity(lp, 2) != pytest.approx(math.exp(-lp.mean().item()))  # the geometric mean: 3.33
    assert mc_perplexity(lp, 1) == pytest.approx(1 / math.sqrt(0.9 * 0.1))


DATA = os.environ.get("AWD_DATA_DIR")
needs_data = pytest.mark.skipif(not (DATA and Path(DATA, "ptb", "train.txt").exists()),
                                reason="set AWD_DATA_DIR to a folder holding ptb/train.txt etc. (e.g. ../shared/data)")


@needs_data
def test_evals_of_a_smoke_run(tmp_path):
    """One command writes both evaluations for both sets of weights of a fine-tuned run, checked against
    the validation perplexity the run recorded; MC dropout with every rate at 0 equals the deterministic
    evaluation, whatever K."""
    from awd.evals import evaluate_run
    from awd.experiments import variant_config
    from awd.train import train
    run = train(variant_config("full (fine-tuned)", "smoke", 0, progress=False, epochs=2, finetune_epochs=1),
                results_dir=tmp_path)
    out = evaluate_run(run.path, "cpu", samples=3, progress=False)
    assert set(out) == {"best.pt", "best-before-finetune.pt"}
    assert json.loads((run.path / "evals.json").read_text()) == out
    best = out["best.pt"]
    assert best["val_ppl_check"] == pytest.approx(run.summary["best_val_ppl"])
    ptr = best["pointer"]
    assert len(ptr["grid"]) == 5 * 5 * 5 and ptr["val_ppl"] == min(r["val_ppl"] for r in ptr["grid"])
    assert len(best["mc_dropout"]["val_ppl_by_samples"]) == 3

    quiet = train(variant_config("no dropout", "smoke", 0, progress=False, epochs=1), results_dir=tmp_path)
    mc = evaluate_run(quiet.path, "cpu", pointer=False, samples=3, progress=False)["best.pt"]["mc_dropout"]
    assert mc["val_ppl_by_samples"] == pytest.approx([mc["val_ppl_deterministic"]] * 3, rel=1e-6)
    assert mc["chosen_samples"] == 1

    from awd.evals import evals_frame
    models = evals_frame([run, quiet]).set_index("weights", append=True).model.tolist()
    assert models == ["fine-tuned", "full", "no dropout"]  # only a fine-tuned run's best.pt is "fine-tuned"


@needs_data
def test_a_fine_tuned_run_that_kept_its_training_stage_is_evaluated_once(tmp_path, monkeypatch):
    """Where fine-tuning never beat the training stage, best.pt holds the same bytes as
    best-before-finetune.pt: the evaluations run once and the second entry says whose numbers it shares."""
    import shutil

    from awd import evals
    from awd.experiments import variant_config
    from awd.train import train
    run = train(variant_config("full (fine-tuned)", "smoke", 0, progress=False, epochs=2, finetune_epochs=1),
                results_dir=tmp_path)
    shutil.copyfile(run.path / evals.BEFORE_FINETUNE, run.path / "best.pt")  # as if fine-tuning never won
    summary = json.loads((run.path / "summary.json").read_text())
    summary["best_val_ppl"] = summary["before_finetune"]["best_val_ppl"]
    (run.path / "summary.json").write_text(json.dumps(summary))
    calls = []
    real = evals.pointer_eval
    monkeypatch.setattr(evals, "pointer_eval", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = evals.evaluate_run(run.path, "cpu", samples=2, progress=False)
    assert len(calls) == 1
    first, second = out.values()
    assert second["same_weights_as"] == next(iter(out)) and "same_weights_as" not in first
    assert second["pointer"] == first["pointer"] and second["mc_dropout"] == first["mc_dropout"]
    assert second["weights_sha256"] == first["weights_sha256"]


@needs_data
def test_a_run_without_weights_is_evaluated_through_its_retrained_copy(tmp_path):
    """A committed run keeps no weights; its copy under retrained/ (same config and seed, trained again) stands
    for it, and a folder there that holds another run is refused."""
    import shutil

    from awd.evals import RETRAINED, with_weights
    from awd.experiments import variant_config
    from awd.train import load_run, train
    cfg = variant_config("standard dropout", "smoke", 0, progress=False, epochs=1)
    again = train(cfg, results_dir=tmp_path / RETRAINED)
    committed = tmp_path / again.path.name
    committed.mkdir()
    for name in ("config.json", "history.csv", "summary.json"):
        shutil.copy(again.path / name, committed)
    assert with_weights(load_run(committed), tmp_path).path == again.path
    assert with_weights(again, tmp_path).path == again.path          # it kept its own weights
    (again.path / "best.pt").unlink()
    assert with_weights(again, tmp_path / "elsewhere") is None
    other = train(variant_config("full", "smoke", 0, progress=False, epochs=1), results_dir=tmp_path / "x")
    shutil.rmtree(again.path)
    shutil.copytree(other.path, again.path)
    with pytest.raises(ValueError, match="not a retrain of"):
        with_weights(load_run(committed), tmp_path)


@needs_data
def test_weights_that_are_not_the_runs_are_refused(tmp_path):
    from awd.evals import evaluate_run
    from awd.experiments import variant_config
    from awd.train import train
    a = train(variant_config("full", "smoke", 0, progress=False, epochs=1), results_dir=tmp_path)
    b = train(variant_config("full", "smoke", 1, progress=False, epochs=1), results_dir=tmp_path)
    (a.path / "best.pt").write_bytes((b.path / "best.pt").read_bytes())
    with pytest.raises(RuntimeError, match="not the run's"):
        evaluate_run(a.path, "cpu", mc=False, progress=False)


@needs_data
def test_half_precision_weights_store_a_tied_embedding_once_and_load_back(tmp_path):
    """save_half: 2 bytes per parameter (the tied decoder's weight is the encoder's, stored once), read back
    by load_weights as float32 into the tied model, with the run's validation perplexity to half precision."""
    from awd.data import Corpus, batchify
    from awd.evals import load_weights, save_half
    from awd.experiments import variant_config
    from awd.train import evaluate, train
    run = train(variant_config("full", "smoke", 0, progress=False, epochs=1), results_dir=tmp_path)
    path = save_half(run.path, "best.pt")
    params = run.summary["params"]  # the model's parameters, the tied matrix counted once
    assert 2 * params < path.stat().st_size < 2 * params + 100_000
    cfg = run.config
    corpus = Corpus.load(cfg.dataset, data_dir=cfg.data_dir)
    model = load_weights(run.path, path.name, cfg, len(corpus.dictionary), "cpu")
    assert model.decoder.weight is model.encoder.weight
    val = batchify(corpus.valid[:cfg.max_eval_tokens], cfg.eval_batch_size)
    assert math.exp(evaluate(model, val, cfg.bptt)) == pytest.approx(run.summary["best_val_ppl"], rel=1e-2)
