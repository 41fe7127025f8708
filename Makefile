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

# the book's PTB grid at PROFILE (default book: 7 variants x 3 seeds, two runs side by side); resumable,
# finished runs are skipped, an interrupted one continues from its last epoch
grid: venv
	$(PY) -m awd grid --profile $(or $(PROFILE),book)

# WikiText-2: full and no tying at PROFILE (default book), 3 seeds; about twice the cost per run of PTB's
grid-wt2: venv
	$(PY) -m awd grid --profile $(or $(PROFILE),book) --dataset wikitext-2

test: venv
	$(PY) -m pytest -q --durations=25

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) -m awd bench

clean:
	rm -rf _build book/chapters
