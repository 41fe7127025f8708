import json

import pytest

from awd.config import PROFILES, Config, ConfigError, parse_override


def test_defaults_are_the_papers_ptb_settings():
    c = Config.from_profile("paper-ptb")
    assert (c.emb_size, c.hidden_size, c.num_layers) == (400, 1150, 3)
    assert (c.dropouti, c.dropouth, c.dropout, c.dropoute, c.wdrop) == (0.4, 0.3, 0.4, 0.1, 0.5)
    assert (c.lr, c.clip, c.bptt, c.batch_size, c.nonmono, c.alpha, c.beta) == (30, 0.25, 70, 40, 5, 2, 1)
    assert c.optimizer == "ntasgd" and c.tie_weights and c.variable_bptt
    w = Config.from_profile("paper-wt2")
    assert (w.dataset, w.batch_size, w.dropouti) == ("wikitext-2", 80, 0.65)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_is_valid_and_round_trips_through_json(profile):
    c = Config.from_profile(profile)
    assert Config.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["profile"] == profile


def test_every_bad_field_is_named_with_a_fix():
    with pytest.raises(ConfigError) as e:
        Config(dropout=1.0, wdrop=-0.1, hidden_size=0, optimizer="adam", dataset="penn", dropout_mode="gauss")
    msg = str(e.value)
    for field in ("dropout=1.0", "wdrop=-0.1", "hidden_size=0", "optimizer='adam'", "dataset='penn'",
                  "dropout_mode='gauss'"):
        assert field in msg
    assert "[0, 1)" in msg and "ntasgd" in msg


def test_unknown_field_suggests_the_right_name():
    with pytest.raises(ConfigError, match="did you mean 'wdrop'"):
        Config.from_profile("lab", w_drop=0.1)
    with pytest.raises(ConfigError, match="profile='huge'"):
        Config.from_profile("huge")


def test_run_id_ignores_runtime_fields_but_not_hyperparameters():
    a = Config.from_profile("smoke")
    assert a.run_id() == a.replace(device="cpu", threads=1, progress=False).run_id()
    assert a.run_id() != a.replace(wdrop=0.0).run_id()
    assert a.run_id() != a.replace(seed=1).run_id()
    assert a.run_id().startswith("ptb-smoke-") and a.run_id().endswith("-s0")


def test_parse_override_types_values_by_field():
    assert parse_override("wdrop=0") == ("wdrop", 0.0)
    assert parse_override("tie_weights=false") == ("tie_weights", False)
    assert parse_override("epochs=12") == ("epochs", 12)
    assert parse_override("max_train_tokens=none") == ("max_train_tokens", None)
    assert parse_override("optimizer=sgd") == ("optimizer", "sgd")
    with pytest.raises(ConfigError, match="not a valid int"):
        parse_override("epochs=ten")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("wdrop")


def test_a_tied_model_cannot_have_another_last_size():
    with pytest.raises(ConfigError, match="last_size=256.*tie_weights=False"):
        Config.from_profile("book", last_size=256)
    assert Config.from_profile("book", tie_weights=False, last_size=128).last_size == 128


def test_fields_added_later_keep_the_committed_run_ids():
    """A field added after runs were committed enters the hash only when set, so the committed folders (whose
    config.json lacks it) still carry the ids their configs hash to."""
    from pathlib import Path
    from awd.train import load_run
    root = Path(__file__).resolve().parent.parent / "results"
    runs = [load_run(p.parent) for p in root.glob("*/config.json")]
    assert len(runs) >= 21
    for run in runs:
        assert run.config.run_id() == run.id, run.path
    base = Config.from_profile("book")
    assert base.replace(tie_weights=False, last_size=128).run_id() != base.replace(tie_weights=False).run_id()
