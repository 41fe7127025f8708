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
BASE = dict(max_train_tokens=250_000, epochs=20)
PILOT = {
    # Does an unregularized model overfit at this size and data? (no dropout of any kind, no AR/TAR)
    "unregularized": dict(**NO_DROPOUT, alpha=0.0, beta=0.0),
    # The paper's rates, tuned for 1150-unit layers: does the small model underfit under them?
    "paper rates": PAPER_RATES,
    # The paper's rates halved.
    "half rates": HALF_RATES,
}


# Round 2 is the book profile itself (awd/config.py: half rates, 150k tokens, 50 epochs). Its SGD run shows
# when NT-ASGD's trigger fires and its "no dropout" run whether the model overfits; both are grid runs in
# results/, trained by `make grid`, so they are not repeated here.


def configs(names=None):
    return {name: Config.from_profile("book", **{**BASE, **PILOT[name]}) for name in (names or PILOT)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="+", choices=list(PILOT))
    args = ap.parse_args()
    run_grid(list(configs(args.only).values()), "results/pilot", jobs=args.jobs)
