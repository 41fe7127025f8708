"""Variants, the grid runner, the index and the ablation statistics."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest

from awd.config import Config
from awd.experiments import VARIANTS, grid_status, run_grid, variant_config, variant_of
from awd.report import ablation_verdicts, history_frame, welch_ci
from awd.train import Run


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_recognised_from_its_config(variant):
    assert variant_of(variant_config(variant, "book", seed=2)) == variant


def test_unknown_changes_are_described():
    assert variant_of(variant_config("full", "smoke").replace(lr=3.0)) == "lr=3.0"
    with pytest.raises(KeyError, match="variant 'dropout'"):
        variant_config("dropout")


def test_welch_interval_matches_a_hand_computation():
    a, b = [10.0, 12.0, 11.0], [8.0, 9.0, 7.0]
    d, lo, hi = welch_ci(a, b)
    se = math.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3)  # = sqrt(2/3); dof = 4
    assert d == pytest.approx(3.0)
    assert hi - d == pytest.approx(2.776445 * se, rel=1e-5)  # t_{0.975, 4}
    assert d - lo == pytest.approx(hi - d)
    assert math.isnan(welch_ci([1.0], [2.0, 3.0])[1])


def test_paired_interval_matches_a_hand_computation_and_is_tighter_for_shared_noise():
    from awd.report import paired_ci
    a, b = [10.0, 12.0, 11.0], [8.0, 9.5, 9.0]   # per seed: differences 2.0, 2.5, 2.0
    d, lo, hi = paired_ci(a, b)
    assert d == pytest.approx(6.5 / 3)
    assert hi - d == pytest.approx(4.302653 * np.std([2.0, 2.5, 2.0], ddof=1) / math.sqrt(3), rel=1e-5)  # t_{0.975, 2}
    assert hi - lo < welch_ci(a, b)[2] - welch_ci(a, b)[1], "the seeds' common spread cancels in the pairs"
    assert math.isnan(paired_ci([1.0], [2.0])[1])


def fake_run(variant, seed, test_ppl, val_ppl):
    cfg = variant_config(variant, "book", seed)
    summary = dict(status="finished", best_val_ppl=val_ppl, test_ppl=test_ppl, epochs_done=3, best_epoch=3)
    history = [dict(epoch=e, val_ppl=val_ppl + 3 - e, train_ppl=val_ppl) for e in (1, 2, 3)]
    return Run(cfg.run_id(), Path("."), cfg, history, summary)


def test_ablation_table_means_deltas_and_paper_rows():
    runs = [fake_run("full", s, t, t + 2) for s, t in enumerate([100.0, 102.0, 101.0])]
    runs += [fake_run("no weight drop", s, t, t + 2) for s, t in enumerate([110.0, 111.0, 112.0])]
    table = ablation_verdicts(runs)
    assert table.loc["full", "test ppl"] == pytest.approx(101.0)
    assert table.loc["full", "val ppl"] == pytest.approx(103.0) and table.loc["full", "test sd"] == pytest.approx(1.0)
    assert table.loc["no weight drop", "Δ test"] == pytest.approx(10.0)
    assert table.loc["no weight drop", "CI low"] < 10.0 < table.loc["no weight drop", "CI high"]
    assert table.loc["no weight drop", "paper test"] == 68.9
    assert table.loc["no weight drop", "paper Δ test"] == pytest.approx(68.9 - 58.8)
    frame = history_frame(runs)
    assert len(frame) == 18 and set(frame.variant) == {"full", "no weight drop"}


def test_grid_trains_what_is_missing_and_writes_the_index(tmp_path, data_dir):
    configs = [variant_config(v, "smoke", 0, epochs=1, progress=False) for v in ("full", "no tying")]
    assert [r["status"] for r in grid_status(configs, tmp_path)] == ["not started"] * 2
    assert len(run_grid(configs, tmp_path, jobs=2)) == 2
    assert [(r["status"], r["epochs"]) for r in grid_status(configs, tmp_path)] == [("finished", "1/1")] * 2
    assert run_grid(configs, tmp_path, jobs=2) == [], "finished runs are not trained again"
    with open(tmp_path / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["variant"] for r in rows) == ["full", "no tying"]
    assert all(r["status"] == "finished" and float(r["test_ppl"]) > 0 for r in rows)
    assert Config.from_json((tmp_path / rows[0]["run_id"] / "config.json").read_text()).threads == 1


def test_grid_leaves_a_run_that_another_process_holds_for_later(tmp_path, data_dir):
    """Two grids on one folder share the work: a run whose lock is held is trained after the others, and
    then only once its holder lets go (here: the test, as another grid would when it finishes it)."""
    import threading
    import time

    from awd.train import is_finished, run_lock
    held, free = (variant_config(v, "smoke", 0, epochs=1, progress=False) for v in ("full", "no tying"))
    (tmp_path / held.run_id()).mkdir()
    done = []
    with run_lock(tmp_path / held.run_id()):
        grid = threading.Thread(target=lambda: done.extend(run_grid([held, free], tmp_path)))
        grid.start()
        deadline = time.monotonic() + 120
        while not is_finished(tmp_path / free.run_id()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert is_finished(tmp_path / free.run_id()), "the free run was not trained while the other was held"
        time.sleep(1)
        assert grid.is_alive() and not is_finished(tmp_path / held.run_id())  # waiting for the lock
    grid.join(timeout=300)
    assert done == [free.run_id(), held.run_id()]
    assert is_finished(tmp_path / held.run_id())


def test_seeds_parameter_accepts_what_papermill_passes():
    from awd.experiments import resolve_seeds
    assert resolve_seeds(None, "book") == [0, 1, 2] and resolve_seeds(None, "lab") == [0]
    assert resolve_seeds(None, "smoke") == [0, 1]  # the tests' book build covers the several-seed paths
    assert resolve_seeds("[0, 1]", "lab") == [0, 1] == resolve_seeds([0, 1], "lab")
    assert resolve_seeds("3", "lab") == [3] == resolve_seeds(3, "lab")
    with pytest.raises(ValueError, match="list of integers"):
        resolve_seeds("[0.5]", "lab")


def test_a_build_that_must_not_train_names_every_missing_run(tmp_path, monkeypatch):
    from awd.report import ensure_runs
    monkeypatch.setenv("AWD_NO_TRAIN", "1")
    with pytest.raises(RuntimeError, match=r"(?s)2 run\(s\) of profile 'smoke'.*'no tying' seed 1.*python -m awd grid"):
        ensure_runs(["no tying"], profile="smoke", seeds=[0, 1], results_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was started


def test_curve_facts_read_overfitting_and_convergence_from_a_history():
    import pandas as pd
    from awd.report import curve_facts
    val = [300, 200, 150, 160, 170, 180]                   # best at epoch 3, then up by 30
    h = pd.DataFrame(dict(run_id="r", variant="no dropout", seed=0, epoch=range(1, 7), val_ppl=val,
                          train_ppl=[400, 200, 120, 90, 70, 60]))
    f = curve_facts(h, window=2).iloc[0]
    assert (f.best_epoch, f.best_val_ppl, f.rise_after_best) == (3, 150, 30)
    assert f.falling_per_epoch == pytest.approx((160 - 180) / 2)  # negative: rising at the end
    assert f.train_over_val == pytest.approx(60 / 180)


def test_index_leaves_out_runs_in_progress(tmp_path, data_dir):
    from awd.experiments import write_index
    cfg = variant_config("full", "smoke", 0, epochs=1, progress=False)
    run_grid([cfg], tmp_path)
    summary = tmp_path / cfg.run_id() / "summary.json"
    with open(tmp_path / "index.csv") as f:
        assert [r["run_id"] for r in csv.DictReader(f)] == [cfg.run_id()]
    summary.write_text(summary.read_text().replace('"status": "finished"', '"status": "running"'))
    write_index(tmp_path)
    with open(tmp_path / "index.csv") as f:
        assert list(csv.DictReader(f)) == [], "a run in progress is not a result yet"


def test_curves_keep_each_variants_colour_under_any_label():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd
    from awd.report import curves, variant_colors
    frame = pd.DataFrame([dict(variant=v, epoch=e, seed=0, val_ppl=100.0 + e + i)
                          for i, v in enumerate(["full", "SGD", "ASGD"]) for e in (1, 2, 3)])
    frame["optimizer"] = frame.variant.map({"full": "NT-ASGD", "SGD": "plain SGD", "ASGD": "ASGD"})
    ax = curves(frame, hue="optimizer")
    drawn = {line.get_label(): matplotlib.colors.to_rgb(line.get_color()) for line in ax.get_legend().get_lines()}
    rgb = {v: matplotlib.colors.to_rgb(c) for v, c in variant_colors().items()}
    assert drawn == {"NT-ASGD": rgb["full"], "plain SGD": rgb["SGD"], "ASGD": rgb["ASGD"]}
    # variants may share a hue (then their dashes differ): tests/test_report.py checks the looks


def test_closeup_shows_the_late_epochs_of_the_lines_near_the_best():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from awd.report import closeup
    frame = pd.DataFrame([dict(variant=v, epoch=e, seed=s, val_ppl=base + 1000 / e + s)
                          for v, base in [("full", 100.0), ("no dropout", 300.0)] for e in range(1, 11)
                          for s in (0, 2)])
    _, ax = plt.subplots()
    closeup(frame, ax)
    low = 100 + 1000 / 10 + 1  # the full model's mean over seeds at the last epoch
    # from epoch 6; up to the full model's highest mean from epoch 8, the later half of the panel, on
    assert ax.get_ylim() == pytest.approx((0.98 * low, 1.03 * (100 + 1000 / 8 + 1)))
    assert ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.texts] == ["above the top: no dropout"], "never within 1.2 x the best"
    assert min(min(line.get_xdata(), default=99) for line in ax.get_lines()) == 6, "the second half only"
    _, ax = plt.subplots()
    closeup(frame, ax, span=2.0)  # now "no dropout" comes near enough, and the panel reaches its top
    assert ax.get_ylim() == pytest.approx((0.98 * low, 1.03 * (300 + 1000 / 8 + 1)))
    assert not ax.texts
    plt.close("all")


def test_listing_joins_items_as_prose():
    from awd.report import listing
    assert listing([]) == "" and listing([18]) == "18" and listing([18, 24]) == "18 and 24"
    assert listing(["a", "b", "c"]) == "a, b and c"


def test_holm_adjusts_in_step_down_order():
    from awd.report import holm
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    assert adj["a"] == pytest.approx(0.03)           # 3 x 0.01
    assert adj["c"] == pytest.approx(0.06)           # 2 x 0.03
    assert adj["b"] == pytest.approx(0.06)           # 1 x 0.04, but never below the step before it
    assert math.isnan(adj["d"])


def test_a_verdict_gives_a_direction_only_below_the_level():
    from awd.report import verdict
    assert verdict(+3.0, 0.049) == "worse" and verdict(-3.0, 0.049) == "better"
    assert verdict(+3.0, 0.05) == verdict(-3.0, 0.2) == "within the spread"
    assert verdict(+3.0, math.nan) == "within the spread"     # no p-value: no direction


def test_verdicts_cover_every_row_and_correct_for_the_table():
    """Untrained rows stay in the table; fewer than 3 seeds get no interval; a difference that one test alone
    would call significant can be within the spread once the table's comparisons are corrected for."""
    from awd.report import TABLE_ROWS, ablation_verdicts, welch_p
    runs = [fake_run("full", s, t, t + 2) for s, t in enumerate([100.0, 102.0, 101.0])]
    runs += [fake_run("no weight drop", s, t, t + 2) for s, t in enumerate([110.0, 111.0, 112.0])]
    runs += [fake_run("no AR/TAR", s, t, t + 2) for s, t in enumerate([102.5, 104.5, 104.0])]
    runs += [fake_run("no weight decay", s, t, t + 2) for s, t in enumerate([102.4, 104.5, 103.8])]
    runs += [fake_run("fixed BPTT", s, t, t + 2) for s, t in enumerate([105.0, 104.0])]
    table = ablation_verdicts(runs)
    assert list(table.index) == TABLE_ROWS
    assert table.loc["no embedding dropout", "verdict"] == "not trained"
    assert table.loc["fixed BPTT", "verdict"].startswith("2 of 3 seeds") and math.isnan(table.loc["fixed BPTT", "CI low"])
    assert table.loc["no weight drop", "verdict"] == "worse" and table.loc["no weight drop", "test"] == "Welch"
    # three comparisons (fixed BPTT has too few seeds): the second smallest p doubles, the largest follows it
    for variant, values in (("no AR/TAR", [102.5, 104.5, 104.0]), ("no weight decay", [102.4, 104.5, 103.8])):
        assert welch_p(values, [100.0, 102.0, 101.0]) < 0.05 < table.loc[variant, "p (Holm)"]
        assert table.loc[variant, "verdict"] == "within the spread"


def test_fine_tuned_row_is_paired_with_its_own_training_stage():
    from awd.report import ablation_verdicts
    runs = [fake_run("full", s, 100.0 + s, 102.0) for s in range(3)]
    for s, (after, before) in enumerate([(95.0, 99.0), (96.5, 100.0), (94.0, 98.0)]):
        run = fake_run("full (fine-tuned)", s, after, after + 2)
        run.summary["before_finetune"] = dict(test_ppl=before)
        runs.append(run)
    row = ablation_verdicts(runs).loc["full (fine-tuned)"]
    assert row["test"] == "paired, its own training stage"
    assert row["Δ test"] == pytest.approx(-11.5 / 3) and row["CI high"] < 0 and row["verdict"] == "better"
    assert row["paper Δ test"] == pytest.approx(57.3 - 58.8)


def test_curve_sentence_reads_overfitting_convergence_and_the_raw_weights():
    import pandas as pd
    from awd.report import curve_sentence

    def hist(variant, val, raw=None, seeds=1):
        return pd.concat([pd.DataFrame(dict(run_id=f"{variant}-{s}", variant=variant, seed=s,
                                            epoch=range(1, len(val) + 1), val_ppl=val,
                                            val_ppl_raw=raw or val, train_ppl=[50.0] * len(val)))
                          for s in range(seeds)])
    h = pd.concat([hist("no dropout", [300, 200, 150, 160, 170, 180]),
                   hist("SGD", [300, 250, 220, 200, 190, 180], seeds=2),
                   hist("full", [300, 200, 185, 184.9, 184.8, 184.75, 184.7, 184.65, 184.6],
                        raw=[300, 200, 185, 190, 200, 210, 215, 220, 224])])
    assert curve_sentence(h, "no dropout").startswith(
        "Its validation perplexity is best at epoch 3 of 6 and ends 20.0% above that: it overfits;")
    assert "best at epoch 6 of 6 on average, still falling by 24.0 points per epoch" in curve_sentence(h, "SGD")
    full = curve_sentence(h, "full")
    assert "slowly, but still improving at its last epoch; its raw weights are best at epoch 3 and end 21.1% above that, so they overfit" in full
    assert full.endswith("its last training perplexity is 0.27 times its validation perplexity.")
    assert curve_sentence(h, "no tying") == ""
    # a run shorter than the five-epoch window says how many epochs it read; raw weights best at the end
    short = pd.concat([hist("ASGD", [300, 250, 200], raw=[310, 260, 210])])
    assert "still falling by 50.0 points per epoch over its last 2: it has not" in curve_sentence(short, "ASGD")
    assert "its raw weights are best at its last epoch;" in curve_sentence(short, "ASGD")


def test_the_grid_gives_every_config_its_epochs_and_threads():
    """`awd grid --epochs 3 --threads 1`: a one-job grid keeps a run's thread count, so that it resumes bit
    for bit; unset, each config keeps its profile's."""
    from argparse import Namespace

    from awd.experiments import _overrides
    assert _overrides(Namespace(epochs=3, threads=1)) == {"epochs": 3, "threads": 1}
    assert _overrides(Namespace(epochs=None, threads=None)) == {}
