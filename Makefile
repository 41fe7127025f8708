# One entry point. `make book` is the main job, `make test` runs the tests; both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The data sets: ../shared/data when it is there and AWD_DATA_DIR is unset; otherwise awd downloads them.
ifeq ($(AWD_DATA_DIR),)
ifneq ($(wildcard ../shared/data/ptb/train.txt),)
export AWD_DATA_DIR := $(abspath ../shared/data)
endif
endif

.PHONY: venv book grid grid-wt2 test test-fast lab bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

lab: venv
	$(PY) -m awd train --profile lab

# the book: every chapter of _toc.yml through papermill (PROFILE: default in tools/build_book.py), then
# _build/html; it reads results/ and stops on a missing run unless TRAIN=1
book: venv
	$(PY) tools/build_book.py $(if $(PROFILE),--profile $(PROFILE)) $(if $(TRAIN),--train)

# the book's PTB grid at PROFILE (default book: the 16 rows of the book's table x 3 seeds, in the order
# awd.experiments.GRID_STAGES, two runs side by side); resumable,
# finished runs are skipped, an interrupted one continues from its last epoch
grid: venv
	$(PY) -m awd grid --profile $(or $(PROFILE),book)

# WikiText-2: full and no tying at PROFILE (default book), 3 seeds; about twice the cost per run of PTB's
grid-wt2: venv
	$(PY) -m awd grid --profile $(or $(PROFILE),book) --dataset wikitext-2

# two pytest workers, one per core, each torch single-threaded (two-thread torches beside each other
# thrash: the smoke pointer evaluation of chapter 6, 2.4 s on one thread, took 50 s on two beside
# the grid's runs). --dist loadfile keeps a file's tests, and so its session fixtures, in one worker:
# the smoke build of the book (tests/test_book.py), a chapter's in-repo run (tests/test_chapters.py),
# the Slurm cluster (tests/test_slurm.py). (Not loadgroup: on pytest 9.2 it silently stops grouping,
# pytest-dev/pytest-xdist#1386.)
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(or $(WORKERS),2) --dist loadfile

test: venv
	$(PYTEST) --durations=25

test-fast: venv
	$(PYTEST) -m "not slow"

bench: venv
	$(PY) -m awd bench

clean:
	rm -rf _build book/chapters
