"""The AWD-LSTM language model (Merity et al. 2017), composed from the regularizers in ``regularize.py``.

    words --EmbeddingDropout(dropoute)--> vectors --LockedDropout(dropouti)-->
      LSTM_1 (WeightDrop wdrop) --LockedDropout(dropouth)--> ... --> LSTM_L (WeightDrop wdrop)
      --LockedDropout(dropout)--> decoder (tied to the embedding) --> logits

With weight tying (Section 4.4; Inan et al. 2016, Press & Wolf 2016) the last LSTM layer outputs
``emb_size`` units so that the decoder can reuse the embedding matrix as its weight. Untied, the reference
code lets it output ``hidden_size`` units (a wider layer and decoder, so more than the tying changes);
``last_size=emb_size`` keeps the tied model's sizes, so that the decoder's own weight is the only change.
"""
from __future__ import annotations

import torch
from torch import nn

from .regularize import EmbeddingDropout, LockedDropout, WeightDrop


class AWDLSTM(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int = 400, hidden_size: int = 1150, num_layers: int = 3,
                 dropout: float = 0.4, dropouth: float = 0.3, dropouti: float = 0.4, dropoute: float = 0.1,
                 wdrop: float = 0.5, tie_weights: bool = True, dropout_mode: str = "variational",
                 last_size: int | None = None):
        super().__init__()
        self.vocab_size, self.emb_size, self.hidden_size = vocab_size, emb_size, hidden_size
        self.num_layers, self.tie_weights = num_layers, tie_weights

        self.encoder = nn.Embedding(vocab_size, emb_size)
        self.embedding_dropout = EmbeddingDropout(dropoute)
        self.input_dropout = LockedDropout(dropouti, dropout_mode)       # dropouti
        self.hidden_dropout = LockedDropout(dropouth, dropout_mode)      # dropouth, between layers
        self.output_dropout = LockedDropout(dropout, dropout_mode)       # dropout, after the last layer
        if last_size is None:
            last_size = emb_size if tie_weights else hidden_size
        if tie_weights and last_size != emb_size:
            raise ValueError(f"last_size={last_size}: a tied decoder needs the last layer to output emb_size={emb_size}")
        sizes = [emb_size] + [hidden_size] * (num_layers - 1) + [last_size]
        self.rnns = nn.ModuleList(
            WeightDrop(nn.LSTM(sizes[i], sizes[i + 1]), wdrop) for i in range(num_layers))
        self.decoder = nn.Linear(last_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight  # one Parameter, used twice
        self.reset_parameters()

    @classmethod
    def from_config(cls, cfg, vocab_size: int) -> "AWDLSTM":
        """The model a ``Config`` describes (its sizes, rates and tying) for a vocabulary."""
        return cls(vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers, cfg.dropout, cfg.dropouth,
                   cfg.dropouti, cfg.dropoute, cfg.wdrop, cfg.tie_weights, cfg.dropout_mode, cfg.last_size)

    def reset_parameters(self):
        """As in the reference code: embedding U(-0.1, 0.1), decoder bias 0, LSTMs PyTorch's default
        U(-1/sqrt(H), 1/sqrt(H)). An untied decoder weight is drawn like the embedding."""
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not self.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def init_hidden(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        weight = self.encoder.weight
        return [(weight.new_zeros(1, batch_size, rnn.module.hidden_size),
                 weight.new_zeros(1, batch_size, rnn.module.hidden_size)) for rnn in self.rnns]

    def forward(self, tokens: torch.Tensor, hidden=None, return_h: bool = False):
        """tokens (T, B) -> logits (T, B, vocab) and the new hidden state.

        With ``return_h`` also returns each layer's raw outputs and their dropped versions (the last
        entry of each list is what AR and TAR act on)."""
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        x = self.input_dropout(self.embedding_dropout(self.encoder, tokens))
        new_hidden, raw_outputs, dropped_outputs = [], [], []
        for i, rnn in enumerate(self.rnns):
            x, h = rnn(x, hidden[i])
            new_hidden.append(h)
            raw_outputs.append(x)
            x = self.hidden_dropout(x) if i < self.num_layers - 1 else self.output_dropout(x)
            dropped_outputs.append(x)
        logits = self.decoder(x)
        if return_h:
            return logits, new_hidden, raw_outputs, dropped_outputs
        return logits, new_hidden


def repackage_hidden(hidden):
    """Detach the hidden state from the graph of the previous window (truncated BPTT)."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return type(hidden)(repackage_hidden(h) for h in hidden)


def count_parameters(model: nn.Module) -> int:
    """Each Parameter once: a tied decoder weight is the embedding and is not counted twice."""
    return sum(p.numel() for p in model.parameters())
