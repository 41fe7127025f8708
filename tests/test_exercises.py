"""The implement-it-yourself checkers: the chapters' solutions match awd exactly, and typical mistakes get
the diagnosis that names them."""
import torch
import torch.nn.functional as F

from awd import exercises


def locked_dropout(x, p):
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(weight, words, p):
    keep = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
    return (weight * keep)[words]


def weight_drop(w_hh, p):
    return F.dropout(w_hh, p, training=True)


def ar_tar(raw_last, dropped_last, alpha, beta):
    ar = alpha * dropped_last.pow(2).mean()
    tar = beta * (raw_last[1:] - raw_last[:-1]).pow(2).mean()
    return ar + tar


def trigger(logs, v, n):
    return len(logs) > n and v > min(logs[:-n])


def test_the_solutions_match_awd_exactly(capsys):
    assert exercises.check_locked_dropout(locked_dropout)
    assert exercises.check_embedding_dropout(embedding_dropout)
    assert exercises.check_weight_drop(weight_drop)
    assert exercises.check_ar_tar(ar_tar)
    assert exercises.check_trigger(trigger)
    assert capsys.readouterr().out.count("matches awd exactly") == 5


def test_a_stub_is_not_written_yet_and_nothing_raises(capsys):
    for check in (exercises.check_locked_dropout, exercises.check_weight_drop, exercises.check_trigger):
        assert not check(lambda *args: None)
    assert not exercises.check_ar_tar(lambda *args: 1 / 0)
    out = capsys.readouterr().out
    assert out.count("not written yet") == 3 and "raised ZeroDivisionError" in out


def test_mistakes_are_named(capsys):
    # standard dropout where locked dropout was asked for: a fresh mask at every step
    assert not exercises.check_locked_dropout(lambda x, p: F.dropout(x, p, training=True))
    assert "the same at every step" in capsys.readouterr().out
    # no rescaling
    assert not exercises.check_locked_dropout(lambda x, p: x * x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p))
    assert "1 / (1 - p)" in capsys.readouterr().out
    # right distribution, another random call
    assert not exercises.check_locked_dropout(
        lambda x, p: x * (torch.rand(1, x.size(1), x.size(2)) > p).float() / (1 - p))
    assert "only the random draw differs" in capsys.readouterr().out
    # dropping positions instead of word types
    assert not exercises.check_embedding_dropout(lambda w, words, p: F.dropout(w[words], p, training=True))
    assert "dropped only in part" in capsys.readouterr().out
    # AR and TAR read the wrong tensors
    assert not exercises.check_ar_tar(lambda raw, dropped, a, b: ar_tar(dropped, raw, a, b))
    assert "swapped" in capsys.readouterr().out
    # the arXiv v1 typo
    assert not exercises.check_trigger(lambda logs, v, n: len(logs) > n and v > min(logs[-n:]))
    assert "arXiv v1" in capsys.readouterr().out
