"""From runs to what the book shows: tidy tables, the ablation table with intervals and verdicts, and plots.

The chapters call these and nothing else, so every figure and number on a page comes from stored runs:

    runs, missing = page_runs(["full", "no tying"], profile="book")  # every row's committed runs
    curves(history_frame(runs))                                      # mean and band over seeds
    table = ablation_verdicts(runs)                                  # means, Δ, 95% CI, Holm verdict
    verdict_view(table, ["full", "no tying"])                        # as a page shows its rows
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .experiments import PAPER_ABLATIONS, resolve_seeds, stored_runs, variant_config, variant_of
from .optim import first_trigger
from .train import Run, is_finished, train

# Set by tools/build_book.py: the book's build shows the committed runs and trains nothing, at any profile.
NO_TRAIN_ENV = "AWD_NO_TRAIN"

PALETTE = "colorblind"

# One look per variant, the same in every figure of the book: a colour and a line style. The seven variants of the
# book's grid get seven hues far apart; "standard dropout" is dashed, so that the full model's line shows where the
# two coincide. Each further row shares the hue of the variant it is a version of ("untied, same sizes" is a "no
# tying", "NT-ASGD n=5" a "full") with a dash of its own, or takes a hue of its own. tests/test_report.py checks
# that every variant has a look, that no two looks are the same and that different hues are far apart.
VARIANT_LOOKS = {
    "full": ("#0173b2", "-"),
    "no tying": ("#de8f05", "-"),
    "no dropout": ("#029e73", "-"),
    "standard dropout": ("#cc78bc", "--"),
    "no weight drop": ("#7b3294", "-."),
    "SGD": ("#949494", "-"),
    "ASGD": ("#000000", "-"),
    "full (fine-tuned)": ("#0173b2", "--"),
    "fixed BPTT": ("#bcbd22", "-."),
    "no embedding dropout": ("#029e73", "--"),
    "no weight decay": ("#8c564b", "-."),
    "no AR/TAR": ("#e7298a", ":"),
    "full-sized embedding": ("#de8f05", ":"),
    "untied, same sizes": ("#de8f05", "--"),
    "2017 mask": ("#cc78bc", ":"),
    "NT-ASGD n=5": ("#0173b2", ":"),
}
# a hue with no variant behind it (the curves of one run's phases, say) takes these in turn
OTHER_COLORS = ["#0173b2", "#de8f05", "#029e73", "#cc78bc", "#949494", "#000000", "#bcbd22", "#8c564b"]
DASHES = ["-", "--", ":", "-."]


def variant_look(variant: str) -> dict:
    """Matplotlib line keywords for a variant: its colour and line style; the full model drawn widest, on top."""
    if variant not in VARIANT_LOOKS:
        raise KeyError(f"variant {variant!r} has no colour: add it to awd.report.VARIANT_LOOKS")
    color, linestyle = VARIANT_LOOKS[variant]
    full = variant == "full"
    return dict(color=color, linestyle=linestyle, linewidth=2.2 if full else 1.6, zorder=3 if full else 2)


def variant_colors() -> dict:
    """The colour of every variant (`VARIANT_LOOKS`), for marks that are not lines of `curves`."""
    return {v: color for v, (color, _) in VARIANT_LOOKS.items()}


def legend_outside(ax, below: bool = False, **kwargs):
    """The legend outside the panel, where it covers no data: on its right, or ``below`` it (for a panel with
    another one on its right)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        where = (dict(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2) if below else
                 dict(loc="upper left", bbox_to_anchor=(1.02, 1)))
        ax.legend(handles, labels, frameon=False, **{**where, **kwargs})
    return ax


# Profiles whose runs take seconds or minutes: a chapter trains a missing one without being asked.
TRAINS_ON_ITS_OWN = ("smoke", "lab")


def ensure_runs(variants, profile: str = "book", seeds=None, dataset: str = "ptb", results_dir=None,
                retrain: bool = False, train_missing: bool = False, **overrides) -> list[Run]:
    """The runs of each variant and seed, read from ``results_dir`` (default: `awd.book.results_dir`, the
    committed runs).

    A missing run is trained only at a profile of `TRAINS_ON_ITS_OWN`, or when asked (``train_missing``, or
    ``retrain``, which trains every run anew). Otherwise the chapter stops with the list of missing runs, the
    command that trains them and the time it takes: a reader never starts hours of training unawares. With
    ``AWD_NO_TRAIN`` set (the book's build), nothing trains at any profile.
    """
    from .book import results_dir as committed
    results_dir = Path(results_dir) if results_dir else committed()
    configs = [variant_config(variant, profile, seed, dataset=dataset, **overrides)
               for variant in variants for seed in resolve_seeds(seeds, profile)]
    missing = [cfg for cfg in configs if retrain or not is_finished(results_dir / cfg.run_id())]
    allowed = (retrain or train_missing or profile in TRAINS_ON_ITS_OWN) and not os.environ.get(NO_TRAIN_ENV)
    if missing and not allowed:
        raise MissingRuns(missing, results_dir, overrides)
    return [train(cfg, results_dir=results_dir, retrain=retrain) for cfg in configs]


class MissingRuns(RuntimeError):
    """Runs a chapter needs that are not in the results folder, with the one command that trains them."""

    def __init__(self, missing, results_dir: Path, overrides: dict):
        self.missing = missing
        profile, dataset = missing[0].profile, missing[0].dataset
        listed = "\n".join(f"  {variant_of(c)!r} seed {c.seed}: {results_dir / c.run_id()}" for c in missing)
        todo = list(dict.fromkeys(variant_of(c) for c in missing))
        cmd = (f"python -m awd grid --profile {profile}" + (f" --dataset {dataset}" if dataset != "ptb" else "")
               + " --variants " + " ".join(f'"{v}"' if " " in v else v for v in todo)
               + " --seeds " + " ".join(str(s) for s in sorted({c.seed for c in missing}))
               + (f" --epochs {overrides['epochs']}" if overrides.get("epochs") else "")
               + f" --results-dir {results_dir}")
        minutes = _minutes_per_run(results_dir, profile, dataset)
        cost = (f"about {minutes:.0f} minutes of one core per run (the mean of this profile's stored runs), "
                f"{len(missing)} run(s), two side by side" if minutes else
                "no stored run of this profile to time it by")
        why = (f"{NO_TRAIN_ENV} is set (the book's build trains nothing)" if os.environ.get(NO_TRAIN_ENV) else
               f"profile {profile!r} trains only when asked")
        super().__init__(
            f"{len(missing)} run(s) of profile {profile!r} are not finished in {results_dir}, and {why}:\n"
            f"{listed}\nTrain them ({cost}) with:\n  {cmd}\n"
            "or set the chapter's parameter train_missing = True (papermill: -p train_missing True; "
            "the book: tools/build_book.py --train).")


def _minutes_per_run(results_dir: Path, profile: str, dataset: str) -> float | None:
    """Mean wall time of the finished runs of a profile under ``results_dir``, in minutes (None if there are none)."""
    import json
    times = []
    for path in Path(results_dir).glob("*/summary.json"):
        s = json.loads(path.read_text())
        cfg = json.loads(path.with_name("config.json").read_text()) if path.with_name("config.json").exists() else {}
        if s.get("status") == "finished" and cfg.get("profile") == profile and cfg.get("dataset") == dataset:
            times.append(s.get("wall_time_s") or 0)
    return sum(times) / len(times) / 60 if times else None


QUICK_PROFILES = TRAINS_ON_ITS_OWN  # seconds and minutes a run: a page may train these itself


def page_runs(variants, profile: str = "book", seeds=None, dataset: str = "ptb", results_dir=None,
              retrain: bool = False, train_missing: bool = False, **overrides) -> tuple[list[Run], list]:
    """What a page of the ablation table shows: the stored runs of every row of ``TABLE_ROWS`` (so that its
    verdicts are corrected over the whole table) and the configs of its own ``variants`` still missing.

    It trains the page's missing runs only at a quick profile or when asked (``retrain``, ``train_missing``),
    and never where ``AWD_NO_TRAIN`` is set; the book's own runs (about an hour each) come from ``make grid``.
    ``results_dir`` None: the committed runs (`awd.book.results_dir`)."""
    from .book import results_dir as committed
    from .experiments import stored_runs
    results_dir = Path(results_dir) if results_dir else committed()
    if (profile in QUICK_PROFILES or retrain or train_missing) and not os.environ.get(NO_TRAIN_ENV):
        ensure_runs(variants, profile, seeds, dataset, results_dir, retrain=retrain, train_missing=True,
                    **overrides)
    runs, missing = stored_runs(dict.fromkeys([*TABLE_ROWS, *variants]), profile, seeds, dataset, results_dir,
                                **overrides)
    return runs, [cfg for cfg in missing if variant_of(cfg) in variants]


def history_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run and epoch, with the run's variant, seed and profile."""
    frames = []
    for run in runs:
        df = pd.DataFrame(run.history)
        df["variant"], df["seed"], df["run_id"] = variant_of(run.config), run.config.seed, run.id
        df["profile"], df["dataset"] = run.config.profile, run.config.dataset
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def summary_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: what it is and its final numbers."""
    rows = []
    for run in runs:
        s = run.summary
        rows.append(dict(variant=variant_of(run.config), seed=run.config.seed, run_id=run.id,
                         profile=run.config.profile, dataset=run.config.dataset, status=s.get("status"),
                         epochs=s.get("epochs_done"), best_epoch=s.get("best_epoch"),
                         best_val_ppl=s.get("best_val_ppl"), test_ppl=s.get("test_ppl"),
                         params=s.get("params"), averaging_start_epoch=s.get("averaging_start_epoch"),
                         wall_time_s=s.get("wall_time_s"), device=s.get("device_name")))
    return pd.DataFrame(rows)


def welch_ci(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its Welch t confidence interval; NaN where a group has fewer than 2 values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    from scipy import stats
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    return diff, diff - half, diff + half


def paired_ci(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the per-seed differences ``a[i] - b[i]`` and their t confidence interval; NaN with fewer than 2 pairs.
    The interval for runs that share their noise: a seed's SGD, ASGD and NT-ASGD runs take the same steps, so the
    seed-to-seed spread that Welch's interval counts cancels in each difference."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    from scipy import stats
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t test of equal means; NaN where a group has fewer than 2 values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    from scipy import stats
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_p(a, b) -> float:
    """Two-sided p-value of the paired t test on the per-seed differences ``a[i] - b[i]``."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return math.nan
    if np.all(d == d[0]):
        return 0.0 if d[0] != 0 else 1.0
    from scipy import stats
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjustment: the family-wise error rate over all the comparisons stays at the level, with
    no assumption about how they depend on each other (they share the baseline). NaN p-values are left out."""
    ranked = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
    m, running, out = len(ranked), 0.0, {k: math.nan for k in pvalues}
    for i, (p, k) in enumerate(ranked):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def shares_trajectory(a: Run, b: Run) -> bool:
    """Whether two runs took the same first steps bit for bit (the same seed and data, and a machine that repeats
    the other's arithmetic): then their difference cancels the seed's noise and is tested paired."""
    first = [(r.history[0].get("train_loss"), r.history[0].get("val_loss_raw")) for r in (a, b) if r.history]
    return a.config.seed == b.config.seed and len(first) == 2 and None not in first[0] and first[0] == first[1]


# The paper's ablation table in its order, then the rows this book adds (all against our full model).
TABLE_ROWS = ["full (fine-tuned)", "full", "SGD", "fixed BPTT", "no embedding dropout", "no weight decay",
              "no AR/TAR", "full-sized embedding", "no weight drop",
              "no tying", "untied, same sizes", "no dropout", "standard dropout", "2017 mask", "ASGD", "NT-ASGD n=5"]
MIN_SEEDS = 3  # a row with fewer finished seeds shows its means but no interval and no verdict
LEVEL = 0.95


def ablation_verdicts(runs: list[Run], rows=TABLE_ROWS, baseline: str = "full") -> pd.DataFrame:
    """Every row of the table, trained or not: means and sds over the finished seeds, the test difference to the
    baseline with its 95% interval, and a verdict corrected for the whole table by Holm's method.

    - A row whose runs share the baseline's trajectory (same first steps, see ``shares_trajectory``) is tested
      paired by seed; otherwise with Welch's unequal-variance t test.
    - "full (fine-tuned)" is compared with its own training stage (the same run before fine-tuning, paired): that
      is the paper's "- fine-tuning" row, without the noise of a second run.
    - The verdict: "worse" or "better" where the Holm-adjusted p-value is below 1 - LEVEL, otherwise "within the
      spread" (no direction); rows with fewer than MIN_SEEDS finished seeds get none, untrained rows say so.
    """
    finished = [r for r in runs if r.summary.get("status") == "finished"]
    by_variant = {}
    for r in finished:
        by_variant.setdefault(variant_of(r.config), []).append(r)
    base = {r.config.seed: r for r in by_variant.get(baseline, [])}
    dataset = finished[0].config.dataset if finished else "ptb"
    paper = PAPER_ABLATIONS.get(dataset, {})
    table, pvalues = {}, {}
    for variant in rows:
        group = sorted(by_variant.get(variant, []), key=lambda r: r.config.seed)
        val = [r.summary["best_val_ppl"] for r in group]
        test = [r.summary["test_ppl"] for r in group]
        row = {"seeds": len(group), "val ppl": np.mean(val) if val else np.nan,
               "val sd": np.std(val, ddof=1) if len(val) > 1 else np.nan,
               "test ppl": np.mean(test) if test else np.nan,
               "test sd": np.std(test, ddof=1) if len(test) > 1 else np.nan}
        compare = None
        if variant == "full (fine-tuned)":
            before = [r.summary["before_finetune"]["test_ppl"] for r in group]
            compare = ("paired, its own training stage", test, before)
        elif variant != baseline:
            pairs = [(r, base[r.config.seed]) for r in group if r.config.seed in base]
            if group and len(pairs) == len(group) and all(shares_trajectory(a, b) for a, b in pairs):
                compare = ("paired by seed", test, [b.summary["test_ppl"] for _, b in pairs])
            else:
                compare = ("Welch", test, [r.summary["test_ppl"] for r in base.values()])
        if compare and group:
            kind, a, b = compare
            paired = kind.startswith("paired")
            d, lo, hi = (paired_ci if paired else welch_ci)(a, b, LEVEL)
            row.update({"Δ test": d, "test": kind})
            if len(group) >= MIN_SEEDS:
                row.update({"CI low": lo, "CI high": hi})
                pvalues[variant] = (paired_p if paired else welch_p)(a, b)
        if variant in paper:
            row.update({"paper val": paper[variant][0], "paper test": paper[variant][1]})
            if variant != baseline:  # for the fine-tuned row too: fine-tuned minus not, as ours
                row["paper Δ test"] = paper[variant][1] - paper["full"][1]
        table[variant] = row
    adjusted = holm(pvalues)
    for variant, row in table.items():
        if variant == baseline:
            row["verdict"] = "baseline" if row["seeds"] else "not trained"
        elif not row["seeds"]:
            row["verdict"] = "not trained"
        elif variant not in pvalues:
            row["verdict"] = f"{row['seeds']} of {MIN_SEEDS} seeds: no verdict yet"
        else:
            row["p (Holm)"] = adjusted[variant]
            row["verdict"] = verdict(row["Δ test"], adjusted[variant])
    # every column always, so that a page reads "CI low" of a table with no interval yet (NaN) without a KeyError
    return pd.DataFrame.from_dict(table, orient="index").reindex(columns=VERDICT_COLUMNS).rename_axis("variant")


# the verdicts of a row with an interval; any other row's verdict says why it has none
VERDICTS = ("worse", "better", "within the spread")
VERDICT_COLUMNS = ["seeds", "val ppl", "val sd", "test ppl", "test sd", "Δ test", "test", "CI low", "CI high",
                   "p (Holm)", "verdict", "paper val", "paper test", "paper Δ test"]


def verdict(d: float, p_holm: float) -> str:
    """A comparison's verdict from its difference and its Holm-adjusted p-value: a direction only where the
    adjusted p-value is below 1 - LEVEL, otherwise "within the spread"."""
    alpha = round(1 - LEVEL, 9)  # 0.05, not 1 - 0.95 = 0.05000000000000004, which would admit p = 0.05
    return "within the spread" if not p_holm < alpha else "worse" if d > 0 else "better"


def verdict_view(table: pd.DataFrame, rows=None) -> pd.DataFrame:
    """Rows of ``ablation_verdicts`` as the pages show them: the interval as one "[lo, hi]" column beside the
    test that gave it, numbers to two decimals, and "—" where a row has no value (below 3 seeds, the
    baseline, no paper row), p-values to two significant digits. Columns that no shown row fills are left out;
    where the fine-tuned row is shown, a "Δ against" column says that its Δ is taken against its own training
    stage."""
    shown = (table if rows is None else table.loc[list(rows)]).copy()
    has = np.isfinite(shown["CI low"].astype(float)) if "CI low" in shown else pd.Series(False, shown.index)
    if "test" in shown:  # the test that gave an interval; none named where there is none
        shown["test"] = shown["test"].where(has)
    shown = shown.dropna(axis=1, how="all")
    tuned = "full (fine-tuned)"
    if "Δ test" in shown and tuned in shown.index and pd.notna(shown.loc[tuned, "Δ test"]):
        # its Δ is paired with its own training stage, not the full row shown beside it
        shown.insert(shown.columns.get_loc("Δ test"), "Δ against",
                     ["its training stage" if v == tuned else "full" if pd.notna(d) else np.nan
                      for v, d in zip(shown.index, shown["Δ test"])])
    if "CI low" in shown:
        ci = [f"[{lo:+.1f}, {hi:+.1f}]" if ok else np.nan
              for lo, hi, ok in zip(shown.pop("CI low"), shown.pop("CI high"), has)]
        shown.insert(shown.columns.get_loc("Δ test") + 1, "95% CI", ci)
    if "p (Holm)" in shown:  # two significant digits: 0.00022 must not print as 0.0
        shown["p (Holm)"] = [f"{p:.2g}" if pd.notna(p) else np.nan for p in shown["p (Holm)"]]
    shown = shown.rename(columns={"test": "interval"}).round(2)
    return shown.astype(object).where(shown.notna(), "—")


def row_sentence(table: pd.DataFrame, variant: str) -> str:
    """One row of ``ablation_verdicts`` as a sentence: the difference, its interval and test, the verdict."""
    row = table.loc[variant]
    if row["verdict"] == "not trained":
        return f"*{variant}*: not trained yet." + paper_clause(row)
    base = (f"*{variant}* ({int(row['seeds'])} seed{'s' if row['seeds'] != 1 else ''}): test perplexity "
            f"{row['test ppl']:.1f}")
    if "Δ test" not in row or pd.isna(row.get("Δ test")):
        return base + "."
    against = ("its own training stage" if str(row.get("test", "")).endswith("its own training stage")
               else "the full model")
    if pd.isna(row.get("CI low")):
        return (base + f", Δ test {row['Δ test']:+.1f} against {against}; no interval or verdict below 3 seeds."
                + paper_clause(row))
    return (base + f", Δ test {row['Δ test']:+.1f} [{row['CI low']:+.1f}, {row['CI high']:+.1f}] (95%, "
            f"{row['test']}); Holm-adjusted p = {row['p (Holm)']:.2g} over the table: **{row['verdict']}**."
            + paper_clause(row))


def verdict_clause(table: pd.DataFrame, variant: str) -> str:
    """The table's verdict on one row (``ablation_verdicts``) as a clause for a chapter's prose, so that a
    chapter never judges a difference by an uncorrected interval while the book's table corrects it."""
    row = table.loc[variant]
    if row["verdict"] == "not trained":
        return "it is not trained yet"
    if pd.isna(row.get("CI low")):
        n = int(row["seeds"])
        return f"with {n} seed{'s' if n != 1 else ''} it has no interval and no verdict ({MIN_SEEDS} needed)"
    side = {"worse": "worse, beyond the seed-to-seed spread", "better": "better, beyond the seed-to-seed spread",
            "within the spread": "within the seed-to-seed spread, so the difference gets no direction"}
    return (f"the 95% interval of the difference ({row['test']}) is [{row['CI low']:+.1f}, {row['CI high']:+.1f}], "
            f"and with Holm's correction over the book's table p = {row['p (Holm)']:.2g}: "
            f"{side[row['verdict']]}")


def paper_clause(row: pd.Series) -> str:
    """Where the paper's Table 3 has the row: its difference, and whether our verdict points the same way. A
    row within the spread gets no direction, so it neither agrees nor disagrees; it says so."""
    paper = row.get("paper Δ test", np.nan)
    if pd.isna(paper):
        return ""
    said = f" The paper's row: Δ test {paper:+.1f}"
    verdict = row.get("verdict")
    if verdict not in VERDICTS:
        return said + "."
    if verdict == "within the spread":
        return said + "; ours is within the seed-to-seed spread at this scale, so it gives no direction to compare."
    side = "worse" if paper > 0 else "better"
    return said + ("; ours points the same way." if verdict == side else
                   "; **ours points the other way**.")


def check_claims(claims: dict, enforce: bool = True, what: str = "The paragraphs below") -> list[str]:
    """The claims of hand-written prose (each a sentence -> whether the runs show it) that fail. With
    ``enforce`` (the runs the prose was written from) a failing claim stops the build, naming each one, so that
    a rerun that changes the runs cannot leave prose describing what they no longer show."""
    failed = [claim for claim, holds in claims.items() if not holds]
    if enforce and failed:
        raise AssertionError(f"{what} say what these runs no longer show; rewrite them from the runs:\n"
                             + "\n".join(f"- {claim}" for claim in failed))
    return failed


def lab_note(variants, results_dir=None, dataset: str = "ptb", baseline: str = "full") -> str:
    """What the committed `lab` runs (seed 0) show for ``variants`` (rows of ``TABLE_ROWS``) against
    ``baseline``, beside the book's verdicts (``ablation_verdicts`` of the book's runs), for the exercises that
    send readers to `lab`. One lab seed gives no direction of its own, so the note gives its numbers, and says
    which side of the full model they lie only where the book has a verdict to set them against."""
    from .book import results_dir as committed
    results_dir = Path(results_dir) if results_dir else committed()
    lab, _ = stored_runs([baseline, *variants], "lab", [0], dataset, results_dir)
    lab_val = {variant_of(r.config): r.summary["best_val_ppl"] for r in lab}
    if baseline not in lab_val:
        return f"The `lab` profile's {baseline} model has no committed run to compare with."
    # the verdicts of the whole table (Holm over all its rows), as every chapter shows them
    book, _ = stored_runs(TABLE_ROWS, "book", None, dataset, results_dir)
    verdicts = ablation_verdicts(book, baseline=baseline)["verdict"]
    parts = []
    for v in variants:
        if v not in lab_val:
            parts.append(f"{v} has no committed lab run")
            continue
        if abs(lab_val[v] - lab_val[baseline]) < 0.05:  # e.g. SGD where NT-ASGD never fires: the same run
            parts.append(f"**{v} {lab_val[v]:.0f}, the same as the full model**")
            continue
        # which side of the full model a lab number lies is said only against a verdict of the book's: on
        # its own, one seed's "higher" would read as a direction
        side = "higher" if lab_val[v] > lab_val[baseline] else "lower"
        text = f"{v} {lab_val[v]:.0f}"
        book_says = verdicts.get(v, "not trained")
        if book_says == {"higher": "worse", "lower": "better"}[side]:
            parts.append(text + f", {side}: the way of the book's verdict ({book_says})")
        elif book_says in ("worse", "better"):
            parts.append(f"**{text}, {side}: the other way from the book's verdict ({book_says})**")
        elif book_says == "within the spread":
            parts.append(text + ", where the book's runs cannot tell it from the full model")
        else:
            parts.append(text + f" (the book's runs: {book_says})")
    return (f"At the `lab` profile (the committed runs, seed 0, best validation perplexity; the full model "
            f"{lab_val[baseline]:.0f}): " + "; ".join(parts) + ". One seed shows what a lab run of yours will "
            f"look like, not a direction: that takes {MIN_SEEDS} seeds and the book's verdict.")


def missing_note(missing, results_dir="results") -> str:
    """What a page could not show because its runs are not trained yet, and the one command that trains them."""
    if not missing:
        return "Every run of this page is trained."
    by_variant = {}
    for cfg in missing:
        by_variant.setdefault(variant_of(cfg), []).append(cfg.seed)
    listed = "; ".join(f"{v} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})" for v, s in by_variant.items())
    profile = missing[0].profile
    names = " ".join(f'"{v}"' for v in by_variant)
    seeds = " ".join(map(str, sorted({c.seed for c in missing})))
    return (f"{len(missing)} run{'s' if len(missing) != 1 else ''} of this page {'are' if len(missing) != 1 else 'is'} "
            f"not trained yet: {listed}. Its rows say so. To train them (resumable; finished runs are skipped): "
            f"`python -m awd grid --profile {profile} --variants {names} --seeds {seeds}`.")


def row_panels(history: pd.DataFrame, rows, baseline: str = "full", y: str = "val_ppl", ncols: int = 3,
               closer: bool = False):
    """One panel per row: its validation curve against the baseline's (mean and sd band over seeds); a row
    without runs gets an empty panel that says so. ``closer``: each panel shows the second half of training on
    a linear scale of its own (`closeup`), where the rows differ by a few percent."""
    import matplotlib.pyplot as plt
    nrows = math.ceil(len(rows) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), sharey=not closer,
                             squeeze=False)
    for ax, row in zip(axes.flat, rows):
        sub = history[history.variant.isin([baseline, row])]
        if row in set(history.variant):
            if closer:  # span: a row far above the baseline (no dropout) stays in its panel
                closeup(sub, ax, y=y, title=row, span=2.0)
            else:
                curves(sub, y=y, ax=ax, title=row)
            ax.legend(fontsize=8)
        else:
            ax.set_title(row)
            ax.text(0.5, 0.5, "not trained yet", transform=ax.transAxes, ha="center", va="center", color="0.4")
            ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)  # no axes to read
            ax.grid(False)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def curve_facts(history: pd.DataFrame, window: int = 5) -> pd.DataFrame:
    """What each run's curves show, one row per run: where validation perplexity was best, how much it rose
    after that (overfitting), how fast it was still falling over the last ``window`` epochs (not converged),
    and the last epoch's training perplexity (measured with the run's dropout on) against its validation."""
    rows = []
    for run_id, h in history.sort_values("epoch").groupby("run_id", sort=False):
        best = h.val_ppl.idxmin()
        last = h.iloc[-1]
        recent = h.val_ppl.iloc[-(window + 1):]
        rows.append(dict(run_id=run_id, variant=last.get("variant"), seed=last.get("seed"),
                         epochs=int(last.epoch), best_epoch=int(h.loc[best, "epoch"]),
                         best_val_ppl=float(h.loc[best, "val_ppl"]), last_val_ppl=float(last.val_ppl),
                         rise_after_best=float(last.val_ppl - h.loc[best, "val_ppl"]),
                         falling_per_epoch=float(recent.iloc[0] - recent.iloc[-1]) / max(len(recent) - 1, 1),
                         last_train_ppl=float(last.train_ppl),
                         train_over_val=float(last.train_ppl / last.val_ppl)))
    return pd.DataFrame(rows)


def replayed_starts(history: pd.DataFrame, variant: str, n: int) -> pd.Series:
    """Per seed, the epoch from which NT-ASGD with interval ``n`` would average, replayed on the variant's raw
    validation curve (``optim.first_trigger``): NT-ASGD's raw weights take plain SGD's steps throughout, so the
    curve is SGD's whatever its own interval was. NaN where it would never fire."""
    raw = history[(history.variant == variant) & (history.phase == "train")].sort_values("epoch")
    checks = {seed: first_trigger(h.val_ppl_raw, n) for seed, h in raw.groupby("seed")}
    # averaging starts in the epoch after the check that fires
    return pd.Series({seed: math.nan if c is None else c + 1 for seed, c in checks.items()}, dtype=float)


OVERFITS = 0.10  # a rise after the best epoch that counts as overfitting: SGD's iterate alone wanders a few %


def curve_sentence(history: pd.DataFrame, variant: str) -> str:
    """What a row's curves show, in words (``curve_facts``, the mean over its seeds): where validation
    perplexity is best and whether it then rises (overfitting, above ``OVERFITS``) or is still falling (not
    converged); once NT-ASGD averages, the reported weights hide overfitting, so the same is read on the raw
    weights; and the last training perplexity against the validation one. "" for a row without runs."""
    h = history[history.variant == variant]
    if not len(h):
        return ""
    f = curve_facts(h).mean(numeric_only=True)
    r = curve_facts(h.assign(val_ppl=h.val_ppl_raw)).mean(numeric_only=True)
    s = (f"Its validation perplexity is best at epoch {f.best_epoch:.0f} of {f.epochs:.0f}"
         + (" on average" if h.run_id.nunique() > 1 else ""))
    rise, raw_rise = (100 * x.rise_after_best / x.best_val_ppl for x in (f, r))
    recent = "the last five" if f.epochs > 5 else f"its last {f.epochs - 1:.0f}"  # curve_facts' window
    if f.best_epoch < f.epochs and rise < 0.05:  # a seed whose best came an epoch or two before the last
        s += " and ends within 0.1% of it"
    elif f.best_epoch < f.epochs:
        s += f" and ends {rise:.1f}% above that" + (": it overfits" if rise > 100 * OVERFITS else "")
    elif f.falling_per_epoch > 0.002 * f.last_val_ppl:
        s += (f", still falling by {f.falling_per_epoch:.1f} points per epoch over {recent}: it has not "
              "converged")
    else:
        # slowly, but best at its last epoch: not shown to have converged (a tenth of a point per epoch is
        # several points over the epochs a longer run would add, as large as some rows' differences)
        s += (f", and falls by less than 0.2% per epoch over {recent} ({f.falling_per_epoch:.2f} points): "
              "slowly, but still improving at its last epoch")
    if not (math.isclose(r.best_val_ppl, f.best_val_ppl) and r.best_epoch == f.best_epoch):  # it averaged
        s += ("; its raw weights are best at its last epoch" if r.best_epoch >= f.epochs else
              f"; its raw weights are best at epoch {r.best_epoch:.0f} and end {raw_rise:.1f}% above that"
              + (", so they overfit" if raw_rise > 100 * OVERFITS else ""))
    return s + f"; its last training perplexity is {f.train_over_val:.2f} times its validation perplexity."


def finetune_facts(history: pd.DataFrame, variant: str = "full (fine-tuned)") -> pd.DataFrame:
    """Per seed of a fine-tuned row, what its two stages did to the validation perplexity of the evaluated
    (averaged) weights: the training stage's best and how fast it was still falling over its last five
    epochs, how many epochs it had averaged, then fine-tuning's first epoch, its best and its length."""
    rows = []
    for seed, h in history[history.variant == variant].sort_values("epoch").groupby("seed"):
        train, tune = h[h.phase == "train"], h[h.phase == "finetune"]
        if not len(tune):
            continue
        recent = train.val_ppl.iloc[-6:]
        rows.append(dict(seed=seed, train_best=float(train.val_ppl.min()),
                         train_falling=float(recent.iloc[0] - recent.iloc[-1]) / max(len(recent) - 1, 1),
                         train_averaged=int(train.averaging.astype(bool).sum()),
                         tune_first=float(tune.val_ppl.iloc[0]), tune_best=float(tune.val_ppl.min()),
                         tune_epochs=len(tune)))
    return pd.DataFrame(rows)


def finetune_sentence(history: pd.DataFrame, variant: str = "full (fine-tuned)") -> str:
    """What fine-tuning did, in words (``finetune_facts``): where its fresh average starts and ends against the
    training stage's best, seed by seed. "" for a row without a fine-tuning stage."""
    f = finetune_facts(history, variant)
    if not len(f):
        return ""

    seeds = "its seed" if len(f) == 1 else f"each of its {len(f)} seeds"
    first, best = f.tune_first - f.train_best, f.tune_best - f.train_best
    s = (f"In {seeds}, fine-tuning restarts the average from the training stage's best weights, and after its "
         f"first epoch the new average is {span(first)} points above the training stage's best validation "
         f"perplexity: it averages one epoch of iterates, where the training stage's average held "
         f"{span(f.train_averaged, 'd')} epochs of them. ")
    if (best > 0).all():
        s += (f"It then falls, but its best epoch stays {span(best)} points above, and the criterion stops it "
              f"after {span(f.tune_epochs, 'd')} epochs: fine-tuning never catches up with the training stage, "
              "so the run keeps the training stage's weights.")
    elif (best < 0).all():
        s += (f"Its best epoch ends {span(-best)} points below it, after {span(f.tune_epochs, 'd')} epochs of "
              "fine-tuning.")
    else:
        s += "Its best epoch ends " + listing(
            f"{abs(b):.1f} points {'above' if b > 0 else 'below'} it in seed {sd}"
            for sd, b in zip(f.seed, best)) + "."
    s += (f" Over its last five epochs the training stage was still falling by {span(f.train_falling, '.2f')} "
          "points per epoch.")
    return s


def finetune_panels(history: pd.DataFrame, variant: str = "full (fine-tuned)", before: int = 20):
    """One panel per seed of a fine-tuned row: the validation perplexity of its evaluated weights over the last
    ``before`` epochs of training and the whole fine-tuning stage, against the training stage's best."""
    import matplotlib.pyplot as plt
    h = history[history.variant == variant]
    seeds = sorted(h.seed.unique())
    fig, axes = plt.subplots(1, max(len(seeds), 1), figsize=(4.2 * max(len(seeds), 1), 3.3), squeeze=False,
                             sharey=True)
    for ax, seed in zip(axes.flat, seeds):
        run = h[h.seed == seed].sort_values("epoch")
        train, tune = run[run.phase == "train"], run[run.phase == "finetune"]
        shown = train[train.epoch > train.epoch.max() - before]
        ax.plot(shown.epoch, shown.val_ppl, color=OTHER_COLORS[0], label="training stage")
        if len(tune):  # joined to the training stage's last epoch, where fine-tuning starts from
            ax.plot([train.epoch.iloc[-1], *tune.epoch], [train.val_ppl.iloc[-1], *tune.val_ppl],
                    color=OTHER_COLORS[1], label="fine-tuning (a fresh average)")
        ax.axhline(train.val_ppl.min(), color="0.3", ls="--", lw=1, label="training stage's best")
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("epoch")
    axes.flat[0].set_ylabel("validation perplexity")
    figure_legend_below(fig, list(axes.flat))
    fig.tight_layout()
    return fig


def device_runs(results_dir=None) -> list[Run]:
    """The paper's configuration trained on a GPU for a few minutes (``results/device/<run id>/``, written by
    ``tools/device_check.sh`` in a session lent one); the bench it ran lies beside each, in ``bench.txt``."""
    from .book import results_dir as committed
    from .experiments import DEVICE_RUNS
    from .train import load_run
    folder = Path(results_dir or committed()) / DEVICE_RUNS
    return [load_run(p.parent) for p in sorted(folder.glob("*/summary.json"))]


def speed_frame(runs: list[Run]) -> pd.DataFrame:
    """Seconds per PTB epoch of the paper's configuration: each GPU run's (the median of its epochs, validation
    included, as the reference code's log times them) beside the authors' (``PAPER_SPEED``)."""
    from .experiments import PAPER_SPEED
    rows = [dict(source="this book", device=r.summary.get("device_name"), batch=r.config.batch_size,
                 epochs=r.summary.get("epochs_done"),
                 **{"s / epoch": float(np.median([h["seconds"] for h in r.history])) if r.history else np.nan,
                    "train tokens / s": r.summary.get("train_tokens_per_s")})
            for r in runs]
    rows += [dict(source="the authors (reference code's README)", device=gpu, batch=batch, epochs=np.nan,
                  **{"s / epoch": sec, "train tokens / s": np.nan}) for gpu, batch, sec in PAPER_SPEED]
    return pd.DataFrame(rows).set_index("source")


# --- plots ----------------------------------------------------------------------------------------------
def set_style():
    import seaborn as sns
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)


def curves(history: pd.DataFrame, y: str = "val_ppl", hue: str = "variant", ax=None, title: str | None = None,
           log: bool = True, style: str | None = None):
    """Perplexity per epoch; with several seeds the line is the mean and the band one standard deviation.

    A line of one variant has that variant's look (`variant_look`), also where ``hue`` is a label with one value
    per variant; ``style`` names a second column whose values get a dash each (``style=hue`` keeps the looks).
    The legend sits outside the panel, on the right."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    looks = _looks(history, hue)
    # a marker per epoch helps to count a few epochs; over many it hides the dashes that tell the lines apart
    marker = "o" if history.epoch.nunique() <= 20 else None
    split = style if style and style != hue else None
    styles = {v: DASHES[i % len(DASHES)] for i, v in enumerate(dict.fromkeys(history[split]))} if split else {}
    for label, g in history.groupby(hue, sort=False):
        for key, part in (g.groupby(split, sort=False) if split else [(None, g)]):
            stats = part.groupby("epoch")[y].agg(["mean", "std"]).sort_index()
            look = dict(looks[label])
            if split:
                look["linestyle"] = styles[key]
            name = f"{label}, {split} {key}" if split and split != "split" else (f"{label}, {key}" if split else label)
            ax.plot(stats.index, stats["mean"], label=name, marker=marker, markersize=3, **look)
            if stats["std"].notna().any():
                ax.fill_between(stats.index, stats["mean"] - stats["std"].fillna(0),
                                stats["mean"] + stats["std"].fillna(0), color=look["color"], alpha=0.15, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labels = {"val_ppl": "validation perplexity", "train_ppl": "training perplexity",
              "val_ppl_raw": "validation perplexity (raw weights)"}
    ax.set_xlabel("epoch")
    ax.set_ylabel(labels.get(y, y))
    if log:
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        low, high = ax.get_ylim()
        if high / low > 10:  # over a decade, number only 1, 2 and 5 times a power of ten, or the labels collide
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.yaxis.set_minor_formatter(ScalarFormatter())
    if title:
        ax.set_title(title)
    legend_outside(ax, title=hue if hue != "variant" else None)
    return ax


def _looks(history: pd.DataFrame, hue: str) -> dict:
    """Line keywords per value of ``hue``: the variant's look where each value stands for one variant."""
    values = list(dict.fromkeys(history[hue]))
    if "variant" in history and set(history.variant) <= set(VARIANT_LOOKS):
        pairs = history[list(dict.fromkeys([hue, "variant"]))].drop_duplicates()
        if pairs[hue].is_unique and pairs["variant"].is_unique:
            return {h: variant_look(v) for h, v in zip(pairs[hue], pairs["variant"])}
    return {v: dict(color=OTHER_COLORS[i % len(OTHER_COLORS)], linestyle="-", linewidth=1.6)
            for i, v in enumerate(values)}


def closeup(history: pd.DataFrame, ax, y: str = "val_ppl", hue: str = "variant", from_epoch: int | None = None,
            span: float = 1.2, **kwargs):
    """`curves` from `from_epoch` on (default: the second half of training) on a linear scale. The variants the book
    compares end within a few percent of each other, which a log scale that starts at the first epoch's perplexity
    squeezes into a few pixels. The panel shows the lines that come within `span` times the lowest mean, up to their
    highest point in the later half of the panel; a line still falling steeply enters from the top."""
    start = int(history.epoch.max()) // 2 + 1 if from_epoch is None else int(from_epoch)
    late = history[history.epoch >= start]
    curves(late, y=y, hue=hue, ax=ax, log=False, **kwargs)
    means = late.groupby([hue, "epoch"])[y].mean()
    low = float(means.min())
    near = means.groupby(level=0).filter(lambda m: m.min() < span * low)
    middle = start + (int(late.epoch.max()) - start) // 2
    top = 1.03 * float(near[near.index.get_level_values("epoch") >= middle].max())
    ax.set_ylim(0.98 * low, top)
    above = [str(h) for h, m in means.groupby(level=0) if m.min() >= top]
    if above:  # in the legend but nowhere in the panel: say where they went
        ax.text(0.98, 0.98, f"above the top: {listing(above)}", transform=ax.transAxes, ha="right", va="top",
                fontsize=9, color="0.3")
    return ax


def train_and_validation(ax, history: pd.DataFrame, title: str):
    """One run's validation and training perplexity per epoch (log scale), for the pilot's panels."""
    ax.plot(history.epoch, history.val_ppl, "o-", ms=3, label="validation", color=OTHER_COLORS[0])
    ax.plot(history.epoch, history.train_ppl, "s--", ms=3, label="training (with its dropout)",
            color=OTHER_COLORS[1])
    ax.set_yscale("log")
    ax.set_ylim(40, 700)
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([50, 100, 200, 400])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    return ax


def figure_legend_below(fig, axes, **kwargs):
    """One legend for several panels, below them: every label once, from whichever panel has it."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.02),
               ncol=min(len(handles), 3), frameon=False, **kwargs)


def span(values, fmt: str = ".1f") -> str:
    """Values over seeds as prose: "a to b", one number where they print the same; "nan" for none."""
    if not len(values):
        return "nan"
    lo, hi = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
    return lo if lo == hi else f"{lo} to {hi}"


def listing(items) -> str:
    """Items as prose: "a", "a and b", "a, b and c"."""
    items = [str(i) for i in items]
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def pointer_sentence(scores: pd.DataFrame, dataset: str = "ptb") -> str:
    """The cache pointer's gain for each evaluated model (rows of ``evals.evals_frame``, means over seeds), as
    relative changes beside the paper's and Grave et al.'s, and the settings chosen on validation for each
    seed beside the reference code's; a fine-tuned model identical to its training stage is not repeated."""
    from . import evals
    rows = scores.dropna(subset=["val + pointer"]) if "val + pointer" in scores else scores.iloc[:0]
    if not len(rows):
        return ""
    if evals.finetuning_kept_weights(rows):
        rows = rows[rows.model != "fine-tuned"]  # fine-tuning never beat the training stage: the same weights
    parts, chosen, test_gains = [], [], []
    for model, g in rows.groupby("model", sort=False):
        v0, v1, t0, t1 = (g[c].mean() for c in ("val", "val + pointer", "test", "test + pointer"))
        n = len(g)
        test_gains.append(t1 / t0 - 1)
        parts.append(f"the {model} model ({n} seed{'s, means' if n > 1 else ''}) from {v0:.1f} to {v1:.1f} on "
                     f"validation ({v1 / v0 - 1:+.0%}) and from {t0:.1f} to {t1:.1f} on test ({t1 / t0 - 1:+.0%})")
        chosen += [f"{model}, seed {r['seed']}: W = {r['window']:g}, θ = {r['theta']:g}, λ = {r['lambda']:g}"
                   for _, r in g.iterrows()]
    text = f"With the settings chosen on validation, the pointer takes {'; '.join(parts)}."
    if dataset not in evals.PAPER_POINTER:
        return text + f" Chosen on validation: {'; '.join(chosen)}."
    (pv0, pt0), (pv1, pt1) = evals.PAPER_POINTER[dataset]
    w, th, lam = evals.REFERENCE_POINTER_SETTINGS[dataset]
    g0, g1 = evals.GRAVE_PTB_TEST
    return (text + f" For the paper's fine-tuned model, {pv0} → {pv1} ({pv1 / pv0 - 1:+.0%}) and {pt0} → {pt1} "
            f"({pt1 / pt0 - 1:+.0%}); for Grave et al.'s own PTB model, {g0} → {g1} on test ({g1 / g0 - 1:+.0%}). "
            f"Relative gains at different perplexities are not the same quantity"
            + ("; one possible reason for the larger gain here, which these few models cannot test, is that a "
               "weaker model leaves more of the next word to a memory of the recent text"
               if all(abs(gain) > abs(pt1 / pt0 - 1) for gain in test_gains) else "")
            + f". Chosen on validation: "
            f"{'; '.join(chosen)}; the reference code's README sets W = {w}, θ = {th:g}, λ = {lam:g}.")


def streams_note(scores: pd.DataFrame) -> str:
    """Why the pointer's baseline and every other evaluation give the same weights different perplexities
    (rows of ``evals.evals_frame`` evaluated both ways)."""
    both = ["val", "val (dropout off)"]
    rows = scores.dropna(subset=both) if set(both) <= set(scores) else scores.iloc[:0]
    if not len(rows):
        return ""
    from . import evals  # a fine-tuned model that kept its training stage's weights is one model, not two
    rows = rows[~((rows.model == "fine-tuned") & rows.seed.isin(evals.kept_seeds(rows)))]
    one, many = (rows[c].mean() for c in both)
    n = len(rows)
    return (f"The pointer's columns without the cache read each split as one stream (batch 1, the state carried "
            f"from the first word to the last, as the reference code's `pointer.py` does); every other "
            f"evaluation in the book, MC dropout's \"dropout off\" column included, reads validation as "
            f"`eval_batch_size` parallel streams (and test as `test_batch_size`), each starting from an empty "
            f"state, and leaves out the few tokens that do not fill the batch's last row. The same weights "
            f"score {one:.2f} one way and {many:.2f} the other on validation (means over {n} set{'s' if n != 1 else ''}"
            f" of weights)" + (", a difference below 0.1 here" if abs(one - many) < 0.1 else "")
            + ": each method is compared with its own baseline, never with the other's.")


def mc_sentence(scores: pd.DataFrame) -> str:
    """MC dropout's change for each evaluated model (rows of ``evals.evals_frame``, means over seeds), beside
    Gal & Ghahramani's; a fine-tuned model identical to its training stage is not repeated."""
    from . import evals
    rows = scores.dropna(subset=["val MC"]) if "val MC" in scores else scores.iloc[:0]
    if not len(rows):
        return ""
    cols = ["val (dropout off)", "val MC", "test (dropout off)", "test MC", "K"]
    means = rows.groupby("model", sort=False)[cols].mean()
    if evals.finetuning_kept_weights(rows):
        means = means.drop(index="fine-tuned")  # fine-tuning never beat the training stage: the same weights
    parts = []
    for model, m in means.iterrows():
        n = int((rows.model == model).sum())
        ks = ", ".join(f"{k:.0f}" for k in rows[rows.model == model].K)  # each seed's own K
        parts.append(f"the {model} model ({n} seed{'s' if n != 1 else ''}, K = {ks}) from "
                     f"{m['val (dropout off)']:.1f} to {m['val MC']:.1f} on validation "
                     f"({m['val MC'] / m['val (dropout off)'] - 1:+.1%}) and from {m['test (dropout off)']:.1f} "
                     f"to {m['test MC']:.1f} on test ({m['test MC'] / m['test (dropout off)'] - 1:+.1%})")
    g0, g1 = evals.GAL_MC_TEST
    return (f"With K chosen on validation, MC dropout takes {'; '.join(parts)}. Gal and Ghahramani's large "
            f"LSTM: {g0} → {g1} on test ({g1 / g0 - 1:+.1%}).")


def retrained_note(runs: list[Run], evaluated: list[Run]) -> str:
    """Where the evaluated models that stand in for committed runs come from (``evals.with_weights``): a
    retrained copy is named with its machine, commit and best validation perplexity beside the committed run's."""
    from . import evals
    committed = {r.config.run_id(): r for r in runs}
    out = []
    for again in evaluated:
        run = committed.get(again.config.run_id())
        if run is None or run.path == again.path:
            continue  # the run kept its own weights
        a, b, cfg = again.summary, run.summary, again.config
        out.append(
            f"The committed runs keep no weights, so the {variant_of(cfg)} model is seed {cfg.seed} trained "
            f"again, with its weights kept (`results/{evals.RETRAINED}/{again.path.name}/`), trained on "
            f"{a.get('device_name')} at commit `{a.get('git_commit', '?')[:7]}`; the committed run "
            f"trained on {b.get('device_name')} at `{b.get('git_commit', '?')[:7]}`. Its best validation "
            f"perplexity is {a['best_val_ppl']:.2f}, the committed run's {b['best_val_ppl']:.2f}: the same "
            f"config and seed on another CPU take another trajectory (floating-point sums differ in their last "
            f"bits, and {cfg.epochs} epochs at a learning rate of {cfg.lr:g} amplify that), so the copy is its "
            f"own run, evaluated as itself.")
    return " ".join(out)


def mc_curves(runs: list[Run], ax=None):
    """MC dropout's validation perplexity against the number of passes K, one line per evaluated model (each
    run's ``evals.json``; the mean over seeds where several were evaluated), in its variant's colour, with the
    same model's deterministic evaluation dotted. Where fine-tuning never beat the training stage for any seed,
    the two are the same weights and get one line."""
    import json

    import matplotlib.pyplot as plt

    from . import evals
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    by_model, looks, kept = {}, {}, []  # model -> {seed: its MC evaluation}; model -> variant; what was kept
    for run in runs:
        path = run.path / evals.EVALS
        for name, e in (json.loads(path.read_text()).items() if path.exists() else []):
            if e.get("mc_dropout"):
                model = evals.model_name(run, name)  # a fine-tuned run's training stage is the full model
                looks[model] = "full" if model == "full" else variant_of(run.config)
                by_model.setdefault(model, {})[run.config.seed] = e["mc_dropout"]
                kept.append(dict(seed=run.config.seed, weights=name, model=model, sha256=e.get("weights_sha256")))
    same = evals.finetuning_kept_weights(pd.DataFrame(kept, columns=["seed", "weights", "model", "sha256"]))
    if same:
        by_model.pop("fine-tuned")
    for model, seeds in by_model.items():
        look = variant_look(looks[model])
        samples = next(iter(seeds.values()))["samples"]
        if any(mc["samples"] != samples for mc in seeds.values()):
            raise ValueError(f"{model}: its seeds were evaluated at different K; evaluate them again alike")
        val = np.mean([mc["val_ppl_by_samples"] for mc in seeds.values()], axis=0)
        label = model + (" = fine-tuned" if same and model == "full" else "")
        label += f", seed {next(iter(seeds))}" if len(seeds) == 1 else f", mean of {len(seeds)} seeds"
        ax.plot(samples, val, label=label, **look)
        deterministic = np.mean([mc["val_ppl_deterministic"] for mc in seeds.values()])
        ax.axhline(deterministic, ls=":", color=look["color"], lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("K (passes)")
    ax.set_ylabel("validation perplexity")
    ax.set_title("MC dropout against K (dotted: the same model, dropout off)")
    return legend_outside(ax)


def profile_note(runs: list[Run]) -> str:
    """A sentence naming the profile(s), dataset and seeds the page's runs come from."""
    df = summary_frame(runs)
    profiles = ", ".join(sorted(df.profile.unique()))
    seeds = sorted(df.seed.unique())
    return (f"profile `{profiles}` on {', '.join(sorted(df.dataset.unique()))}, "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})")

