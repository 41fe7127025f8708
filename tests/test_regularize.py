"""Each regularizer's exact semantics (paper Section 4; facts file)."""
import warnings

import pytest
import torch
from torch import nn

from awd.regularize import EmbeddingDropout, LockedDropout, WeightDrop, ar_tar


# --- locked (variational) dropout ------------------------------------------------------------------------
def test_locked_mask_is_shared_over_time_and_differs_over_batch_and_calls():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    x = torch.ones(30, 8, 64)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y)), "the mask must be the same at every time step"
    assert set(y.unique().tolist()) == {0.0, 2.0}, "kept units are rescaled by 1/(1-p)"
    assert not torch.equal(y[0, 0], y[0, 1]), "batch rows get their own masks"
    assert not torch.equal(y, drop(x)), "each forward call draws a new mask"


def test_standard_dropout_differs_between_time_steps():
    torch.manual_seed(0)
    y = LockedDropout(0.5, mode="standard").train()(torch.ones(30, 8, 64))
    assert not torch.equal(y[0], y[1])
    assert set(y.unique().tolist()) == {0.0, 2.0}


def test_2017_mask_is_shared_over_the_batch_and_fresh_at_every_time_step():
    """The first code release's mask, (seq_len, 1, features): what the paper's tables were measured with."""
    torch.manual_seed(0)
    drop = LockedDropout(0.5, mode="2017").train()
    x = torch.ones(30, 8, 64)
    y = drop(x)
    assert torch.equal(y, y[:, :1].expand_as(y)), "every sequence of the batch gets the same mask"
    assert all(not torch.equal(y[t], y[t + 1]) for t in range(29)), "a fresh mask at every time step"
    assert set(y.unique().tolist()) == {0.0, 2.0}, "kept units are rescaled by 1/(1-p)"
    assert not torch.equal(y, drop(x)), "each forward call draws a new mask"


@pytest.mark.parametrize("mode", ["variational", "standard", "2017"])
def test_locked_dropout_preserves_the_expectation(mode):
    torch.manual_seed(0)
    drop = LockedDropout(0.3, mode).train()
    x = torch.full((4, 200, 250), 3.0)
    assert drop(x).mean().item() == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize("mode", ["variational", "standard", "2017"])
def test_locked_dropout_is_identity_in_eval_and_at_zero(mode):
    x = torch.randn(5, 3, 4)
    assert LockedDropout(0.5, mode).eval()(x) is x
    assert LockedDropout(0.0, mode).train()(x) is x


def test_locked_dropout_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode="):
        LockedDropout(0.5, "gaussian")


# --- embedding dropout ------------------------------------------------------------------------------------
def test_embedding_dropout_drops_whole_words_consistently():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 16)
    drop = EmbeddingDropout(0.5).train()
    words = torch.randint(0, 50, (40, 6))
    out = drop(emb, words)
    zeroed = (out == 0).all(-1)          # (T, B): which positions lost their whole vector
    partly = (out == 0).any(-1) & ~zeroed
    assert zeroed.any() and not partly.any(), "a dropped word loses its whole vector"
    for w in words.unique():
        states = zeroed[words == w]
        assert states.all() or not states.any(), f"word {w} must be dropped everywhere or nowhere"
    kept = ~zeroed
    torch.testing.assert_close(out[kept], emb(words)[kept] * 2.0)


def test_embedding_dropout_equals_masking_the_matrix_and_passes_gradients():
    torch.manual_seed(1)
    emb = nn.Embedding(30, 8)
    words = torch.randint(0, 30, (10, 4))
    torch.manual_seed(2)
    out = EmbeddingDropout(0.4).train()(emb, words)
    torch.manual_seed(2)  # the same draw, applied to the whole matrix as in the reference code
    keep = emb.weight.new_empty(30, 1).bernoulli_(0.6)
    expected = nn.functional.embedding(words, emb.weight * keep / 0.6)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0


def test_embedding_dropout_eval_is_plain_lookup():
    emb = nn.Embedding(10, 4)
    words = torch.arange(10).view(5, 2)
    assert torch.equal(EmbeddingDropout(0.5).eval()(emb, words), emb(words))


# --- weight drop ------------------------------------------------------------------------------------------
def _wd(p=0.5):
    torch.manual_seed(0)
    return WeightDrop(nn.LSTM(6, 7), p)


def test_weight_drop_training_calls_differ_after_the_first_step():
    wd = _wd().train()
    x = torch.randn(5, 3, 6)
    a, _ = wd(x)
    b, _ = wd(x)
    # From a zero state the first step does not touch W_hh, so only later steps can differ.
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1:], b[1:])


def test_weight_drop_mask_is_shared_over_time_and_batch():
    """One mask per call: the dropped LSTM equals an nn.LSTM carrying that one dropped matrix."""
    wd = _wd().train()
    x = torch.randn(6, 4, 6)
    torch.manual_seed(5)
    out, (h, c) = wd(x)
    torch.manual_seed(5)
    dropped = nn.functional.dropout(wd.module.weight_hh_l0.detach(), 0.5, training=True)
    ref = nn.LSTM(6, 7)
    ref.load_state_dict({**wd.module.state_dict(), "weight_hh_l0": dropped})
    ref_out, _ = ref(x)
    torch.testing.assert_close(out, ref_out)


def test_weight_drop_eval_equals_plain_lstm_with_raw_weights():
    wd = _wd().eval()
    ref = nn.LSTM(6, 7)
    ref.load_state_dict(wd.module.state_dict())
    x = torch.randn(5, 3, 6)
    torch.testing.assert_close(wd(x)[0], ref(x)[0])
    torch.testing.assert_close(wd(x)[0], wd(x)[0])  # deterministic


def test_weight_drop_gradient_reaches_the_raw_weight_and_no_warnings():
    wd = _wd().train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = wd(torch.randn(5, 3, 6))
        out.sum().backward()
        wd.eval()(torch.randn(5, 3, 6))
    grad = wd.module.weight_hh_l0.grad
    assert grad is not None and grad.abs().sum() > 0
    assert (grad == 0).any(), "dropped connections get no gradient"


def test_weight_drop_state_dict_round_trips_and_keeps_nn_lstm_keys():
    wd = _wd().train()
    wd(torch.randn(4, 2, 6))  # a training call must not change what is registered
    keys = set(wd.state_dict())
    assert keys == {f"module.{k}" for k in nn.LSTM(6, 7).state_dict()}
    other = _wd(0.5)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(wd.state_dict())
    for a, b in zip(wd.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_eval_after_training_calls_uses_the_raw_weights():
    """The reference code's failure: after a dropped call, eval must not keep using the dropped matrix."""
    wd = _wd().train()
    for _ in range(3):
        out, _ = wd(torch.randn(4, 2, 6))
        out.sum().backward()
    ref = nn.LSTM(6, 7)
    ref.load_state_dict(wd.module.state_dict())
    x = torch.randn(5, 3, 6)
    torch.testing.assert_close(wd.eval()(x)[0], ref(x)[0])
    assert isinstance(wd.module.weight_hh_l0, nn.Parameter)


# --- AR / TAR ---------------------------------------------------------------------------------------------
def test_ar_tar_match_the_reference_formulas():
    torch.manual_seed(0)
    raw, dropped = torch.randn(7, 3, 5), torch.randn(7, 3, 5)
    ar = 2.0 * dropped.pow(2).mean()
    tar = 1.0 * (raw[1:] - raw[:-1]).pow(2).mean()
    torch.testing.assert_close(ar_tar(raw, dropped, 2.0, 1.0), ar + tar)
    torch.testing.assert_close(ar_tar(raw, dropped, 2.0, 0.0), ar)
    torch.testing.assert_close(ar_tar(raw, dropped, 0.0, 1.0), tar)
    assert ar_tar(raw, dropped, 0.0, 0.0).item() == 0.0
