"""``python -m awd bench``: the table and the verdict at tiny sizes. No timing assertions: machines are noisy."""
import argparse
import math

import pytest
import torch

from awd.__main__ import main as cli_main
from awd.bench import Case, PlainLSTMLM, make_case, run_bench, verdict
from awd.config import Config, ConfigError
from awd.model import AWDLSTM, count_parameters


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a busy 2-core machine: one thread avoids waiting at OpenMP barriers."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny() -> Case:
    cfg = Config(emb_size=8, hidden_size=16, num_layers=2, batch_size=4, bptt=12, profile="custom")
    return Case("tiny", cfg, 50)


def test_plain_model_has_the_sizes_of_awd_lstm():
    awd, plain = AWDLSTM(50, 8, 16, 3), PlainLSTMLM(50, 8, 16, 3)
    assert count_parameters(awd) == count_parameters(plain)
    assert plain.decoder.weight is plain.encoder.weight
    for a, b in zip(awd.rnns, plain.rnns):
        assert (a.module.input_size, a.module.hidden_size) == (b.input_size, b.hidden_size)
    logits, hidden = plain(torch.randint(0, 50, (5, 2)))
    assert logits.shape == (5, 2, 50) and len(hidden) == 3


def test_run_bench_reports_both_models_and_finite_ratios():
    report = run_bench([_tiny()], torch.device("cpu"), seconds=0.01, rounds=2, warmup=0.01)
    (res,) = report.results
    assert (res.awd.model, res.plain.model) == ("AWD-LSTM", "plain LSTM")
    for row in (res.awd, res.plain):
        assert len(row.train) == len(row.eval) == 2
        assert all(v > 0 and math.isfinite(v) for v in row.train + row.eval)
        assert row.saved_mb > 0 and math.isfinite(row.final_loss)
        assert row.peak_mb is None  # CUDA only
    for ratio in (res.train_ratio, res.eval_ratio, res.cpu_ratio("train"), *res.paired("train")):
        assert math.isfinite(ratio) and ratio > 0
    # Dropout masks and the dropped weight copies are held for backward as well.
    assert res.awd.saved_mb > res.plain.saved_mb
    table = report.table()
    for text in ("AWD-LSTM", "plain LSTM", "AWD / plain", "train tok/s", "eval tok/s", "4 x 12",
                 "saved for backward (MB)", f"{res.train_ratio:.3f}x"):
        assert text in table
    assert "0.90x target" in verdict(report)


def test_cli_bench_prints_header_table_and_verdict(capsys):
    assert cli_main(["bench", "--profiles", "smoke", "--device", "cpu", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and "threads" in out
    assert "smoke" in out and "AWD-LSTM" in out and "plain LSTM" in out
    assert "verdict:" in out and "0.90x target" in out


def test_profiles_keep_their_own_batch_and_unknown_ones_are_refused():
    case = make_case("paper-ptb")
    assert (case.cfg.batch_size, case.cfg.bptt, case.cfg.hidden_size, case.vocab_size) == (40, 70, 1150, 10_000)
    assert make_case("paper-wt2").vocab_size == 33_278
    with pytest.raises(ConfigError, match="profile"):
        make_case("huge")
    ns = argparse.Namespace(profiles=["smoke"], device="cpu", seconds=0.0)
    from awd.bench import main
    with pytest.raises(ConfigError, match="seconds"):
        main(ns)
