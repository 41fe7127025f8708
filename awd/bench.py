"""What the regularizers cost: AWD-LSTM next to a plain LSTM language model of the same sizes.

``python -m awd bench [--profiles paper-ptb book] [--device auto|cpu|cuda] [--seconds S]``

Two models of identical sizes are built in one process and measured *alternately* (A, B, A, B, ...
rounds; medians reported), so that a machine that speeds up or slows down during the run (other jobs,
thermal limits) affects both alike:

- **AWD-LSTM**: ``AWDLSTM`` with every regularizer at the profile's rate (``dropout``, ``dropouth``,
  ``dropouti``, ``dropoute``, ``wdrop``), AR/TAR (alpha 2, beta 1) in the loss, gradient clipping and an
  ``NTASGD`` step with averaging on from the first step (mode ``"asgd"``: the expensive path of NT-ASGD,
  a running average of all weights updated after every step), weight decay as configured.
- **plain LSTM**: ``PlainLSTMLM``: an embedding, the same stack of single-layer ``nn.LSTM`` of the same
  sizes, a decoder tied to the embedding; no dropout of any kind, no AR/TAR, ``torch.optim.SGD`` (no
  weight decay, no averaging), the same clipping.

Both see the same synthetic token ids (uniform over the profile's vocabulary: no data set needed) in
fixed-length windows, carrying the hidden state from window to window as in training. A *train* step is
forward, loss, backward, clipping and the optimizer step; an *eval* step is a forward pass and the loss
under ``torch.no_grad()`` in eval mode (where every regularizer is the identity).

Memory: on every device the bench reports the bytes the autograd graph holds for backward at the end of
one training forward pass (every tensor passed through ``torch.autograd.graph.saved_tensors_hooks``,
counted once per storage, parameters excluded): the activation memory that the regularizers add to.
On CUDA it also reports ``torch.cuda.max_memory_allocated`` over one training step, less the tensors
that the *other* model keeps resident, i.e. the peak this model would reach alone.

On a CPU the paper-size model trains at about 1,000 tokens/s, so the bench shrinks the paper profiles'
batch there (``CPU_SHAPES``); the table always states the batch x bptt it measured.
"""
from __future__ import annotations

import math
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import PROFILES, Config, ConfigError
from .model import AWDLSTM, count_parameters, repackage_hidden
from .optim import NTASGD
from .regularize import ar_tar

DEFAULT_PROFILES = ("paper-ptb", "book")
VOCAB_SIZES = {"ptb": 10_000, "wikitext-2": 33_278}  # the paper's vocabularies (facts file)
ALPHA, BETA = 2.0, 1.0                                # AR/TAR, Section 4.6
TARGET = 0.90                                         # the target: AWD trains at >= 0.90x plain on CPU
# The paper's batches take seconds per step on a 2-core CPU: measure a smaller batch there (said in the table).
CPU_SHAPES = {"paper-ptb": dict(batch_size=10), "paper-wt2": dict(batch_size=10)}
DEFAULTS = {"cpu": dict(seconds=2.0, rounds=5, warmup=2), "cuda": dict(seconds=1.0, rounds=5, warmup=5)}


# --- the baseline -------------------------------------------------------------------------------------------
class PlainLSTMLM(nn.Module):
    """An ``AWDLSTM`` without its regularizers: embedding -> single-layer ``nn.LSTM`` stack -> tied decoder.

    Same sizes layer for layer (the last LSTM outputs ``emb_size`` so that the decoder can be tied), the
    same parameter count, no dropout of any kind."""

    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab_size, emb_size)
        sizes = [emb_size] + [hidden_size] * (num_layers - 1) + [emb_size]
        self.rnns = nn.ModuleList(nn.LSTM(sizes[i], sizes[i + 1]) for i in range(num_layers))
        self.decoder = nn.Linear(emb_size, vocab_size)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int):
        w = self.encoder.weight
        return [(w.new_zeros(1, batch_size, r.hidden_size), w.new_zeros(1, batch_size, r.hidden_size))
                for r in self.rnns]

    def forward(self, tokens: torch.Tensor, hidden=None):
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        x, new_hidden = self.encoder(tokens), []
        for rnn, h in zip(self.rnns, hidden):
            x, h = rnn(x, h)
            new_hidden.append(h)
        return self.decoder(x), new_hidden


# --- what is measured ---------------------------------------------------------------------------------------
@dataclass
class Case:
    """One size to measure: a config (its sizes, rates, lr, clip, weight decay) and a vocabulary size."""
    name: str
    cfg: Config
    vocab_size: int
    note: str = ""  # e.g. "paper batch 40; CPU: 10"


def make_case(profile: str, device: torch.device) -> Case:
    if profile not in PROFILES:
        raise ConfigError(f"bench profile {profile!r}: choose one of {', '.join(PROFILES)}")
    cfg = Config.from_profile(profile)
    note = ""
    if device.type == "cpu" and profile in CPU_SHAPES:
        small = cfg.replace(**CPU_SHAPES[profile])
        note = f"paper: {cfg.batch_size} x {cfg.bptt}; smaller batch on CPU"
        cfg = small
    return Case(profile, cfg, VOCAB_SIZES.get(cfg.dataset, 10_000), note)


@dataclass
class Row:
    profile: str
    model: str
    batch: int
    bptt: int
    params: int
    train: list[float] = field(default_factory=list)  # tokens/s, one per round
    eval: list[float] = field(default_factory=list)
    saved_mb: float = math.nan                         # saved for backward, parameters excluded
    peak_mb: float | None = None                       # CUDA only
    final_loss: float = math.nan
    note: str = ""

    @property
    def train_tok_s(self) -> float:
        return statistics.median(self.train)

    @property
    def eval_tok_s(self) -> float:
        return statistics.median(self.eval)


@dataclass
class Result:
    awd: Row
    plain: Row

    @property
    def train_ratio(self) -> float:
        return self.awd.train_tok_s / self.plain.train_tok_s

    @property
    def eval_ratio(self) -> float:
        return self.awd.eval_tok_s / self.plain.eval_tok_s

    def paired(self, phase: str) -> list[float]:
        """AWD/plain within each round (the two measurements of a round are seconds apart)."""
        return [a / b for a, b in zip(getattr(self.awd, phase), getattr(self.plain, phase))]


@dataclass
class Report:
    results: list[Result]
    device: torch.device
    device_name: str
    threads: int
    seconds: float
    rounds: int
    warmup: int
    wall_s: float = 0.0

    def table(self) -> str:
        return format_table(self)


class _Runner:
    """One model with its optimizer, data cursor and carried hidden state; ``train_step``/``eval_step``."""

    def __init__(self, kind: str, case: Case, device: torch.device, data: torch.Tensor):
        cfg = case.cfg
        self.kind, self.cfg, self.data, self.device = kind, cfg, data, device
        if kind == "awd":
            self.model = AWDLSTM(case.vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers, cfg.dropout,
                                 cfg.dropouth, cfg.dropouti, cfg.dropoute, cfg.wdrop, True,
                                 cfg.dropout_mode).to(device)
            # Averaging from the first step: the NT-ASGD step once it has triggered (its costly path).
            self.opt = NTASGD(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.wdecay, mode="asgd")
        else:
            self.model = PlainLSTMLM(case.vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers).to(device)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.pos = 0
        self.hidden = {"train": None, "eval": None}
        self.loss = math.nan

    def _window(self):
        T = self.cfg.bptt
        if self.pos + T + 1 > self.data.size(0):
            self.pos = 0
        x, y = self.data[self.pos:self.pos + T], self.data[self.pos + 1:self.pos + 1 + T]
        self.pos += T
        return x, y

    def _hidden(self, phase: str):
        h = self.hidden[phase]
        return self.model.init_hidden(self.cfg.batch_size) if h is None else repackage_hidden(h)

    def forward_loss(self, x, y):
        """The training objective: cross-entropy, plus AR/TAR for AWD-LSTM."""
        if self.kind == "awd":
            logits, hidden, raw, dropped = self.model(x, self._hidden("train"), return_h=True)
            raw_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            loss = raw_loss + ar_tar(raw[-1], dropped[-1], ALPHA, BETA)
        else:
            logits, hidden = self.model(x, self._hidden("train"))
            raw_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            loss = raw_loss
        self.hidden["train"] = hidden
        return loss, raw_loss

    def backward_step(self, loss):
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()

    def train_step(self) -> int:
        x, y = self._window()
        loss, raw_loss = self.forward_loss(x, y)
        self.backward_step(loss)
        self.loss = raw_loss.detach()
        return y.numel()

    @torch.no_grad()
    def eval_step(self) -> int:
        x, y = self._window()
        logits, self.hidden["eval"] = self.model(x, self._hidden("eval"))
        F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        return y.numel()

    def resident_bytes(self) -> int:
        """Parameters, gradients and optimizer state: what stays allocated between steps."""
        tensors = [p for p in self.model.parameters()] + [p.grad for p in self.model.parameters()]
        tensors += [v for s in self.opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        return _unique_storage_bytes(t for t in tensors if t is not None)

    def measure_memory(self) -> tuple[float, float | None]:
        """One training step with accounting: (MB saved for backward, CUDA peak MB or None)."""
        self.model.train()
        x, y = self._window()
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        saved: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                saved[s.data_ptr()] = s.nbytes()
            return t

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            own = self.resident_bytes()
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = self.forward_loss(x, y)
        self.backward_step(loss)
        peak = None
        if cuda:
            torch.cuda.synchronize(self.device)
            peak = (torch.cuda.max_memory_allocated(self.device) - before + own) / 2**20
        return sum(saved.values()) / 2**20, peak


def _unique_storage_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, seconds: float, device: torch.device) -> float:
    """Tokens/s of ``step`` over at least ``seconds`` (whole steps, at least one)."""
    _sync(device)
    start = time.perf_counter()
    tokens = 0
    while True:
        tokens += step()
        _sync(device)  # CUDA runs asynchronously: wait for the work before reading the clock
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return tokens / elapsed


def bench_case(case: Case, device: torch.device, seconds: float, rounds: int, warmup: int,
               seed: int = 0, log=None) -> Result:
    """Measure one size: warm-up, memory, then ``rounds`` alternating rounds of train and eval timing."""
    cfg = case.cfg
    torch.manual_seed(seed)
    # Synthetic ids, uniform over the vocabulary; 8 windows, then the cursor wraps around.
    data = torch.randint(case.vocab_size, (8 * cfg.bptt + 1, cfg.batch_size), device=device)
    runners = [_Runner("awd", case, device, data), _Runner("plain", case, device, data)]
    rows = [Row(case.name, name, cfg.batch_size, cfg.bptt, count_parameters(r.model), note=case.note)
            for name, r in zip(("AWD-LSTM", "plain LSTM"), runners)]
    for r in runners:
        r.model.train()
        for _ in range(warmup):
            r.train_step()
        r.model.eval()
        for _ in range(max(1, warmup // 2)):
            r.eval_step()
    _sync(device)
    for r, row in zip(runners, rows):
        row.saved_mb, row.peak_mb = r.measure_memory()
    for i in range(rounds):
        for r, row in zip(runners, rows):  # A then B, round after round
            r.model.train()
            row.train.append(_timed(r.train_step, seconds, device))
        for r, row in zip(runners, rows):
            r.model.eval()
            row.eval.append(_timed(r.eval_step, seconds, device))
        if log:
            log(f"  {case.name} round {i + 1}/{rounds}: train "
                + " / ".join(f"{row.train[-1]:,.0f}" for row in rows)
                + " tok/s, eval " + " / ".join(f"{row.eval[-1]:,.0f}" for row in rows) + " tok/s (AWD / plain)")
    for r, row in zip(runners, rows):
        row.final_loss = float(r.loss)
    return Result(*rows)


def run_bench(cases: list[Case], device: torch.device, seconds: float, rounds: int, warmup: int,
              log=None) -> Report:
    from .train import device_name
    start = time.perf_counter()
    results = [bench_case(c, device, seconds, rounds, warmup, log=log) for c in cases]
    return Report(results, device, device_name(device), torch.get_num_threads(), seconds, rounds, warmup,
                  wall_s=time.perf_counter() - start)


# --- the table ----------------------------------------------------------------------------------------------
def format_table(report: Report) -> str:
    cuda = report.device.type == "cuda"
    head = ["profile", "model", "params", "batch x bptt", "train tok/s", "eval tok/s",
            "saved for backward (MB)"] + (["CUDA peak (MB)"] if cuda else [])
    lines = []
    for res in report.results:
        for row in (res.awd, res.plain):
            lines.append([row.profile, row.model, f"{row.params / 1e6:.2f}M", f"{row.batch} x {row.bptt}",
                          f"{row.train_tok_s:,.0f}", f"{row.eval_tok_s:,.0f}", f"{row.saved_mb:,.1f}"]
                         + ([f"{row.peak_mb:,.1f}"] if cuda else []))
        pt, pe = res.paired("train"), res.paired("eval")
        lines.append(["", "AWD / plain", "", "", f"{res.train_ratio:.3f}x", f"{res.eval_ratio:.3f}x",
                      f"{res.awd.saved_mb / res.plain.saved_mb:.2f}x"]
                     + ([f"{res.awd.peak_mb / res.plain.peak_mb:.2f}x"] if cuda else []))
        lines.append(["", "  per round", "", "", f"{min(pt):.2f}-{max(pt):.2f}", f"{min(pe):.2f}-{max(pe):.2f}",
                      ""] + ([""] if cuda else []))
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    right = {2, 4, 5, 6, 7}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt(head), "  ".join("-" * w for w in widths)]
    for i, l in enumerate(lines):
        out.append(fmt(l).rstrip())
        if l[1] == "  per round" and i < len(lines) - 1:
            out.append("")
    notes = [f"{res.awd.profile}: {res.awd.note}" for res in report.results if res.awd.note]
    bad = [f"{row.profile} {row.model}" for res in report.results for row in (res.awd, res.plain)
           if not math.isfinite(row.final_loss)]
    foot = [
        "train: forward + loss + backward + clip + optimizer step; eval: forward + loss, no_grad, eval mode.",
        f"medians of {report.rounds} alternating rounds (AWD, plain, AWD, plain ...) of >= {report.seconds:g} s "
        f"per model and phase, after {report.warmup} warm-up steps; ratio = ratio of the medians, "
        "'per round' = range of the paired per-round ratios.",
        "AWD-LSTM: all regularizers on at the profile's rates, AR/TAR (alpha 2, beta 1), clipping, NT-ASGD step "
        "with averaging on; plain LSTM: same sizes, tied, no dropout, no AR/TAR, plain SGD, same clipping.",
        "saved for backward: bytes the autograd graph holds at the end of one training forward (each storage "
        "once, parameters excluded)."
        + (" CUDA peak: max_memory_allocated over one train step, as if the model were alone." if cuda else ""),
    ] + [f"note: {n}" for n in notes] + [f"warning: non-finite training loss in {b}" for b in bad]
    return "\n".join(out + [""] + foot)


def header(device: torch.device, name: str, threads: int) -> str:
    return (f"torch {torch.__version__} | device {device} ({name}) | {threads} threads | "
            f"python {platform.python_version()}")


def verdict(report: Report) -> str:
    parts = [f"{res.awd.profile} {res.train_ratio:.3f}x" for res in report.results]
    ok = all(res.train_ratio >= TARGET for res in report.results)
    where = "on CPU" if report.device.type == "cpu" else f"(target set for CPU; measured on {report.device.type})"
    return (f"verdict: AWD-LSTM / plain training throughput {where}: {', '.join(parts)} -> "
            + (f"meets the {TARGET:.2f}x target" if ok else f"BELOW the {TARGET:.2f}x target"))


def main(args) -> int:
    from .train import device_name, resolve_device
    device = resolve_device(getattr(args, "device", "auto") or "auto")
    kind = "cuda" if device.type == "cuda" else "cpu"
    d = DEFAULTS[kind]
    seconds = args.seconds if getattr(args, "seconds", None) is not None else d["seconds"]
    if not seconds > 0:
        raise ConfigError(f"--seconds {seconds}: must be > 0")
    profiles = getattr(args, "profiles", None) or list(DEFAULT_PROFILES)
    cases = [make_case(p, device) for p in profiles]
    print(header(device, device_name(device), torch.get_num_threads()), flush=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    report = run_bench(cases, device, seconds, d["rounds"], d["warmup"], log=log)
    print(report.table())
    print(verdict(report))
    if device.type == "cpu":
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS (ru_maxrss: whole process, all models, monotone): {rss:,.0f} MB")
    print(f"bench wall time {report.wall_s:.0f} s")
    return 0
