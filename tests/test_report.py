"""The figures' one mapping from variant to look: complete, unambiguous, and used by `curves`."""
import itertools
import math

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from awd.experiments import VARIANTS  # noqa: E402
from awd.report import VARIANT_LOOKS, curves, variant_colors, variant_look  # noqa: E402


def _lab(hex_color: str):
    """CIELAB (D65) of an sRGB colour: distances in it are roughly what the eye tells apart."""
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = [sum(m * c for m, c in zip(row, lin)) for row in
           ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505))]
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
         for t in (xyz[0] / 0.95047, xyz[1], xyz[2] / 1.08883)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def _delta_e(a: str, b: str) -> float:
    return sum((x - y) ** 2 for x, y in zip(_lab(a), _lab(b))) ** 0.5


def test_every_variant_has_a_look_of_its_own():
    assert set(VARIANT_LOOKS) == set(VARIANTS), "add the new variants to awd.report.VARIANT_LOOKS"
    looks = list(VARIANT_LOOKS.values())
    assert len(set(looks)) == len(looks), "two variants share colour and line style"
    assert variant_colors()["full"] == variant_look("full")["color"]
    with pytest.raises(KeyError, match="VARIANT_LOOKS"):
        variant_look("no such variant")


def test_different_hues_are_far_apart():
    """Two variants either share a hue (and then differ in dash) or have hues far apart: the colorblind
    palette's two oranges (#de8f05, #d55e00), which readers mixed up, are 26 apart, and fail this."""
    hues = {color for color, _ in VARIANT_LOOKS.values()}
    for a, b in itertools.combinations(sorted(hues), 2):
        assert _delta_e(a, b) > 30, f"{a} and {b} are too alike (CIELAB distance {_delta_e(a, b):.0f})"
    assert _delta_e("#de8f05", "#d55e00") < 30


def test_curves_draw_each_variant_in_its_look_with_the_legend_outside():
    history = pd.DataFrame([dict(variant=v, epoch=e, seed=s, val_ppl=100 + e + s)
                            for v in ("full", "2017 mask") for e in (1, 2, 3) for s in (0, 1)])
    ax = curves(history)
    lines = {line.get_label(): line for line in ax.get_lines()}
    for variant in ("full", "2017 mask"):
        look = variant_look(variant)
        assert matplotlib.colors.to_hex(lines[variant].get_color()) == look["color"]
        assert lines[variant].get_linestyle() == look["linestyle"]
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1


def _run(tmp_path, variant: str, seed: int, test_ppl: float, before=None):
    """A finished run folder with only what ablation_verdicts reads."""
    import json

    from awd.experiments import variant_config
    from awd.train import load_run
    cfg = variant_config(variant, "smoke", seed)
    path = tmp_path / cfg.run_id()
    path.mkdir()
    (path / "config.json").write_text(cfg.to_json())
    summary = dict(status="finished", best_val_ppl=test_ppl + 5, test_ppl=test_ppl)
    if before is not None:
        summary["before_finetune"] = dict(best_val_ppl=before + 5, test_ppl=before)
    (path / "summary.json").write_text(json.dumps(summary))
    return load_run(path)


def test_a_rows_sentence_names_what_it_is_compared_with(tmp_path):
    """The fine-tuned row is measured against its own training stage, every other row against the full model;
    below 3 seeds the sentence gives the difference with no interval and no verdict."""
    from awd.report import ablation_verdicts, row_sentence
    runs = [_run(tmp_path, "full", 0, 100.0), _run(tmp_path, "no dropout", 0, 110.0),
            _run(tmp_path, "full (fine-tuned)", 0, 98.0, before=101.0)]
    table = ablation_verdicts(runs)
    assert row_sentence(table, "no dropout").endswith(
        "Δ test +10.0 against the full model; no interval or verdict below 3 seeds.")
    assert "Δ test -3.0 against its own training stage;" in row_sentence(table, "full (fine-tuned)")
    assert row_sentence(table, "2017 mask") == "*2017 mask*: not trained yet."


def test_a_rows_sentence_says_whether_the_papers_direction_holds(tmp_path):
    """Beside the paper's row: the same way, the other way, or no direction to compare (within the spread, or
    below 3 seeds); a row the paper's table lacks says nothing about the paper."""
    from awd.report import ablation_verdicts, row_sentence
    tests = {"full": (100.0, 101.0, 102.0), "no weight drop": (120.0, 121.0, 122.5),
             "fixed BPTT": (90.0, 91.0, 89.5), "no weight decay": (100.5, 99.0, 103.0),
             "no tying": (130.0, 131.0, 129.0), "no AR/TAR": (105.0,)}
    runs = [_run(tmp_path, v, seed, t) for v, ts in tests.items() for seed, t in enumerate(ts)]
    table = ablation_verdicts(runs)
    assert table.loc["no weight drop", "verdict"] == "worse"  # the paper: 68.9 - 58.8
    assert row_sentence(table, "no weight drop").endswith(
        "The paper's row: Δ test +10.1; ours points the same way.")
    assert table.loc["fixed BPTT", "verdict"] == "better"     # the paper: +0.1, worse
    assert row_sentence(table, "fixed BPTT").endswith("+0.1; **ours points the other way**.")
    assert table.loc["no weight decay", "verdict"] == "within the spread"
    assert row_sentence(table, "no weight decay").endswith(
        "+2.2; ours is within the seed-to-seed spread at this scale, so it gives no direction to compare.")
    assert row_sentence(table, "no AR/TAR").endswith("below 3 seeds. The paper's row: Δ test +1.5.")
    assert "paper" not in row_sentence(table, "no tying")  # not a row of the paper's Table 3
    from awd.report import verdict_clause
    assert verdict_clause(table, "no weight decay").startswith("the 95% interval of the difference (Welch) is [")
    assert verdict_clause(table, "no weight decay").endswith(": within the seed-to-seed spread, so the "
                                                             "difference gets no direction")
    assert verdict_clause(table, "no weight drop").endswith(": worse, beyond the seed-to-seed spread")
    assert verdict_clause(table, "no AR/TAR") == "with 1 seed it has no interval and no verdict (3 needed)"
    assert verdict_clause(table, "2017 mask") == "it is not trained yet"
    assert row_sentence(table, "no embedding dropout") == (
        "*no embedding dropout*: not trained yet. The paper's row: Δ test +3.9.")


def test_mc_curves_draw_each_evaluated_model_in_its_variants_look(tmp_path):
    """One line per model of each run's evals.json: a fine-tuned run's training stage as the full model,
    its fine-tuned weights as "full (fine-tuned)", any other run as its variant; a run without evals draws
    nothing."""
    import json

    from awd.report import mc_curves
    ft = _run(tmp_path, "full (fine-tuned)", 0, 98.0, before=101.0)
    std = _run(tmp_path, "standard dropout", 0, 103.0)
    bare = _run(tmp_path, "no dropout", 0, 110.0)
    mc = dict(samples=[1, 2, 4], val_ppl_by_samples=[105.0, 104.0, 103.5], val_ppl_deterministic=104.5)
    (ft.path / "evals.json").write_text(json.dumps({"best.pt": {"mc_dropout": mc},
                                                    "best-before-finetune.pt": {"mc_dropout": mc}}))
    (std.path / "evals.json").write_text(json.dumps({"best.pt": {"mc_dropout": mc}}))
    ax = mc_curves([ft, std, bare])
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"fine-tuned, seed 0", "full, seed 0", "standard dropout, seed 0"}
    for label, variant in (("fine-tuned, seed 0", "full (fine-tuned)"), ("full, seed 0", "full"),
                           ("standard dropout, seed 0", "standard dropout")):
        assert matplotlib.colors.to_hex(lines[label].get_color()) == variant_look(variant)["color"]
        assert lines[label].get_linestyle() == variant_look(variant)["linestyle"]
    assert list(lines["full, seed 0"].get_xdata()) == [1, 2, 4] and ax.get_xscale() == "log"


def test_mc_curves_draw_the_mean_over_seeds_and_one_line_where_fine_tuning_kept_the_weights(tmp_path):
    """Several evaluated seeds of a model give one line, their mean; a fine-tuned model whose weights are its
    training stage's for every seed (the same sha256) is that line, named as both."""
    import json

    from awd.report import mc_curves
    runs = [_run(tmp_path, "full (fine-tuned)", s, 98.0, before=101.0) for s in (0, 1)]
    for run, (y, sha) in zip(runs, ((100.0, "a"), (104.0, "b"))):
        mc = dict(samples=[1, 10], val_ppl_by_samples=[y, y - 2], val_ppl_deterministic=y)
        (run.path / "evals.json").write_text(json.dumps({
            "best.pt": {"mc_dropout": mc, "weights_sha256": sha},
            "best-before-finetune.pt": {"mc_dropout": mc, "weights_sha256": sha}}))
    lines = {ln.get_label(): ln for ln in mc_curves(runs).get_lines() if not ln.get_label().startswith("_")}
    assert list(lines) == ["full = fine-tuned, mean of 2 seeds"]
    assert list(lines["full = fine-tuned, mean of 2 seeds"].get_ydata()) == [102.0, 100.0]
    # seed 1's fine-tuning beat its training stage: other weights, so two lines
    evals = json.loads((runs[1].path / "evals.json").read_text())
    evals["best.pt"]["weights_sha256"] = "c"
    (runs[1].path / "evals.json").write_text(json.dumps(evals))
    lines = {ln.get_label() for ln in mc_curves(runs).get_lines() if not ln.get_label().startswith("_")}
    assert lines == {"full, mean of 2 seeds", "fine-tuned, mean of 2 seeds"}


def test_the_pointer_sentence_gives_relative_changes_beside_the_papers():
    """Each model's means over seeds, the settings chosen for each seed by name, the paper's and Grave et
    al.'s changes; a fine-tuned model with its training stage's weights (the same sha256) is not repeated."""
    from awd.report import pointer_sentence
    scores = pd.DataFrame([dict(model=m, seed=s, weights=w, sha256=f"sha{s}", val=200.0, test=190.0,
                                window=500, theta=1.0 + s, **{"val + pointer": 150.0, "test + pointer": 152.0,
                                                              "lambda": 0.15})
                           for s in (0, 1) for m, w in (("full", "best-before-finetune.pt"),
                                                        ("fine-tuned", "best.pt"))])
    text = pointer_sentence(scores, "ptb")
    assert "the full model (2 seeds, means) from 200.0 to 150.0 on validation (-25%)" in text
    assert "(-20%)" in text and "fine-tuned model (" not in text
    assert "60.0 → 53.9 (-10%)" in text and "full, seed 1: W = 500, θ = 2, λ = 0.15" in text
    assert "reason for the larger gain here" in text  # -20% on test against the paper's -8%
    small = pointer_sentence(scores.assign(**{"test + pointer": 185.0}), "ptb")  # -3%: no larger gain to explain
    assert "not the same quantity. Chosen" in small and "reason" not in small
    scores.loc[1, "sha256"] = "tuned further"
    assert "the fine-tuned model (2 seeds, means)" in pointer_sentence(scores, "ptb")
    assert "Grave" not in pointer_sentence(scores, "my-corpus")
    assert pointer_sentence(scores.iloc[:0], "ptb") == ""


def test_the_streams_note_names_both_baselines():
    from awd.report import streams_note
    scores = pd.DataFrame([dict(model="full", seed=0, val=180.0, **{"val (dropout off)": 183.0})])
    text = streams_note(scores)
    assert "batch 1" in text and "score 180.00 one way and 183.00 the other" in text and "over 1 set of" in text
    assert "below 0.1" not in text
    close = streams_note(scores.assign(val=182.96))  # one decimal would print the same number twice
    assert "182.96 one way and 183.00 the other" in close and "a difference below 0.1 here" in close
    twins = pd.DataFrame([dict(model=m, seed=0, weights=w, sha256="same", val=180.0,
                               **{"val (dropout off)": 183.0})
                          for m, w in (("full", "best-before-finetune.pt"), ("fine-tuned", "best.pt"))])
    assert "over 1 set of weights" in streams_note(twins)
    assert streams_note(scores.drop(columns="val")) == ""


def test_the_mc_sentence_gives_each_models_change_and_drops_a_fine_tuned_copy():
    """A fine-tuned model whose weights are its training stage's (the same sha256) is not repeated; one whose
    numbers merely agree is."""
    from awd.report import mc_sentence
    row = {"val (dropout off)": 200.0, "val MC": 190.0, "test (dropout off)": 180.0, "test MC": 171.0, "K": 19}
    scores = pd.DataFrame([
        dict(model="fine-tuned", seed=0, weights="best.pt", sha256="a", **row),
        dict(model="full", seed=0, weights="best-before-finetune.pt", sha256="a", **row),
        dict(model="standard dropout", seed=0, weights="best.pt", sha256="s", **{**row, "val MC": 180.0})])
    text = mc_sentence(scores)
    assert "fine-tuned" not in text and "the full model (1 seed, K = 19) from 200.0 to 190.0" in text
    assert "(-5.0%)" in text and "(-10.0%)" in text and "75.2 → 73.4" in text
    scores.loc[0, "sha256"] = "b"
    assert "the fine-tuned model (1 seed, K = 19) from 200.0 to 190.0" in mc_sentence(scores)
    two = pd.concat([scores, scores.iloc[[1]].assign(seed=1, K=21)])
    assert "the full model (2 seeds, K = 19, 21) from 200.0 to 190.0" in mc_sentence(two)
    assert mc_sentence(scores.iloc[:0]) == ""


def test_fine_tuning_kept_the_weights_only_where_every_seeds_bytes_agree():
    from awd.evals import finetuning_kept_weights
    rows = [dict(seed=s, weights=w, model=m, sha256=f"sha{s}")
            for s in (0, 1) for w, m in (("best.pt", "fine-tuned"), ("best-before-finetune.pt", "full"))]
    frame = pd.DataFrame(rows)
    assert finetuning_kept_weights(frame)
    assert not finetuning_kept_weights(frame.iloc[:3])  # seed 1's training stage was not evaluated
    frame.loc[2, "sha256"] = "other"
    assert not finetuning_kept_weights(frame)
    unknown = pd.DataFrame(rows).assign(sha256=None)  # evaluated before the sha256 was recorded
    assert not finetuning_kept_weights(unknown)
    plain = pd.DataFrame([dict(seed=0, weights="best.pt", model="full", sha256="x")])
    assert not finetuning_kept_weights(plain)
    from awd.evals import kept_seeds
    assert kept_seeds(frame) == [0] and kept_seeds(pd.DataFrame(rows)) == [0, 1] and kept_seeds(unknown) == []


def test_the_verdict_view_joins_the_interval_and_marks_what_a_row_lacks(tmp_path):
    from awd.report import ablation_verdicts, verdict_view
    runs = [_run(tmp_path, "full", s, 100.0 + s) for s in range(3)]
    runs += [_run(tmp_path, "no weight drop", s, 110.0 + 2 * s) for s in range(3)]
    runs += [_run(tmp_path, "no AR/TAR", 0, 120.0)]
    view = verdict_view(ablation_verdicts(runs), ["full", "no weight drop", "no AR/TAR"])
    cols = list(view.columns)
    assert "CI low" not in cols and cols[cols.index("Δ test") + 1] == "95% CI" and "interval" in cols
    assert view.loc["no weight drop", "95% CI"].startswith("[+") and view.loc["no AR/TAR", "95% CI"] == "—"
    assert view.loc["no weight drop", "interval"] == "Welch" and view.loc["no AR/TAR", "interval"] == "—"
    few = verdict_view(ablation_verdicts(runs), ["full", "no AR/TAR"])  # no row with an interval
    assert "interval" not in few and "95% CI" not in few and few.loc["no AR/TAR", "Δ test"] != "—"
    from awd.report import VERDICTS
    assert view.loc["full", "Δ test"] == "—" and view.loc["no weight drop", "verdict"] in VERDICTS
    assert "paper Δ test" in cols and "untied, same sizes" not in view.index and "Δ against" not in cols
    runs += [_run(tmp_path, "full (fine-tuned)", 0, 99.0, before=100.0)]
    tuned = verdict_view(ablation_verdicts(runs), ["full (fine-tuned)", "full", "no weight drop"])
    assert list(tuned["Δ against"]) == ["its training stage", "—", "full"]
    p = ablation_verdicts(runs).loc["no weight drop", "p (Holm)"]
    assert view.loc["no weight drop", "p (Holm)"] == f"{p:.2g}" and float(view.loc["no weight drop", "p (Holm)"]) > 0


def test_checked_claims_stop_the_build_where_the_runs_no_longer_show_them():
    from awd.report import check_claims
    claims = {"tying helps": True, "n = 5 fires later": False}
    assert check_claims(claims, enforce=False) == ["n = 5 fires later"]
    assert check_claims({"tying helps": True}) == []
    with pytest.raises(AssertionError, match="- n = 5 fires later"):
        check_claims(claims)


def _finetuned_history(tune_vals, train_vals=(200.0, 196.0, 194.0, 193.0, 192.0, 191.0, 190.5, 190.0)):
    """One seed of a fine-tuned row: a training stage that averages from its fourth epoch, then fine-tuning."""
    train = [dict(epoch=e, phase="train", val_ppl=v, averaging=e >= 4) for e, v in enumerate(train_vals, 1)]
    tune = [dict(epoch=len(train_vals) + e, phase="finetune", val_ppl=v, averaging=True)
            for e, v in enumerate(tune_vals, 1)]
    return pd.DataFrame(train + tune).assign(variant="full (fine-tuned)", seed=0)


def test_finetune_facts_and_sentence_read_where_the_fresh_average_starts_and_ends():
    from awd.report import finetune_facts, finetune_sentence
    never = _finetuned_history([194.0, 192.0, 191.0, 191.2])
    f = finetune_facts(never).iloc[0]
    assert (f.train_best, f.train_averaged, f.tune_first, f.tune_best, f.tune_epochs) == (190.0, 5, 194.0, 191.0, 4)
    assert f.train_falling == pytest.approx((194.0 - 190.0) / 5)  # over the last five epochs, as curve_facts
    s = finetune_sentence(never)
    assert "the new average is 4.0 points above" in s and "held 5 epochs" in s
    assert "its best epoch stays 1.0 points above" in s and "never catches up" in s
    beats = finetune_sentence(_finetuned_history([191.0, 189.0, 188.5]))
    assert "ends 1.5 points below it, after 3 epochs" in beats and "never" not in beats
    two = pd.concat([never, _finetuned_history([191.0, 189.0]).assign(seed=1)])
    assert "1.0 points above it in seed 0 and 1.0 points below it in seed 1" in finetune_sentence(two)
    assert finetune_sentence(never.assign(phase="train")) == ""  # no fine-tuning stage: nothing to say


def test_a_gpu_run_is_read_from_results_device_and_set_beside_the_authors_speed(tmp_path):
    import json

    from awd.config import Config
    from awd.report import device_runs, speed_frame
    assert device_runs(tmp_path) == []  # none committed: the appendix says so
    cfg = Config.from_profile("paper-ptb", device="cuda")
    run = tmp_path / "device" / cfg.run_id()
    run.mkdir(parents=True)
    (run / "config.json").write_text(cfg.to_json())
    (run / "summary.json").write_text(json.dumps(dict(status="interrupted", epochs_done=3, device_name="GPU X",
                                                      train_tokens_per_s=50000.0)))
    (run / "history.csv").write_text("epoch,seconds,val_ppl\n1,30.0,300\n2,20.0,200\n3,22.0,150\n")
    (found,) = device_runs(tmp_path)
    frame = speed_frame([found])
    ours = frame.loc["this book"]
    assert (ours["device"], ours["batch"], ours["epochs"], ours["s / epoch"]) == ("GPU X", 40, 3, 22.0)
    assert list(frame.loc["the authors (reference code's README)", "s / epoch"]) == [65.0, 45.0]


def test_replayed_starts_fire_where_the_trigger_would_on_each_seeds_raw_curve():
    from awd.report import replayed_starts
    raw = {0: [10, 9, 8, 7, 8.5, 9, 9],    # check 6 (9) is worse than the best before the last 2 (8): fires
           1: [10, 9, 8, 7, 6, 5, 4]}      # never worse: never fires
    rows = [dict(variant="full", seed=s, epoch=e + 1, phase="train", val_ppl_raw=v)
            for s, vals in raw.items() for e, v in enumerate(vals)]
    rows.append(dict(variant="full", seed=0, epoch=8, phase="finetune", val_ppl_raw=100.0))  # not the trigger's
    rows.append(dict(variant="SGD", seed=0, epoch=1, phase="train", val_ppl_raw=1.0))
    starts = replayed_starts(pd.DataFrame(rows), "full", 2)
    assert list(starts.index) == [0, 1]
    assert starts[0] == 7 and math.isnan(starts[1])      # averaging from the epoch after the check that fires
    assert math.isnan(replayed_starts(pd.DataFrame(rows), "full", 5)[0])  # a longer interval: not within 7
