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

Every profile is measured at its own batch x bptt (stated in the table), on a CPU too: a paper-size step
(40 x 70 tokens) takes about 3 s on 2 cores, so there a round holds one step per model and phase. A
smaller batch would be quicker but not the same comparison: the regularizers' per-step costs (a mask over
every hidden-to-hidden matrix, the weight average) do not shrink with the batch, so their share grows.

On a shared machine wall-clock times are noisy; each round's two measurements are seconds apart, and
the table gives the range of the per-round ratios next to the ratio of the medians. The process CPU time
of each phase is recorded too, as a second estimate that other processes disturb less.
"""
from __future__ import annotations

import math
import os
import platform
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
# seconds: measuring time per model, phase and round; warmup: seconds of untimed steps per model and phase
# (at least one step each, and one more train step that measures memory).
DEFAULTS = {"cpu": dict(seconds=2.0, rounds=5, warmup=1.0), "cuda": dict(seconds=1.0, rounds=5, warmup=2.0)}


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
    """One size to measure: a config (sizes, batch x bptt, dropout rates, lr, clip, weight decay) and a
    vocabulary size."""
    name: str
    cfg: Config
    vocab_size: int


def make_case(profile: str) -> Case:
    """A named profile at its own sizes, batch and bptt; the vocabulary of its data set."""
    if profile not in PROFILES:
        raise ConfigError(f"bench profile {profile!r}: choose one of {', '.join(PROFILES)}")
    cfg = Config.from_profile(profile)
    return Case(profile, cfg, VOCAB_SIZES.get(cfg.dataset, VOCAB_SIZES["ptb"]))


@dataclass
class Row:
    """One model's measurements: tokens/s per round (wall clock and process CPU time) and memory."""
    profile: str
    model: str
    batch: int
    bptt: int
    params: int
    train: list[float] = field(default_factory=list)      # tokens per wall-clock second, one per round
    eval: list[float] = field(default_factory=list)
    train_cpu: list[float] = field(default_factory=list)  # tokens per second of process CPU time
    eval_cpu: list[float] = field(default_factory=list)
    saved_mb: float = math.nan                            # held for backward, parameters excluded
    peak_mb: float | None = None                          # CUDA only
    final_loss: float = math.nan

    @property
    def train_tok_s(self) -> float:
        return statistics.median(self.train)

    @property
    def eval_tok_s(self) -> float:
        return statistics.median(self.eval)


@dataclass
class Result:
    """AWD-LSTM and the plain model at one size."""
    awd: Row
    plain: Row

    @property
    def train_ratio(self) -> float:
        """AWD / plain training tokens/s: the ratio of the medians."""
        return self.awd.train_tok_s / self.plain.train_tok_s

    @property
    def eval_ratio(self) -> float:
        return self.awd.eval_tok_s / self.plain.eval_tok_s

    def paired(self, phase: str) -> list[float]:
        """AWD / plain within each round (the round's two measurements are seconds apart)."""
        return [a / b for a, b in zip(getattr(self.awd, phase), getattr(self.plain, phase))]

    def cpu_ratio(self, phase: str) -> float:
        """AWD / plain by process CPU time (medians): less sensitive to other processes on the machine."""
        return (statistics.median(getattr(self.awd, phase + "_cpu"))
                / statistics.median(getattr(self.plain, phase + "_cpu")))


@dataclass
class Report:
    results: list[Result]
    device: torch.device
    device_name: str
    threads: int
    seconds: float
    rounds: int
    warmup: float
    wall_s: float = 0.0

    def table(self) -> str:
        return format_table(self)


class _Runner:
    """One model with its optimizer, data cursor and carried hidden states; ``train_step``/``eval_step``
    each process one window and return its number of target tokens."""

    def __init__(self, kind: str, case: Case, device: torch.device, data: torch.Tensor):
        cfg = case.cfg
        self.kind, self.cfg, self.data, self.device = kind, cfg, data, device
        if kind == "awd":
            self.model = AWDLSTM.from_config(cfg.replace(tie_weights=True), case.vocab_size).to(device)
            # Averaging from the first step: the NT-ASGD step once it has triggered (its costly path).
            self.opt = NTASGD(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.wdecay, mode="asgd")
        else:
            self.model = PlainLSTMLM(case.vocab_size, cfg.emb_size, cfg.hidden_size, cfg.num_layers).to(device)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.pos = 0
        self.hidden = {"train": None, "eval": None}
        self.loss = torch.tensor(math.nan)

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
        """The training objective: cross-entropy, plus AR/TAR for AWD-LSTM. Returns (loss, cross-entropy)."""
        if self.kind == "awd":
            logits, hidden, raw, dropped = self.model(x, self._hidden("train"), return_h=True)
            raw_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            loss = raw_loss + ar_tar(raw[-1], dropped[-1], ALPHA, BETA)
        else:
            logits, hidden = self.model(x, self._hidden("train"))
            raw_loss = loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
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
        params = list(self.model.parameters())
        tensors = params + [p.grad for p in params if p.grad is not None]
        tensors += [v for s in self.opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        return _unique_bytes(tensors)

    def measure_memory(self) -> tuple[float, float | None]:
        """One training step with accounting: (MB held for backward, CUDA peak MB or None)."""
        self.model.train()
        x, y = self._window()
        params = {_storage_key(p) for p in self.model.parameters()}
        saved: dict = {}

        def pack(t):
            key = _storage_key(t)
            if key not in params:
                saved[key] = _storage_bytes(t)
            return t

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            own = self.resident_bytes()
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, raw_loss = self.forward_loss(x, y)
        self.backward_step(loss)
        self.loss = raw_loss.detach()
        peak = None
        if cuda:
            torch.cuda.synchronize(self.device)
            # The peak over this step, less what was allocated before it except this model's own resident
            # tensors: the other model's weights do not count.
            peak = (torch.cuda.max_memory_allocated(self.device) - before + own) / 2**20
        return sum(saved.values()) / 2**20, peak


def _storage_key(t: torch.Tensor):
    try:
        return ("storage", t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # tensors without a storage (e.g. opaque mkldnn)
        return ("tensor", id(t))


def _storage_bytes(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):
        return t.numel() * t.element_size()


def _unique_bytes(tensors) -> int:
    return sum({_storage_key(t): _storage_bytes(t) for t in tensors}.values())


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, seconds: float, device: torch.device) -> tuple[float, float]:
    """Run whole steps (at least one) for at least ``seconds``: (tokens per wall second, per CPU second)."""
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    tokens = 0
    while True:
        tokens += step()
        _sync(device)  # CUDA runs asynchronously: wait for the work before reading the clock
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            cpu = time.process_time() - cpu_start
            return tokens / elapsed, tokens / cpu if cpu > 0 else math.nan


def bench_case(case: Case, device: torch.device, seconds: float, rounds: int, warmup: float,
               seed: int = 0, log=None) -> Result:
    """Measure one size: warm-up, one step with memory accounting, then ``rounds`` alternating rounds
    (train AWD, train plain, eval AWD, eval plain)."""
    cfg = case.cfg
    torch.manual_seed(seed)
    # Synthetic ids, uniform over the vocabulary, the same for both models; 8 windows, then the cursor wraps.
    data = torch.randint(case.vocab_size, (8 * cfg.bptt + 1, cfg.batch_size), device=device)
    runners = [_Runner("awd", case, device, data), _Runner("plain", case, device, data)]
    rows = [Row(case.name, name, cfg.batch_size, cfg.bptt, count_parameters(r.model))
            for name, r in zip(("AWD-LSTM", "plain LSTM"), runners)]
    for r, row in zip(runners, rows):
        r.model.train()
        _timed(r.train_step, warmup, device)
        row.saved_mb, row.peak_mb = r.measure_memory()
        r.model.eval()
        _timed(r.eval_step, warmup / 2, device)
    for i in range(rounds):
        for phase in ("train", "eval"):
            for r, row in zip(runners, rows):  # AWD then plain, round after round
                r.model.train(phase == "train")
                wall, cpu = _timed(getattr(r, phase + "_step"), seconds, device)
                getattr(row, phase).append(wall)
                getattr(row, phase + "_cpu").append(cpu)
        if log:
            log(f"  {case.name} round {i + 1}/{rounds}: train "
                + " / ".join(f"{row.train[-1]:,.0f}" for row in rows)
                + " tok/s, eval " + " / ".join(f"{row.eval[-1]:,.0f}" for row in rows) + " tok/s (AWD / plain)")
    for r, row in zip(runners, rows):
        row.final_loss = float(r.loss)
    return Result(*rows)


def run_bench(cases: list[Case], device: torch.device, seconds: float, rounds: int, warmup: float,
              log=None) -> Report:
    """Measure every case in turn; the report's ``table()`` is what ``python -m awd bench`` prints."""
    from .train import device_name
    start = time.perf_counter()
    results = [bench_case(c, device, seconds, rounds, warmup, log=log) for c in cases]
    return Report(results, device, device_name(device), torch.get_num_threads(), seconds, rounds, warmup,
                  wall_s=time.perf_counter() - start)


# --- the table ----------------------------------------------------------------------------------------------
def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


def format_table(report: Report) -> str:
    cuda = report.device.type == "cuda"
    head = ["profile", "model", "params", "batch x bptt", "train tok/s", "eval tok/s",
            "saved for backward (MB)"] + (["CUDA peak (MB)"] if cuda else [])
    blocks = []
    for res in report.results:
        lines = []
        for row in (res.awd, res.plain):
            lines.append([row.profile, row.model, _count(row.params), f"{row.batch} x {row.bptt}",
                          f"{row.train_tok_s:,.0f}", f"{row.eval_tok_s:,.0f}", f"{row.saved_mb:,.1f}"]
                         + ([f"{row.peak_mb:,.1f}"] if cuda else []))
        lines.append(["", "AWD / plain", "", "", f"{res.train_ratio:.3f}x", f"{res.eval_ratio:.3f}x",
                      f"{res.awd.saved_mb / res.plain.saved_mb:.2f}x"]
                     + ([f"{res.awd.peak_mb / res.plain.peak_mb:.2f}x"] if cuda else []))
        pt, pe = res.paired("train"), res.paired("eval")
        lines.append(["", "  per round", "", "", f"{min(pt):.2f}-{max(pt):.2f}", f"{min(pe):.2f}-{max(pe):.2f}",
                      ""] + ([""] if cuda else []))
        if not cuda:
            lines.append(["", "  by CPU time", "", "", f"{res.cpu_ratio('train'):.3f}x",
                          f"{res.cpu_ratio('eval'):.3f}x", ""])
        blocks.append(lines)
    widths = [max(len(h), *(len(line[i]) for b in blocks for line in b)) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 2 or i == 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(head), "  ".join("-" * w for w in widths)]
    for i, b in enumerate(blocks):
        out += ([""] if i else []) + [fmt(line) for line in b]
    bad = [f"{row.profile} {row.model}" for res in report.results for row in (res.awd, res.plain)
           if not math.isfinite(row.final_loss)]
    foot = [
        "train: forward + loss + backward + clipping + optimizer step; eval: forward + loss, no_grad, eval mode.",
        f"tok/s: medians of {report.rounds} alternating rounds (AWD, plain, AWD, plain ...) of >= {report.seconds:g} s "
        "per model and phase (whole steps), after warm-up. AWD / plain: ratio of the medians; per round: range "
        "of the paired ratios within each round" + ("; by CPU time: ratio of median tokens per second of "
                                                   "process CPU time." if not cuda else "."),
        "AWD-LSTM: dropout/dropouth/dropouti/dropoute/wdrop at the profile's rates, AR/TAR (alpha 2, beta 1), "
        "clipping, NT-ASGD step with averaging on; plain LSTM: same sizes, tied, no dropout, no AR/TAR, "
        "plain SGD, same clipping. Synthetic uniform token ids.",
        "saved for backward: bytes the autograd graph holds at the end of one training forward (each storage "
        "once, parameters excluded)."
        + (" CUDA peak: max_memory_allocated over one train step, as if the model were alone on the GPU."
           if cuda else ""),
    ] + [f"warning: non-finite training loss in {b}" for b in bad]
    return "\n".join(out + [""] + foot)


def header(device: torch.device, name: str, threads: int) -> str:
    load = _loadavg()
    return (f"torch {torch.__version__} | device {device} ({name}) | {threads} threads | "
            f"python {platform.python_version()}"
            + (f" | 1-min load average {load:.1f} on {os.cpu_count()} cores" if load is not None else ""))


def verdict(report: Report) -> str:
    """The issue's target: AWD-LSTM trains at >= 0.90x the plain model's tokens/s on CPU."""
    cpu = report.device.type == "cpu"
    parts = [f"{res.awd.profile} {res.train_ratio:.3f}x"
             + (f" (by CPU time {res.cpu_ratio('train'):.3f}x)" if cpu else "") for res in report.results]
    ok = all(res.train_ratio >= TARGET for res in report.results)
    where = "on CPU" if cpu else f"on {report.device.type} (the target is set for CPU)"
    return (f"verdict: AWD-LSTM / plain training tokens/s {where}: {', '.join(parts)} -> "
            + (f"meets the {TARGET:.2f}x target" if ok else f"BELOW the {TARGET:.2f}x target"))


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _busy_warning(before: float | None, after: float | None, own: int) -> str | None:
    """Other processes competing for the cores make wall-clock numbers unreliable: say so."""
    loads = [x for x in (before, after) if x is not None]
    cores = os.cpu_count() or 1
    if not loads or max(loads) <= min(cores, own) + 0.75:
        return None
    return (f"warning: 1-min load average {max(loads):.1f} on {cores} cores (this bench accounts for about "
            f"{min(cores, own)}): other processes competed for the CPU, so the wall-clock tok/s and their "
            "ratios are noisy; the CPU-time ratio is less affected. Rerun on a quiet machine to confirm.")


def main(args) -> int:
    """``python -m awd bench``: ``args.profiles`` (list or None), ``args.device``, ``args.seconds``."""
    from .train import device_name, resolve_device
    device = resolve_device(getattr(args, "device", None) or "auto")
    d = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    seconds = args.seconds if getattr(args, "seconds", None) is not None else d["seconds"]
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ConfigError(f"--seconds {seconds}: must be > 0")
    cases = [make_case(p) for p in (getattr(args, "profiles", None) or DEFAULT_PROFILES)]
    print(header(device, device_name(device), torch.get_num_threads()), flush=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    load_before = _loadavg()
    report = run_bench(cases, device, seconds, d["rounds"], min(d["warmup"], seconds), log=log)
    print(report.table())
    print(verdict(report))
    busy = _busy_warning(load_before, _loadavg(), torch.get_num_threads() if device.type == "cpu" else 1)
    if busy:
        print(busy)
    if device.type == "cpu" and sys.platform != "win32":
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS (ru_maxrss: the whole process, both models, never decreases): {rss:,.0f} MB")
    print(f"bench wall time {report.wall_s:.0f} s")
    return 0
