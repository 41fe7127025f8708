"""SGD, ASGD and non-monotonically triggered ASGD (NT-ASGD), Section 3 and Algorithm 1 of the paper.

All three take plain SGD steps (with L2 weight decay added to the gradient, as ``torch.optim.SGD``
does). They differ only in when they start keeping a running average of the iterates:

- ``"sgd"`` never averages;
- ``"asgd"`` averages from the very first step (T = 0);
- ``"ntasgd"`` starts averaging at iteration T, the first time that a validation value is worse than
  the best one seen before the last ``nonmono`` checks (the authors' condition; see ``observe``).

The average is kept explicitly (``torch.optim.ASGD`` changed behaviour across releases). The raw
iterates keep training; ``averaged()`` swaps the average in for evaluation and saving. Two small
departures from the reference code, which switches to ``torch.optim.ASGD`` (``t0=0, lambd=0``): that
optimizer recomputes its step size after each step, so the variable-BPTT learning-rate scaling reaches it one
batch late, and its running average leaves out the first averaged iterate. Here every step uses its own
batch's scaling, and the average is the exact arithmetic mean of the iterates since T, as in Algorithm 1.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.optim import Optimizer

MODES = ("sgd", "asgd", "ntasgd")


def nonmono_trigger(logs: list[float], value: float, n: int) -> bool:
    """NT-ASGD's condition (the authors' code): ``value`` is worse than the best of ``logs`` before the last
    ``n`` checks, and there are more than ``n`` of them. (The arXiv v1 text compares against the last n
    values; the authors called that a typo.)"""
    return len(logs) > n and value > min(logs[:-n])


def first_trigger(values, n: int) -> int | None:
    """The 1-based check at which NT-ASGD would start averaging, replayed on a validation curve of plain SGD
    (identical to NT-ASGD's until its trigger); None if it never fires. Averaging starts after that check."""
    values = [float(v) for v in values]
    for t in range(len(values)):
        if nonmono_trigger(values[:t], values[t], n):
            return t + 1
    return None


class NTASGD(Optimizer):
    def __init__(self, params, lr: float, weight_decay: float = 0.0, mode: str = "ntasgd", nonmono: int = 5):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: choose one of {', '.join(MODES)}")
        if lr <= 0 or weight_decay < 0 or nonmono < 1:
            raise ValueError(f"need lr > 0, weight_decay >= 0, nonmono >= 1; got {lr}, {weight_decay}, {nonmono}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        self.mode, self.nonmono = mode, nonmono
        self.logs: list[float] = []   # one validation value per logging interval (epoch)
        self.num_steps = 0            # k in Algorithm 1
        self.avg_start = 0 if mode == "asgd" else None  # T: the step at which averaging began
        self.num_averaged = 0         # iterates in the average so far

    @property
    def averaging(self) -> bool:
        return self.avg_start is not None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                p.add_(grad, alpha=-group["lr"])
        self.num_steps += 1
        if self.averaging:
            # Running mean of the iterates since T: ax <- ax + (w - ax) / n.
            self.num_averaged += 1
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    if "ax" not in state:
                        state["ax"] = p.detach().clone()
                    else:
                        state["ax"].lerp_(p, 1.0 / self.num_averaged)
        return loss

    def observe(self, val_loss: float) -> bool:
        """Record one validation value (once per logging interval); True on the call that starts averaging.

        Algorithm 1 with the condition of the authors' code (``nonmono_trigger``): ``v`` is worse than the
        best value seen *before* the last ``n`` checks.
        """
        trigger = (self.mode == "ntasgd" and not self.averaging
                   and nonmono_trigger(self.logs, val_loss, self.nonmono))
        if trigger:
            self.avg_start = self.num_steps
        self.logs.append(float(val_loss))
        return trigger

    @contextmanager
    def averaged(self):
        """Inside the block the parameters hold the averaged weights; on exit the raw ones, bit for bit.

        Values are copied in place (not swapped by reference) so that tensors other code holds, such as
        cuDNN's flat weight buffer, stay valid. Before averaging has begun this is a no-op.
        """
        swapped = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    ax = self.state[p].get("ax")
                    if ax is not None:
                        swapped.append((p, p.detach().clone()))
                        p.copy_(ax)
        try:
            yield self
        finally:
            with torch.no_grad():
                for p, raw in swapped:
                    p.copy_(raw)

    def state_dict(self):
        sd = super().state_dict()
        sd["ntasgd"] = dict(mode=self.mode, nonmono=self.nonmono, logs=list(self.logs),
                            num_steps=self.num_steps, avg_start=self.avg_start, num_averaged=self.num_averaged)
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        extra = state_dict.pop("ntasgd")
        super().load_state_dict(state_dict)
        self.mode, self.nonmono, self.logs = extra["mode"], extra["nonmono"], list(extra["logs"])
        self.num_steps, self.avg_start = extra["num_steps"], extra["avg_start"]
        self.num_averaged = extra["num_averaged"]
