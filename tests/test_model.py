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
