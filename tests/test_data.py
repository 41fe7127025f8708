"""Tests for awd.data: corpus sizes, checksums, the downloader (local server only), caching, batching.

The real corpora come from $AWD_DATA_DIR (e.g. AWD_DATA_DIR=/work/shared/data), falling back to the
default cache folder; tests that need them are skipped when neither has them. Nothing here touches
the outside network: downloads go to a local http.server on 127.0.0.1.
"""

import functools
import hashlib
import http.server
import os
import random
import shutil
import threading
from pathlib import Path

import pytest
import torch

from awd import data as D
from awd.data import (
    DATASETS, SIZES, VOCAB_SIZES, ChecksumMismatch, Corpus, DataNotFound, Dictionary, batchify, bptt_batches,
    corpus_stats, download, sample_seq_len,
)


def _source_root() -> Path:
    """The folder holding ptb/ and wikitext-2/: $AWD_DATA_DIR, else the default download cache."""
    env = os.environ.get("AWD_DATA_DIR")
    return Path(env) if env else D._default_cache_dir()


def _require(name: str) -> Path:
    root = _source_root()
    if D._missing(root / name):
        pytest.skip(f"{name} data not found in {root / name}: set AWD_DATA_DIR to a folder holding "
                    f"{name}/train.txt, valid.txt, test.txt (e.g. AWD_DATA_DIR=/work/shared/data)")
    return root


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    # Each test states its own data/cache places; none may fall back on the user's settings.
    monkeypatch.delenv("AWD_CACHE_DIR", raising=False)


@pytest.fixture(scope="module")
def ptb(tmp_path_factory):
    root = _require("ptb")
    return Corpus.load("ptb", data_dir=root, download=False, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def wt2(tmp_path_factory):
    root = _require("wikitext-2")
    return Corpus.load("wikitext-2", data_dir=root, download=False, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def ptb_copy(tmp_path):
    """A writable copy of the PTB files: tmp_path/ptb/{train,valid,test}.txt."""
    root = _require("ptb")
    dest = tmp_path / "copy" / "ptb"
    dest.mkdir(parents=True)
    for f in D.FILES:
        shutil.copyfile(root / "ptb" / f, dest / f)
    return dest


def _flip_byte(path: Path, offset: int = 1000) -> None:
    b = bytearray(path.read_bytes())
    b[offset] ^= 0x01
    path.write_bytes(bytes(b))


# ---------------------------------------------------------------------------------------------------
# Sizes and tokenisation


def test_ptb_sizes(ptb):
    assert len(ptb.dictionary) == VOCAB_SIZES["ptb"] == 10_000
    assert (ptb.train.numel(), ptb.valid.numel(), ptb.test.numel()) == SIZES["ptb"] == (929_589, 73_760, 82_430)
    for t in (ptb.train, ptb.valid, ptb.test):
        assert t.dtype == torch.long and t.dim() == 1
    assert ptb.name == "ptb"


def test_wikitext2_sizes(wt2):
    assert len(wt2.dictionary) == VOCAB_SIZES["wikitext-2"] == 33_278
    assert (wt2.train.numel(), wt2.valid.numel(), wt2.test.numel()) == SIZES["wikitext-2"] == (
        2_088_628, 217_646, 245_569)
    assert wt2.name == "wikitext-2"


def test_ptb_first_line_and_eos(ptb):
    words = [ptb.dictionary.idx2word[i] for i in ptb.train[:25].tolist()]
    # The first PTB training line, then <eos>; ids follow the order of first appearance.
    assert words[:3] == ["aer", "banknote", "berlitz"]
    eos = ptb.dictionary.word2idx["<eos>"]
    assert ptb.train[0].item() == 0
    assert (ptb.train == eos).sum().item() == 42_068  # one <eos> per line
    assert ptb.train[-1].item() == eos


def test_dictionary_and_tokenizer():
    d = Dictionary()
    assert d.add_word("a") == 0 and d.add_word("b") == 1 and d.add_word("a") == 0
    assert len(d) == 2 and d.idx2word == ["a", "b"] and d.word2idx == {"a": 0, "b": 1}
    ids = D._tokenize(b" x y x \n \n z\n", d)
    # Blank lines still yield an <eos>, as in the reference tokeniser.
    assert [d.idx2word[i] for i in ids.tolist()] == ["x", "y", "x", "<eos>", "<eos>", "z", "<eos>"]


def test_corpus_stats(ptb):
    s = corpus_stats(ptb)
    assert s["vocab_size"] == 10_000
    assert s["splits"]["valid"]["tokens"] == 73_760
    assert s["splits"]["test"]["oov_rate"] == 0.0
    assert 0.03 < s["splits"]["train"]["unk_rate"] < 0.07


def test_folder_path_loads_unverified(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    for f, text in zip(D.FILES, ["a b c\nb c\n", "c a\n", "d\n"]):
        (folder / f).write_text(text)
    c = Corpus.load(folder, cache_dir=tmp_path / "cache")
    assert c.name == "tiny"
    assert c.dictionary.idx2word == ["a", "b", "c", "<eos>", "d"]
    assert c.test.tolist() == [4, 3]


# ---------------------------------------------------------------------------------------------------
# Finding and verifying the files


def test_found_via_env_and_verified(ptb_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("AWD_DATA_DIR", str(ptb_copy.parent))
    c = Corpus.load("ptb", download=False, cache_dir=tmp_path / "cache")
    assert c.train.numel() == 929_589

    _flip_byte(ptb_copy / "valid.txt")
    with pytest.raises(ChecksumMismatch) as e:
        Corpus.load("ptb", download=False, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    actual = hashlib.sha256((ptb_copy / "valid.txt").read_bytes()).hexdigest()
    assert "ptb/valid.txt" in msg and DATASETS["ptb"]["valid.txt"]["sha256"] in msg and actual in msg


def test_corrupted_data_dir_rejected(ptb_copy, tmp_path, monkeypatch):
    monkeypatch.delenv("AWD_DATA_DIR", raising=False)
    _flip_byte(ptb_copy / "train.txt", offset=123_456)
    with pytest.raises(ChecksumMismatch, match=r"ptb/train\.txt"):
        Corpus.load("ptb", data_dir=ptb_copy.parent, download=False, cache_dir=tmp_path / "cache")


def test_missing_data_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("AWD_DATA_DIR", str(tmp_path / "nothing-here"))
    with pytest.raises(DataNotFound) as e:
        Corpus.load("ptb", download=False, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for needle in ("AWD_DATA_DIR", "train.txt", "valid.txt", "test.txt", "download=False",
                   str(tmp_path / "nothing-here" / "ptb"), str(tmp_path / "cache" / "ptb")):
        assert needle in msg
    assert not (tmp_path / "cache").exists()  # nothing written on the way


def test_unknown_name():
    with pytest.raises(DataNotFound, match="neither a known data set"):
        Corpus.load("no-such-corpus", download=False)


# ---------------------------------------------------------------------------------------------------
# Downloading, against a local HTTP server only


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """Serve a fresh folder on 127.0.0.1; yields (folder, base_url)."""
    # urllib would send even 127.0.0.1 through an http_proxy set in the environment.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _serve_ptb(www: Path) -> None:
    root = _require("ptb")
    for f in D.FILES:
        shutil.copyfile(root / "ptb" / f, www / f)


def test_download_success(http_root, tmp_path):
    www, url = http_root
    _serve_ptb(www)
    dest = download("ptb", tmp_path / "dl", base_url=url)
    assert sorted(os.listdir(dest)) == sorted(D.FILES)  # no temp files left
    for f in D.FILES:
        assert hashlib.sha256((dest / f).read_bytes()).hexdigest() == DATASETS["ptb"][f]["sha256"]


def test_download_corrupted_leaves_nothing(http_root, tmp_path):
    www, url = http_root
    _serve_ptb(www)
    _flip_byte(www / "valid.txt")
    dest = tmp_path / "dl"
    with pytest.raises(ChecksumMismatch) as e:
        download("ptb", dest, base_url=url)
    assert "ptb/valid.txt" in str(e.value) and DATASETS["ptb"]["valid.txt"]["sha256"] in str(e.value)
    # train.txt came first and was good; the bad valid.txt and its temp file are gone.
    assert os.listdir(dest) == ["train.txt"]


def test_load_downloads_into_cache(http_root, tmp_path, monkeypatch):
    www, url = http_root
    _serve_ptb(www)
    monkeypatch.delenv("AWD_DATA_DIR", raising=False)
    for f in D.FILES:  # point the origins at the local server
        monkeypatch.setitem(DATASETS["ptb"][f], "url", url + f)
    cache = tmp_path / "cache"
    c = Corpus.load("ptb", cache_dir=cache)
    assert len(c.dictionary) == 10_000
    assert sorted(os.listdir(cache / "ptb")) == sorted(D.FILES)


def test_load_network_failure_is_data_not_found(http_root, tmp_path, monkeypatch):
    _, url = http_root  # serves an empty folder: every file is a 404
    monkeypatch.delenv("AWD_DATA_DIR", raising=False)
    for f in D.FILES:
        monkeypatch.setitem(DATASETS["ptb"][f], "url", url + f)
    with pytest.raises(DataNotFound, match="(?s)failed.*AWD_DATA_DIR"):
        Corpus.load("ptb", cache_dir=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------------
# Token cache


def test_token_cache_is_used(ptb_copy, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = Corpus.load("ptb", data_dir=ptb_copy.parent, download=False, cache_dir=cache)
    files = list((cache / "tokens").glob("*.pt"))
    assert len(files) == 1
    assert not [p for p in (cache / "tokens").iterdir() if p.suffix != ".pt"]  # no temp files

    def boom(*a, **k):
        raise AssertionError("tokeniser called although the cache holds the tokens")

    monkeypatch.setattr(D, "_tokenize", boom)
    second = Corpus.load("ptb", data_dir=ptb_copy.parent, download=False, cache_dir=cache)
    assert second.dictionary.idx2word == first.dictionary.idx2word
    assert second.dictionary.word2idx == first.dictionary.word2idx
    for s in D.SPLITS:
        assert torch.equal(getattr(second, s), getattr(first, s))


def test_token_cache_invalidated_by_text_change(tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    folder.mkdir()
    for f in D.FILES:
        (folder / f).write_text("a b\n")
    cache = tmp_path / "cache"
    assert Corpus.load(folder, cache_dir=cache).valid.tolist() == [0, 1, 2]
    (folder / "valid.txt").write_text("b c\n")
    c = Corpus.load(folder, cache_dir=cache)
    assert [c.dictionary.idx2word[i] for i in c.valid.tolist()] == ["b", "c", "<eos>"]
    assert len(list((cache / "tokens").glob("*.pt"))) == 2


def test_unreadable_token_cache_is_rebuilt(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    for f in D.FILES:
        (folder / f).write_text("a b\n")
    cache = tmp_path / "cache"
    Corpus.load(folder, cache_dir=cache)
    (pt,) = (cache / "tokens").glob("*.pt")
    pt.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable token cache"):
        c = Corpus.load(folder, cache_dir=cache)
    assert c.train.tolist() == [0, 1, 2]
    assert Corpus.load(folder, cache_dir=cache).train.tolist() == [0, 1, 2]  # rewritten


# ---------------------------------------------------------------------------------------------------
# Batching


def test_batchify():
    data = torch.arange(103)
    b = batchify(data, 4)
    assert b.shape == (25, 4) and b.is_contiguous()
    # Column j is the j-th contiguous stretch of the stream; the 3-token tail is dropped.
    for j in range(4):
        assert torch.equal(b[:, j], torch.arange(25 * j, 25 * (j + 1)))
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(3), 4)


def test_sample_seq_len_distribution():
    rng = random.Random(1234)
    bptt, n = 70, 20_000
    draws = [sample_seq_len(bptt, rng) for _ in range(n)]
    assert all(isinstance(d, int) for d in draws)
    assert min(draws) >= 5
    # The two modes (70 and 35, sd 5) are 7 sd apart: below the midpoint means "short base".
    short = sum(d < 52.5 for d in draws) / n
    assert abs(short - 0.05) < 0.01
    # int() truncates, which lowers the mean by about 0.5.
    expected = 0.95 * 70 + 0.05 * 35 - 0.5
    assert abs(sum(draws) / n - expected) < 0.5
    assert min(sample_seq_len(6, rng) for _ in range(2000)) == 5  # the floor at 5 binds
    # Same seed, same lengths: the trainer relies on this for exact resume.
    assert [sample_seq_len(70, random.Random(7)) for _ in range(3)] == \
           [sample_seq_len(70, random.Random(7)) for _ in range(3)]


def _check_tiling(source, batches, bptt):
    ys = []
    for x, y, scale in batches:
        assert x.shape == y.shape and x.size(1) == source.size(1)
        assert torch.equal(x[1:], y[:-1])  # targets are the inputs shifted by one
        assert scale == x.size(0) / bptt
        ys.append(y)
    assert torch.equal(torch.cat(ys), source[1:])  # every target exactly once, in order
    return [y.size(0) for y in ys]


def test_bptt_batches_variable():
    source = batchify(torch.arange(4 * 1000), 4)
    lengths = _check_tiling(source, bptt_batches(source, 70, rng=random.Random(0)), 70)
    assert len(set(lengths)) > 5  # lengths do vary
    again = [y.size(0) for _, y, _ in bptt_batches(source, 70, rng=random.Random(0))]
    assert again == lengths


def test_bptt_batches_fixed():
    source = batchify(torch.arange(3 * 1001), 3)  # T = 1001: 1000 targets = 14 * 70 + 20
    lengths = _check_tiling(source, bptt_batches(source, 70, variable=False), 70)
    assert lengths == [70] * 14 + [20]


def test_bptt_batches_needs_rng():
    source = batchify(torch.arange(100), 2)
    with pytest.raises(ValueError, match="rng"):
        next(bptt_batches(source, 10))
