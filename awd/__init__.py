"""AWD-LSTM (Merity, Keskar & Socher 2017, "Regularizing and Optimizing LSTM Language Models"), small and exact.

    from awd import Config, train
    run = train(Config.from_profile("lab", wdrop=0.0))
    run.summary["test_ppl"]
"""
from .config import PROFILES, Config, ConfigError
from .data import Corpus, batchify, bptt_batches
from .model import AWDLSTM, count_parameters
from .optim import NTASGD
from .regularize import EmbeddingDropout, LockedDropout, WeightDrop, ar_tar
from .train import Run, evaluate, load_run, train

__all__ = ["AWDLSTM", "NTASGD", "PROFILES", "Config", "ConfigError", "Corpus", "EmbeddingDropout",
           "LockedDropout", "Run", "WeightDrop", "ar_tar", "batchify", "bptt_batches", "count_parameters",
           "evaluate", "load_run", "train"]
