"""The regularizers of AWD-LSTM, one small module each (Merity et al. 2017, Section 4).

- ``EmbeddingDropout``: drops whole words from the embedding matrix (``dropoute``, Section 4.3).
- ``LockedDropout``: variational dropout, one mask per sequence shared by all time steps (``dropouti``,
  ``dropouth``, ``dropout``, Section 4.2); ``mode="standard"`` gives ordinary dropout and ``mode="2017"``
  the first code release's per-step mask, for the ablations.
- ``WeightDrop``: DropConnect on an LSTM's hidden-to-hidden matrix (``wdrop``, Section 2).
- ``ar_tar``: activation and temporal activation regularization (``alpha``, ``beta``, Section 4.6).

Every module is the identity in eval mode and when its rate is 0.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class EmbeddingDropout(nn.Module):
    """Zero whole rows of the embedding matrix: a dropped word vanishes everywhere in the batch.

    Gal & Ghahramani (2016) and Section 4.3: row ``w`` is kept with probability ``1 - p`` and rescaled by
    ``1 / (1 - p)``. Scaling the looked-up vectors by ``mask[words]`` equals looking words up in
    ``mask * weight`` (as the reference code does) without touching the whole V x E matrix.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, embedding: nn.Embedding, words: torch.Tensor) -> torch.Tensor:
        vectors = embedding(words)
        if not self.training or self.p == 0:
            return vectors
        keep = embedding.weight.new_empty(embedding.num_embeddings, 1).bernoulli_(1 - self.p)
        return vectors * (keep / (1 - self.p))[words]

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LockedDropout(nn.Module):
    """Variational ("locked") dropout on a (time, batch, features) tensor, Section 4.2.

    One Bernoulli mask of shape (1, batch, features) is drawn per forward call and reused at every time
    step, so a unit that is dropped stays dropped for the whole sequence. The other modes change only the
    mask's shape:

    - ``"standard"``: (seq_len, batch, features), a fresh mask for every element and time step;
    - ``"2017"``: (seq_len, 1, features), a fresh mask at every time step, the same for every sequence of
      the batch. This is what the first release of the reference code drew (salesforce/awd-lstm-lm
      acb04a5, fixed in a3020a7 on 2017-09-01), so the paper's tables were measured with it.
    """

    MASK_SHAPES = {"variational": lambda x: (1, x.size(1), x.size(2)),
                   "standard": lambda x: tuple(x.shape),
                   "2017": lambda x: (x.size(0), 1, x.size(2))}

    def __init__(self, p: float, mode: str = "variational"):
        super().__init__()
        if mode not in self.MASK_SHAPES:
            raise ValueError(f"mode={mode!r}: use one of {', '.join(self.MASK_SHAPES)}")
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.mode == "standard":  # F.dropout draws the same full-shape mask, in one fused kernel
            return F.dropout(x, self.p, training=True)
        mask = x.new_empty(self.MASK_SHAPES[self.mode](x)).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


class WeightDrop(nn.Module):
    """DropConnect (Wan et al. 2013) on the hidden-to-hidden matrix of a wrapped single-layer ``nn.LSTM``.

    Section 2: one mask over ``W_hh`` per forward call, so the same connections are dropped at every
    time step and for every sequence in the batch, while the fused LSTM kernel stays in use. The raw
    weight is never deleted or re-registered: the dropped copy is passed to the LSTM for this call only
    (``torch.func.functional_call``), so ``state_dict`` keys stay those of ``nn.LSTM``, eval mode uses the
    raw weight, and gradients flow to the raw weight through the mask.
    """

    def __init__(self, lstm: nn.LSTM, p: float, weight: str = "weight_hh_l0"):
        super().__init__()
        self.module, self.p, self.weight = lstm, p, weight

    def forward(self, x: torch.Tensor, hidden=None):
        if not self.training or self.p == 0:
            return self.module(x, hidden)
        dropped = F.dropout(getattr(self.module, self.weight), self.p, training=True)
        with warnings.catch_warnings():
            # On CUDA the dropped matrix is a fresh tensor outside cuDNN's flat weight buffer, so cuDNN
            # copies it in for this call; that copy is the point of DropConnect, not a performance bug.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return functional_call(self.module, {self.weight: dropped}, (x, hidden))

    def extra_repr(self) -> str:
        return f"p={self.p}, weight={self.weight!r}"


def ar_tar(raw_last: torch.Tensor, dropped_last: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Section 4.6, as in the reference code: both are means of squares over the last layer's output.

    AR  = alpha * mean(dropped_last ** 2)                      (penalizes large activations)
    TAR = beta  * mean((raw_last[1:] - raw_last[:-1]) ** 2)    (penalizes fast change between steps)

    AR acts on the output after the final locked dropout, TAR on the raw (un-dropped) output.
    """
    penalty = raw_last.new_zeros(())
    if alpha:
        penalty = penalty + alpha * dropped_last.pow(2).mean()
    if beta and raw_last.size(0) > 1:
        penalty = penalty + beta * (raw_last[1:] - raw_last[:-1]).pow(2).mean()
    return penalty
