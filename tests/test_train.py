"""The trainer end to end at the smoke profile: learning, records, reuse, resume, divergence, bad input."""
import fcntl
import importlib
import json
import math
import subprocess
import sys

import pytest

from awd.config import Config, ConfigError

# `awd.train` is also the name of the function that awd/__init__.py exports; take the module itself.
T = importlib.import_module("awd.train")
pytestmark = pytest.mark.usefixtures("data_dir")

LOSS_COLUMNS = ("train_loss", "val_loss", "val_loss_raw")


def smoke(**kw):
    return Config.from_profile("smoke", progress=False, threads=1, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return T.train(smoke(), results_dir=results), results


def test_smoke_run_learns_and_records_everything(finished):
    run, _ = finished
    assert run.finished and run.summary["status"] == "finished"
    vals = [h["val_ppl"] for h in run.history]
    assert len(vals) == run.config.epochs and vals[-1] < vals[0]
    files = {p.name for p in run.path.iterdir()}
    assert {"config.json", "history.csv", "summary.json", "checkpoint.pt", "best.pt"} <= files
    assert not any(name.endswith(".tmp") for name in files)
    s = run.summary
    for key in ("best_val_ppl", "test_ppl", "params", "git_commit", "torch_version", "device", "device_name",
                "cpu_capability", "wall_time_s", "best_epoch"):
        assert s[key] is not None, key
    assert s["best_val_ppl"] == pytest.approx(min(vals))
    assert json.loads((run.path / "config.json").read_text())["wdrop"] == run.config.wdrop


def test_a_finished_config_is_returned_without_training(finished, monkeypatch):
    run, results = finished
    monkeypatch.setattr(T, "train_epoch", lambda *a, **k: pytest.fail("must not train again"))
    again = T.train(smoke(), results_dir=results)
    assert again.id == run.id and again.history == run.history


def interrupted_in_epoch(n, config, results_dir, monkeypatch):
    """Train `config` until the n-th call of train_epoch raises KeyboardInterrupt, as a killed run would."""
    real, calls = T.train_epoch, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "train_epoch", dies)
    with pytest.raises(KeyboardInterrupt):
        T.train(config, results_dir=results_dir)
    monkeypatch.setattr(T, "train_epoch", real)


def test_resumed_run_equals_uninterrupted(finished, tmp_path, monkeypatch):
    run, _ = finished
    interrupted_in_epoch(3, smoke(), tmp_path, monkeypatch)
    summary = json.loads((tmp_path / run.id / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 2
    resumed = T.train(smoke(), results_dir=tmp_path)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(resumed.history, run.history):
        for col in LOSS_COLUMNS:
            assert a[col] == pytest.approx(b[col], rel=1e-9, abs=1e-12), col
    assert resumed.summary["test_ppl"] == pytest.approx(run.summary["test_ppl"], rel=1e-9)


@pytest.mark.parametrize("overrides, die_at", [
    (dict(optimizer="asgd", epochs=4), 3),                           # with a running average to restore
    (dict(optimizer="ntasgd", epochs=2, finetune_epochs=3), 4),      # inside the fine-tuning stage
], ids=["asgd-average", "finetune"])
def test_a_run_resumed_with_optimizer_state_equals_the_uninterrupted_one(overrides, die_at, tmp_path, monkeypatch):
    whole = T.train(smoke(**overrides), results_dir=tmp_path / "whole")
    interrupted_in_epoch(die_at, smoke(**overrides), tmp_path / "cut", monkeypatch)
    resumed = T.train(smoke(**overrides), results_dir=tmp_path / "cut")
    assert [(h["epoch"], h["phase"]) for h in resumed.history] == [(h["epoch"], h["phase"]) for h in whole.history]
    assert any(h["averaging"] for h in resumed.history[:die_at - 1]), "the cut fell after averaging had started"
    for a, b in zip(resumed.history, whole.history):
        for col in LOSS_COLUMNS:
            assert a[col] == pytest.approx(b[col], rel=1e-9, abs=1e-12), (a["epoch"], a["phase"], col)
    assert resumed.summary["test_ppl"] == pytest.approx(whole.summary["test_ppl"], rel=1e-9)


def test_best_weights_never_run_ahead_of_the_checkpoint(tmp_path, monkeypatch):
    import torch
    real_save, checkpoints = T.atomic_torch_save, []

    def killed_writing_the_second_checkpoint(obj, path):
        if path.name.startswith("checkpoint.pt"):
            checkpoints.append(1)
            if len(checkpoints) == 2:
                raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(T, "atomic_torch_save", killed_writing_the_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        T.train(smoke(), results_dir=tmp_path)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    ckpt = T.load_verified(run_dir / "checkpoint.pt")
    assert ckpt["state"]["epoch"] == ckpt["state"]["best_epoch"] == 1
    best = T.load_verified(run_dir / "best.pt")
    assert all(torch.equal(best[k], ckpt["model"][k]) for k in best), "best.pt holds epoch 2, which no record has"
    monkeypatch.setattr(T, "atomic_torch_save", real_save)
    resumed = T.train(smoke(), results_dir=tmp_path)
    assert resumed.finished and not list(run_dir.glob("best-pending*"))


def test_a_pending_best_is_promoted_only_when_the_checkpoint_names_it(tmp_path):
    import torch

    def weight(name):
        return torch.load(tmp_path / name)["w"].item()

    torch.save({"w": torch.tensor([1.0])}, tmp_path / "best.pt")
    torch.save({"w": torch.tensor([3.0])}, tmp_path / "best-pending-epoch3.pt")
    T._settle_best(tmp_path, dict(epoch=2, best_epoch=1))  # cut off before epoch 3's checkpoint: redo epoch 3
    assert weight("best.pt") == 1.0 and not list(tmp_path.glob("best-pending*"))
    torch.save({"w": torch.tensor([3.0])}, tmp_path / "best-pending-epoch3.pt")
    T._settle_best(tmp_path, dict(epoch=3, best_epoch=3))  # cut off after it, before the promotion
    assert weight("best.pt") == 3.0 and not list(tmp_path.glob("best-pending*"))


def test_resuming_with_another_thread_count_says_so(tmp_path, monkeypatch, capsys):
    interrupted_in_epoch(2, smoke(epochs=2), tmp_path, monkeypatch)
    T.train(smoke(epochs=2).replace(threads=2), results_dir=tmp_path)
    assert "started with 1 thread(s) and resumes with 2" in capsys.readouterr().err


def test_divergence_is_recorded_not_raised(tmp_path):
    run = T.train(smoke(lr=1e9, clip=0.0, epochs=2), results_dir=tmp_path)
    assert run.summary["status"] == "diverged"
    assert not math.isfinite(run.history[-1]["train_loss"]) or not math.isfinite(run.history[-1]["val_loss"])


def test_ntasgd_triggers_and_evaluates_on_the_average(tmp_path):
    # smoke has nonmono=1; a large lr makes validation bounce so that averaging starts within a few epochs.
    run = T.train(smoke(epochs=6, lr=60.0), results_dir=tmp_path)
    started = run.summary["averaging_start_epoch"]
    if started is None:
        pytest.skip("validation never got worse in this short run")
    assert [h["averaging"] for h in run.history] == [h["epoch"] >= started for h in run.history], \
        "a row says averaging exactly when its validation value is of the averaged weights"
    after = [h for h in run.history if h["epoch"] >= started]
    assert any(h["val_loss"] != h["val_loss_raw"] for h in after)


def test_asgd_averages_from_the_start(tmp_path):
    run = T.train(smoke(optimizer="asgd", epochs=2), results_dir=tmp_path)
    assert all(h["averaging"] for h in run.history)


def test_finetune_stage_runs_asgd_from_the_best_weights(tmp_path):
    run = T.train(smoke(epochs=2, finetune_epochs=2), results_dir=tmp_path)
    phases = [h["phase"] for h in run.history]
    assert phases[:2] == ["train", "train"] and set(phases[2:]) == {"finetune"} and len(phases) >= 3
    assert all(h["averaging"] for h in run.history if h["phase"] == "finetune")
    assert T.read_verified(run.path / T.BEFORE_FINETUNE)[1] is not None, "the weights before fine-tuning have a digest"


def test_cli_bad_input_fails_before_training_with_a_clear_message(tmp_path):
    out = subprocess.run([sys.executable, "-m", "awd", "train", "--profile", "smoke", "--set", "wdrop=1.5",
                          "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "wdrop=1.5" in out.stderr and "[0, 1)" in out.stderr
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError):
        smoke(dataset="no-such-dataset")


def test_cli_smoke_train_then_eval(tmp_path):
    base = [sys.executable, "-m", "awd"]
    out = subprocess.run(base + ["train", "--profile", "smoke", "--epochs", "1", "--quiet",
                                 "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "test ppl" in out.stdout
    run_id = next(tmp_path.iterdir()).name
    out = subprocess.run(base + ["eval", run_id, "--results-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout and "test" in out.stdout
    out = subprocess.run(base + ["generate", run_id, "--words", "10", "--results-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) >= 5
    # a folder with only the committed half-precision copy (awd.evals.save_half): the same commands use it
    from awd.evals import save_half
    full = subprocess.run(base + ["eval", run_id, "--results-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300).stdout
    save_half(tmp_path / run_id, "best.pt")
    for name in ("best.pt", "best-previous.pt"):
        (tmp_path / run_id / name).unlink(missing_ok=True)
    half = subprocess.run(base + ["eval", run_id, "--results-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert half.returncode == 0, half.stderr
    assert "using best.fp16.pt, the committed half-precision copy" in half.stderr

    def ppl(text):
        return float(next(line for line in text.splitlines() if line.startswith("valid")).split()[-1])
    assert ppl(half.stdout) == pytest.approx(ppl(full), rel=1e-2)


def test_a_second_process_waits_for_the_first_and_reuses_its_run(tmp_path):
    """Two processes asking for the same config: one trains, the other waits on the lock and reads it."""
    code = ("import sys; from awd.config import Config; from awd.train import train; "
            "r = train(Config.from_profile('smoke', epochs=1, progress=False, threads=1), sys.argv[1]); "
            "print(r.summary['wall_time_s'])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1], "both report the one run that was trained"
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(T.load_run(run_dir).history) == 1
    with open(run_dir / "lock") as f:  # released: a third process could take it at once
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_retrain_discards_the_stored_run(finished, tmp_path, monkeypatch):
    run = T.train(smoke(epochs=1), results_dir=tmp_path)
    calls = []
    real = T.train_epoch
    monkeypatch.setattr(T, "train_epoch", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = T.train(smoke(epochs=1), results_dir=tmp_path, retrain=True)
    assert calls == [1] and again.id == run.id and len(again.history) == 1


def test_missing_data_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AWD_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("AWD_CACHE_DIR", str(tmp_path / "cache"))
    cfg = smoke(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):
        T.train(cfg.replace(), results_dir=tmp_path / "results")
    assert not (tmp_path / "results" / cfg.run_id()).exists()


# --- checkpoint integrity ----------------------------------------------------------------------------------
def flip_bytes(path, count=20):
    """Flip ``count`` bytes spread over the file, as a bad disk or a bad copy might."""
    data = bytearray(path.read_bytes())
    for i in range(count):
        data[len(data) // 2 + i * 97 % (len(data) // 2)] ^= 0xFF
    path.write_bytes(bytes(data))


def same_losses(a, b):
    assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
    for x, y in zip(a.history, b.history):
        for col in LOSS_COLUMNS:
            assert x[col] == pytest.approx(y[col], rel=1e-9, abs=1e-12), (x["epoch"], col)
    assert a.summary["test_ppl"] == pytest.approx(b.summary["test_ppl"], rel=1e-9)


def test_a_flipped_or_missing_byte_anywhere_is_found(tmp_path):
    import torch
    path = tmp_path / "w.pt"
    digest = T.atomic_torch_save({"w": torch.arange(100.0)}, path)
    good = path.read_bytes()
    assert good.startswith(b"awd-sha256 " + digest.encode()) and T.load_verified(path)["w"].sum() == 4950
    for pos in (0, 5, 40, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:pos] + bytes([good[pos] ^ 1]) + good[pos + 1:])
        with pytest.raises(T.CorruptCheckpoint, match="w.pt is corrupted"):
            T.load_verified(path)
    path.write_bytes(good[:-10])
    with pytest.raises(T.CorruptCheckpoint, match="truncated"):
        T.load_verified(path)


def test_a_corrupted_checkpoint_is_named_and_the_run_goes_on_from_the_previous_epoch(finished, tmp_path,
                                                                                     monkeypatch, capsys):
    run, _ = finished
    interrupted_in_epoch(3, smoke(), tmp_path, monkeypatch)  # checkpoint.pt: epoch 2; checkpoint-previous.pt: 1
    run_dir = tmp_path / run.id
    flip_bytes(run_dir / "checkpoint.pt")
    capsys.readouterr()
    resumed = T.train(smoke(), results_dir=tmp_path)
    err = capsys.readouterr().err
    assert f"{run_dir / 'checkpoint.pt'} is corrupted" in err and "set aside as checkpoint.pt.corrupt" in err
    assert "resuming from checkpoint-previous.pt (epoch 1)" in err
    same_losses(resumed, run)


def test_with_no_checkpoint_that_verifies_the_run_starts_from_scratch(finished, tmp_path, monkeypatch, capsys):
    run, _ = finished
    interrupted_in_epoch(3, smoke(), tmp_path, monkeypatch)
    run_dir = tmp_path / run.id
    for name in ("checkpoint.pt", "checkpoint-previous.pt"):
        (run_dir / name).write_bytes((run_dir / name).read_bytes()[:1000])  # truncated
    capsys.readouterr()
    resumed = T.train(smoke(), results_dir=tmp_path)
    err = capsys.readouterr().err
    assert "checkpoint-previous.pt is corrupted or truncated" in err and "training it from scratch" in err
    assert "resuming" not in err
    same_losses(resumed, run)


def test_damaged_best_weights_send_the_run_back_to_the_checkpoint_they_match(finished, tmp_path, monkeypatch,
                                                                            capsys):
    run, _ = finished
    interrupted_in_epoch(3, smoke(), tmp_path, monkeypatch)
    run_dir = tmp_path / run.id
    flip_bytes(run_dir / "best.pt")  # the best of epoch 2; best-previous.pt (epoch 1) is intact
    capsys.readouterr()
    resumed = T.train(smoke(), results_dir=tmp_path)
    err = capsys.readouterr().err
    assert "best.pt is corrupted" in err and "resuming from checkpoint-previous.pt (epoch 1)" in err
    same_losses(resumed, run)


def test_a_checkpoint_from_before_digests_resumes_with_a_note(finished, tmp_path, monkeypatch, capsys):
    import torch
    run, _ = finished
    interrupted_in_epoch(3, smoke(), tmp_path, monkeypatch)
    run_dir = tmp_path / run.id
    ckpt = T.load_verified(run_dir / "checkpoint.pt")  # rewritten as the trainer wrote it before digests
    del ckpt["state"]["best_sha256"]
    torch.save(ckpt, run_dir / "checkpoint.pt")
    torch.save(T.load_verified(run_dir / "best.pt"), run_dir / "best.pt")
    for name in ("checkpoint-previous.pt", "best-previous.pt"):
        (run_dir / name).unlink()
    capsys.readouterr()
    resumed = T.train(smoke(), results_dir=tmp_path)
    err = capsys.readouterr().err
    assert "checkpoint.pt has no digest (written before digests were added), so it could not be verified" in err
    assert "resuming after epoch 2" in err
    same_losses(resumed, run)
    assert T.read_verified(run_dir / "checkpoint.pt")[1] is not None, "written with a digest from then on"


def test_a_file_system_without_locks_stops_the_run_with_the_reason(tmp_path, monkeypatch):
    import errno

    def no_locks(f, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(T.fcntl, "flock", no_locks)
    with pytest.raises(RuntimeError, match="cannot lock files .No locks available.*POSIX locks"):
        T.train(smoke(epochs=1), results_dir=tmp_path)
