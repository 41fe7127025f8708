"""The pilot that chose the book profile (issue: "choose the book profile by a pilot, not a guess").

Every setting tried is listed here and trained into results/pilot/ (config, per-epoch history, summary),
so the book's "How we scaled it down" section shows them all. Resumable: run it again to continue.

    python tools/pilot.py [--jobs 2] [--only NAME ...]
"""
import argparse

from awd.config import Config
from awd.experiments import NO_DROPOUT, run_grid

PAPER_RATES = dict(dropouti=0.4, dropouth=0.3, dropout=0.4, dropoute=0.1, wdrop=0.5)
HALF_RATES = dict(dropouti=0.2, dropouth=0.15, dropout=0.2, dropoute=0.05, wdrop=0.25)
# Round 1: the book's model on the first 250k tokens of PTB for 20 epochs.
BASE = dict(max_train_tokens=250_000, epochs=20, nonmono=5)
PILOT = {
    # Does an unregularized model overfit at this size and data? (no dropout of any kind, no AR/TAR)
    "unregularized": dict(**NO_DROPOUT, alpha=0.0, beta=0.0),
    # The paper's rates, tuned for 1150-unit layers: does the small model underfit under them?
    "paper rates": PAPER_RATES,
    # The paper's rates halved.
    "half rates": HALF_RATES,
}


# Round 2: the book profile's data and rates (150k tokens, half rates, 50 epochs), trained with plain SGD and
# the paper's nonmono = 5 in the config. Plain SGD is NT-ASGD before its trigger, so this one curve shows,
# for every nonmono, the check at which NT-ASGD would start averaging.
ROUND2 = dict(max_train_tokens=150_000, epochs=50, **HALF_RATES)
PILOT2 = {
    "book data, SGD, nonmono 5": dict(optimizer="sgd", nonmono=5),
}
# The book profile's own runs (results/, `make grid`) then show whether its "no dropout" variant overfits
# and when its full model's NT-ASGD triggers.


def configs(names=None):
    settings = {**{k: {**BASE, **v} for k, v in PILOT.items()}, **{k: {**ROUND2, **v} for k, v in PILOT2.items()}}
    return {name: Config.from_profile("book", **settings[name]) for name in (names or settings)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="+", choices=[*PILOT, *PILOT2])
    args = ap.parse_args()
    run_grid(list(configs(args.only).values()), "results/pilot", jobs=args.jobs)
