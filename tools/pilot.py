"""The pilot that chose the book profile (issue: "choose the book profile by a pilot, not a guess").

Every setting tried is listed here and trained into results/pilot/ (config, per-epoch history, summary),
so the book's "How we scaled it down" section shows them all. Resumable: run it again to continue.

    python tools/pilot.py [--jobs 2] [--only NAME ...]
    python tools/pilot.py --lab [NAME ...]       # the round that chose the lab profile (results/pilot/lab/)
"""
import argparse

from awd.config import Config
from awd.experiments import NO_DROPOUT, overrides_of, run_grid

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

# The lab round (issue 13: "a lab profile that teaches the book's lesson in minutes"). The lab profile before
# it, the round's starting point, trained the book's model on 100k tokens for 10 epochs; there "no dropout" was
# best and NT-ASGD never fired. Each setting trains the three variants whose directions the lab must show
# (no dropout overfits and ends worse than full; tying helps; the full model's NT-ASGD fires), for more epochs
# than a lab run may take: a shorter run is the same run cut short (nothing depends on the epoch count), so the
# epoch count is chosen afterwards on these curves' validation perplexity, as are the settings.
OLD_LAB = dict(dataset="ptb", emb_size=128, hidden_size=256, num_layers=3, batch_size=20, bptt=35,
               max_train_tokens=100_000, epochs=10, nonmono=2, test_batch_size=10, seed=0, **HALF_RATES)
LAB_VARIANTS = ("full", "no dropout", "no tying")
LAB_PILOT = {
    "the old lab: 100k tokens, 10 epochs": {},
    # less data overfits sooner; validation on a 20k-token prefix (a quarter of the split) saves 5 s an epoch
    "40k tokens, batch 20": dict(max_train_tokens=40_000, epochs=25, max_eval_tokens=20_000),
    # twice the optimizer steps per token (each stream twice as long), at a little more time per token
    "40k tokens, batch 10": dict(max_train_tokens=40_000, epochs=25, max_eval_tokens=20_000, batch_size=10),
}
LAB_DIR = "results/pilot/lab"


def lab_configs(names=None) -> dict:
    """(setting, variant) -> config, for the lab round."""
    out = {}
    for name in names or LAB_PILOT:
        base = Config(**{**OLD_LAB, **LAB_PILOT[name]}, profile="lab")
        for variant in LAB_VARIANTS:
            out[(name, variant)] = base.replace(**overrides_of(variant, base))
    return out


def configs(names=None):
    settings = {**{k: {**BASE, **v} for k, v in PILOT.items()}, **{k: {**ROUND2, **v} for k, v in PILOT2.items()}}
    return {name: Config.from_profile("book", **settings[name]) for name in (names or settings)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="+", choices=[*PILOT, *PILOT2])
    ap.add_argument("--lab", nargs="*", choices=list(LAB_PILOT), help="the lab round (all settings if none named)")
    args = ap.parse_args()
    if args.lab is not None:
        run_grid(list(lab_configs(args.lab or None).values()), LAB_DIR, jobs=args.jobs)
    else:
        run_grid(list(configs(args.only).values()), "results/pilot", jobs=args.jobs)
