"""Reading committed runs is the default: a chapter finds them wherever it runs (awd.book) and never starts
hours of training unasked (awd.report.ensure_runs)."""
import json
import subprocess
from pathlib import Path

import pytest

import awd.book
import awd.report
from awd.config import Config
from awd.experiments import variant_config

ROOT = Path(__file__).resolve().parent.parent


def _stored(results_dir: Path, cfg: Config, wall_time_s: float) -> None:
    run = results_dir / cfg.run_id()
    run.mkdir(parents=True)
    (run / "config.json").write_text(cfg.to_json())
    (run / "summary.json").write_text(json.dumps({"status": "finished", "wall_time_s": wall_time_s}))


def test_a_missing_book_run_stops_with_the_list_the_command_and_the_time(tmp_path, monkeypatch):
    monkeypatch.delenv(awd.report.NO_TRAIN_ENV, raising=False)
    trained = []
    monkeypatch.setattr(awd.report, "train", lambda cfg, **kw: trained.append(cfg))
    _stored(tmp_path, variant_config("full", "book", 0), wall_time_s=3000)
    _stored(tmp_path, variant_config("full", "book", 1), wall_time_s=3600)
    with pytest.raises(awd.report.MissingRuns) as err:
        awd.report.ensure_runs(["full", "no tying"], profile="book", seeds=[0, 1], results_dir=tmp_path)
    text = str(err.value)
    assert "2 run(s) of profile 'book'" in text and "'no tying' seed 1" in text and "'full'" not in text
    assert f'python -m awd grid --profile book --variants "no tying" --seeds 0 1 --results-dir {tmp_path}' in text
    assert "about 55 minutes of one core per run" in text  # the mean of the two stored runs
    assert "train_missing = True" in text
    assert not trained


def test_training_is_asked_for_or_takes_minutes(tmp_path, monkeypatch):
    monkeypatch.delenv(awd.report.NO_TRAIN_ENV, raising=False)
    trained = []
    monkeypatch.setattr(awd.report, "train", lambda cfg, **kw: trained.append(cfg.profile))
    awd.report.ensure_runs(["full"], profile="book", seeds=[0], results_dir=tmp_path, train_missing=True)
    awd.report.ensure_runs(["full"], profile="lab", seeds=[0], results_dir=tmp_path)
    awd.report.ensure_runs(["full"], profile="smoke", seeds=[0], results_dir=tmp_path)
    assert trained == ["book", "lab", "smoke"]
    monkeypatch.setenv(awd.report.NO_TRAIN_ENV, "1")  # the book's build: nothing trains, asked or not
    with pytest.raises(awd.report.MissingRuns, match="AWD_NO_TRAIN is set"):
        awd.report.ensure_runs(["full"], profile="lab", seeds=[0], results_dir=tmp_path, train_missing=True)


def test_the_committed_runs_are_found_from_the_package_not_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(awd.book.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert awd.book.results_dir() == ROOT / "results"
    monkeypatch.setenv(awd.book.RESULTS_ENV, str(tmp_path))
    assert awd.book.results_dir() == tmp_path


def test_results_are_fetched_from_the_commit_the_package_came_from(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "run-a").mkdir(parents=True)
    (repo / "results" / "run-a" / "summary.json").write_text("{}")
    (repo / "README.md").write_text("not fetched")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "runs"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    got = awd.book.fetch_results(repo.as_uri(), commit, dest=tmp_path / "cache")
    assert (got / "run-a" / "summary.json").is_file() and not (tmp_path / "cache" / "README.md").exists()
    with pytest.raises(RuntimeError, match="could not fetch results/"):
        awd.book.fetch_results(repo.as_uri(), "0" * 40, dest=tmp_path / "other")


def test_the_lab_note_names_where_lab_points_against_the_books_verdict(tmp_path):
    """awd.report.lab_note: lab's seed-0 direction beside the book's Holm-corrected verdict, for the exercises."""
    def store(variant, profile, seed, val, test):
        cfg = variant_config(variant, profile, seed)
        run = tmp_path / cfg.run_id()
        run.mkdir()
        (run / "config.json").write_text(cfg.to_json())
        (run / "summary.json").write_text(json.dumps(
            {"status": "finished", "best_val_ppl": val, "test_ppl": test, "wall_time_s": 60.0}))
    for seed, t in enumerate([100.0, 101.0, 102.0]):
        store("full", "book", seed, t + 3, t)
        store("no dropout", "book", seed, t + 33, t + 30)   # clearly worse in the book
        store("no weight drop", "book", seed, t + 3.5, t + 0.5 * (-1) ** seed)  # no direction in the book
    store("full", "lab", 0, 300.0, 290.0)
    store("no dropout", "lab", 0, 280.0, 270.0)        # better at lab: against the book
    store("no weight drop", "lab", 0, 310.0, 300.0)
    store("SGD", "lab", 0, 300.0, 290.0)               # NT-ASGD never fired: the same run as full
    note = awd.report.lab_note(["no dropout", "no weight drop", "SGD", "no tying"], results_dir=tmp_path)
    assert "**no dropout 280, lower: the other way from the book's verdict (worse)**" in note
    assert "no weight drop 310, where the book's runs cannot tell it from the full model" in note
    assert "higher" not in note  # one seed's side is named only against a verdict of the book's
    assert "**SGD 300, the same as the full model**" in note
    assert "no tying has no committed lab run" in note and "the full model 300" in note
