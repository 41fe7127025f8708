"""The model's wiring: tying, sizes, initialization, which outputs AR/TAR see."""
import pytest
import torch
from torch import nn

from awd.model import AWDLSTM, count_parameters


def lstm_params(i, h):
    return 4 * h * (i + h) + 8 * h


def test_tied_decoder_weight_is_the_embedding_parameter():
    m = AWDLSTM(100, 16, 32, 3, tie_weights=True)
    assert m.decoder.weight is m.encoder.weight
    assert m.rnns[-1].module.hidden_size == 16, "the last layer outputs emb_size so that tying works"


def test_parameter_counts_tied_and_untied():
    V, E, H = 100, 16, 32
    tied = AWDLSTM(V, E, H, 3, tie_weights=True)
    untied = AWDLSTM(V, E, H, 3, tie_weights=False)
    expected_tied = V * E + lstm_params(E, H) + lstm_params(H, H) + lstm_params(H, E) + V
    expected_untied = V * E + lstm_params(E, H) + lstm_params(H, H) + lstm_params(H, H) + V * H + V
    assert count_parameters(tied) == expected_tied
    assert count_parameters(untied) == expected_untied
    assert untied.decoder.weight is not untied.encoder.weight


def test_untied_same_sizes_changes_only_the_decoder():
    """last_size=emb_size: the untied model keeps the tied one's layers, so the decoder's own V x E weight is
    the only difference (at the book's sizes 3,689,232 against 2,409,232 parameters)."""
    V, E, H = 100, 16, 32
    tied = AWDLSTM(V, E, H, 3, tie_weights=True)
    same = AWDLSTM(V, E, H, 3, tie_weights=False, last_size=E)
    assert [r.module.hidden_size for r in same.rnns] == [r.module.hidden_size for r in tied.rnns] == [H, H, E]
    assert same.decoder.weight is not same.encoder.weight
    assert count_parameters(same) == count_parameters(tied) + V * E
    with pytest.raises(ValueError, match="last_size=32"):
        AWDLSTM(V, E, H, 3, tie_weights=True, last_size=H)


def test_book_sizes_of_the_untied_rows():
    from awd.experiments import variant_config
    counts = {v: count_parameters(AWDLSTM.from_config(variant_config(v, "book"), 10_000))
              for v in ("full", "no tying", "untied, same sizes", "full-sized embedding")}
    assert counts == {"full": 2_409_232, "no tying": 5_297_936, "untied, same sizes": 3_689_232,
                      "full-sized embedding": 10_000 * 256 + 3 * lstm_params(256, 256) + 10_000}


def test_paper_ptb_model_has_24m_parameters():
    m = AWDLSTM(10_000)
    assert count_parameters(m) == pytest.approx(24e6, rel=0.02)


def test_initialization_as_in_the_paper():
    torch.manual_seed(0)
    m = AWDLSTM(1000, 40, 64, 2)
    assert m.encoder.weight.abs().max() <= 0.1
    assert torch.equal(m.decoder.bias, torch.zeros(1000))
    bound = 1 / 64 ** 0.5
    assert m.rnns[0].module.weight_hh_l0.abs().max() <= bound


def test_forward_shapes_hidden_and_returned_outputs():
    m = AWDLSTM(50, 8, 12, 3).train()
    x = torch.randint(0, 50, (9, 4))
    logits, hidden, raw, dropped = m(x, m.init_hidden(4), return_h=True)
    assert logits.shape == (9, 4, 50)
    assert [h[0].shape for h in hidden] == [(1, 4, 12), (1, 4, 12), (1, 4, 8)]
    assert len(raw) == len(dropped) == 3 and raw[-1].shape == (9, 4, 8)


def test_dropped_last_output_is_what_the_decoder_sees():
    torch.manual_seed(0)
    m = AWDLSTM(50, 8, 12, 2, dropout=0.5).train()
    x = torch.randint(0, 50, (5, 3))
    torch.manual_seed(1)
    logits, _, raw, dropped = m(x, return_h=True)
    torch.testing.assert_close(logits, m.decoder(dropped[-1]))
    assert not torch.equal(raw[-1], dropped[-1])


def test_all_rates_zero_is_deterministic_in_training_mode():
    m = AWDLSTM(50, 8, 12, 2, dropout=0, dropouth=0, dropouti=0, dropoute=0, wdrop=0).train()
    x = torch.randint(0, 50, (5, 3))
    torch.testing.assert_close(m(x)[0], m(x)[0])


def test_eval_is_deterministic_and_equals_plain_lstm_stack():
    torch.manual_seed(0)
    m = AWDLSTM(50, 8, 12, 2).eval()
    x = torch.randint(0, 50, (6, 2))
    a, _ = m(x)
    h = m.encoder(x)
    for rnn in m.rnns:
        plain = nn.LSTM(rnn.module.input_size, rnn.module.hidden_size)
        plain.load_state_dict(rnn.module.state_dict())
        h, _ = plain(h)
    torch.testing.assert_close(a, m.decoder(h))
