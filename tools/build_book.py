#!/usr/bin/env python3
"""Build the AWD-LSTM book: execute every chapter with papermill, then build the HTML.

    tools/build_book.py [--profile PROFILE] [--train] [--no-execute] [--only NAME ...] [-p KEY=VALUE ...]

1. Reads _toc.yml. Every page listed as ``book/chapters/NN_name`` is the papermill output of
   ``notebooks/NN_name.ipynb``; the TOC is the one list of chapters.
   Each chapter's second code cell is the setup cell of tools/bookfiles.py (from _config.yml's repository);
   one that differs stops the build (``--write-setup`` rewrites them).
2. Runs each of those notebooks through papermill with the venv's python kernel, cwd ``notebooks/``,
   parameters ``profile=PROFILE`` (default "book"; smoke runs go to ``_build/results-smoke``),
   ``awd_source`` (this commit of _config.yml's repository, what the setup cell would install) and any
   ``-p KEY=VALUE``; writes ``book/chapters/NN_name.ipynb`` (gitignored build output). The chapters read the
   runs stored in ``results/``; a missing one stops the build with the list of what to train and the command,
   unless ``--train`` is given (``train_missing=True``) or the profile is smoke, which trains in seconds.
3. Prepares the executed copy for reading: the ``parameters`` and papermill's ``injected-parameters``
   cells get ``remove-cell``, the ``setup`` cell ``hide-cell`` (one click away); widget outputs (tqdm.auto
   bars) are dropped; carriage-return progress lines are reduced to their final state; long text outputs are
   collapsed (``hide-output``).
   stderr is removed from the pages by ``nb_output_stderr: remove`` in _config.yml.
4. Builds ``_build/html`` with ``jupyter-book build . --all -W -n --keep-going`` (warnings are errors).
5. Checks the HTML with tools/check_html.py (pages, images, local MathJax, internal links).

Exit status is non-zero if any step fails.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bookfiles import (BUILD, CHAPTER_PREFIX, CHAPTERS, HTML, NOTEBOOKS, ROOT, SETUP_TAG,  # noqa: E402
                       chapter_names, repository, setup_source, toc_files)

# The profile whose runs are committed under results/ (so `make book` trains nothing): the book's grid,
# 7 variants x 3 seeds. `--profile lab` builds from the small lab runs, also committed.
DEFAULT_PROFILE = "book"
# Runs at the smoke profile are throwaway (seconds each): they go to a gitignored folder, never results/.
SMOKE_RESULTS = BUILD / "results-smoke"
KERNEL = "python3"  # the venv's own ipykernel: jupyter_client runs it with sys.executable
LONG_OUTPUT_LINES = 25  # text outputs longer than this are collapsed behind a toggle
HIDDEN_TAGS = ("parameters", "injected-parameters")
# the setup cell stays on the page behind a toggle: a reader opening the chapter elsewhere sees what it installs
FOLDED_TAGS = (SETUP_TAG,)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _ensure_venv() -> None:
    """Re-run under the repository's .venv if we were started with another interpreter.

    papermill starts the kernel with the interpreter that runs this script, and the chapters
    import ``awd``, which is installed (editable) in .venv by ``make venv``.
    """
    venv_python = ROOT / ".venv" / "bin" / "python"
    if os.environ.get("AWD_BOOK_NO_REEXEC") or not venv_python.exists():
        return
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.environ["AWD_BOOK_NO_REEXEC"] = "1"
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _has_tag(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def _add_tag(cell, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def _final_line_state(text: str) -> str:
    """What a terminal shows for text with carriage returns (tqdm bars): the last segment per line."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def prepare_for_book(nb) -> dict:
    """Tags and output clean-up applied to an executed notebook before the HTML build."""
    stats = {"hidden": 0, "collapsed": 0, "widgets_dropped": 0}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        if any(_has_tag(cell, t) for t in HIDDEN_TAGS):
            _add_tag(cell, "remove-cell")
            stats["hidden"] += 1
        elif any(_has_tag(cell, t) for t in FOLDED_TAGS):
            _add_tag(cell, "hide-cell")
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") in ("display_data", "execute_result") and WIDGET_MIME in out.get("data", {}):
                stats["widgets_dropped"] += 1
                continue
            if out.get("output_type") == "stream":
                out["text"] = _final_line_state(out.get("text", ""))
            outputs.append(out)
        cell["outputs"] = outputs
        text_lines = sum(
            len(out.get("text", "").splitlines())
            for out in outputs
            if out.get("output_type") == "stream" and out.get("name") == "stdout"
        )
        if text_lines > LONG_OUTPUT_LINES and not any(
            _has_tag(cell, t) for t in ("remove-output", "remove-cell", "hide-output", "hide-cell")
        ):
            _add_tag(cell, "hide-output")
            stats["collapsed"] += 1
    nb.metadata.pop("widgets", None)
    return stats


def setup_problems(names: list[str]) -> list[str]:
    """Chapters whose setup cell is missing, misplaced (it must follow the parameters cell) or differs from
    `bookfiles.setup_source` (the repository of _config.yml)."""
    import nbformat

    expected, problems = setup_source(), []
    for name in names:
        code = [c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
        tags = [c.metadata.get("tags", []) for c in code]
        if len(code) < 2 or "parameters" not in tags[0] or SETUP_TAG not in tags[1]:
            problems.append(f"notebooks/{name}.ipynb: the second code cell, after the parameters, must be the "
                            f"cell tagged {SETUP_TAG!r}")
        elif code[1].source != expected:
            problems.append(f"notebooks/{name}.ipynb: its setup cell differs from the one _config.yml's "
                            "repository gives")
    return problems


def write_setup(names: list[str]) -> None:
    """Put `bookfiles.setup_source` into each chapter, right after its parameters cell."""
    import nbformat
    from nbformat.v4 import new_code_cell

    for name in names:
        path = NOTEBOOKS / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        setup = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
        if setup:
            setup[0].source = setup_source()
        else:
            at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
            cell = new_code_cell(setup_source(), metadata={"tags": [SETUP_TAG]})
            if (nb.nbformat, nb.nbformat_minor) < (4, 5):
                cell.pop("id")  # cell ids came with nbformat 4.5
            nb.cells.insert(at + 1, cell)
        nbformat.write(nb, path)
        print(f"setup cell written: {path.relative_to(ROOT)}")


def source_spec() -> str:
    """The pip source of this build: _config.yml's repository at the commit checked out here."""
    url, branch = repository()
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return f"git+{url}@{proc.stdout.strip() if proc.returncode == 0 else branch}"


def execute(names: list[str], parameters: dict, kernel: str = KERNEL) -> None:
    import nbformat
    import papermill

    # The chapters import `awd` from the repository even if the editable install is missing.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silence debugpy's frozen-modules note
    CHAPTERS.mkdir(parents=True, exist_ok=True)
    shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    total = time.perf_counter()
    for i, name in enumerate(names, 1):
        src = NOTEBOOKS / f"{name}.ipynb"
        dst = CHAPTERS / f"{name}.ipynb"
        if not src.exists():
            raise SystemExit(f"_toc.yml lists {CHAPTER_PREFIX}{name} but {src.relative_to(ROOT)} does not exist")
        source_nb = nbformat.read(src, as_version=4)
        if not any(_has_tag(c, "parameters") for c in source_nb.cells if c.cell_type == "code"):
            raise SystemExit(f"{src.relative_to(ROOT)} has no code cell tagged 'parameters'")
        print(f"[{i}/{len(names)}] {name}: papermill ({shown}) ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(src),
                str(dst),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(NOTEBOOKS),
                progress_bar=False,
                log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            print(f"[{i}/{len(names)}] {name}: FAILED after {time.perf_counter() - start:.1f}s "
                  f"(partial output in {dst.relative_to(ROOT)})\n{err}", file=sys.stderr, flush=True)
            raise SystemExit(1)
        nb = nbformat.read(dst, as_version=4)
        stats = prepare_for_book(nb)
        nbformat.write(nb, dst)
        print(f"[{i}/{len(names)}] {name}: done in {time.perf_counter() - start:.1f}s "
              f"(hidden cells {stats['hidden']}, collapsed outputs {stats['collapsed']})", flush=True)
    print(f"executed {len(names)} notebook(s) in {time.perf_counter() - total:.1f}s", flush=True)


def build_html() -> None:
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT), "--builder", "html",
           "--all", "-W", "-n", "--keep-going"]
    print("building HTML: " + " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {proc.returncode}); warnings count as errors")
    print(f"built {HTML.relative_to(ROOT)} in {time.perf_counter() - start:.1f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    _ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"run profile passed to every chapter (default: {DEFAULT_PROFILE}; the tests use smoke)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="extra papermill parameter (value parsed as a Python literal), repeatable")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="execute only these chapters (e.g. 03_dropout); the others must exist already")
    parser.add_argument("--train", action="store_true",
                        help="train the runs a chapter needs that are not in results/ (hours at the book profile); "
                             "without it a missing run is an error, except at the smoke profile")
    parser.add_argument("--no-execute", action="store_true",
                        help="skip papermill; build from the executed notebooks already in book/chapters/")
    parser.add_argument("--no-html", action="store_true", help="execute only; do not build the HTML")
    parser.add_argument("--no-check", action="store_true", help="skip tools/check_html.py after the build")
    parser.add_argument("--write-setup", action="store_true",
                        help="write the setup cell (from _config.yml's repository) into every chapter and stop")
    parser.add_argument("--kernel", default=KERNEL, help=f"Jupyter kernel name (default: {KERNEL})")
    args = parser.parse_args(argv)

    names = chapter_names()
    if not names:
        raise SystemExit(f"_toc.yml lists no {CHAPTER_PREFIX}* pages")
    if args.write_setup:
        write_setup(names)
        return 0
    problems = setup_problems(names)
    if problems:
        raise SystemExit("\n".join(problems) + "\nfix: tools/build_book.py --write-setup")
    parameters = {"profile": args.profile, "awd_source": source_spec()}
    if args.train:
        parameters["train_missing"] = True
    elif args.profile != "smoke":
        os.environ["AWD_NO_TRAIN"] = "1"  # read by awd.report.ensure_runs in the chapters' kernels
    if args.profile == "smoke":
        parameters["results_dir"] = str(SMOKE_RESULTS)
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"--param expects KEY=VALUE, got {item!r}")
        parameters[key] = _parse_value(value)

    start = time.perf_counter()
    if not args.no_execute:
        selected = names
        if args.only:
            unknown = sorted(set(args.only) - set(names))
            if unknown:
                parser.error(f"not in _toc.yml: {', '.join(unknown)}")
            selected = [n for n in names if n in args.only]
        if args.profile == "smoke" and not args.only:
            pretrain_smoke(args.param)
        execute(selected, parameters, kernel=args.kernel)
    missing = [n for n in names if not (CHAPTERS / f"{n}.ipynb").exists()]
    if missing and not args.no_html:
        raise SystemExit("not executed yet (run without --no-execute/--only): " + ", ".join(missing))
    if not args.no_html:
        build_html()
        if not args.no_check:
            import check_html

            problems = check_html.check_site(HTML)
            for p in problems:
                print(f"check_html: {p}", file=sys.stderr)
            if problems:
                raise SystemExit(f"check_html found {len(problems)} problem(s)")
            print(f"check_html: OK ({HTML.relative_to(ROOT)})", flush=True)
        print(f"book ready in {time.perf_counter() - start:.1f}s: {(HTML / 'index.html').relative_to(ROOT)}")
    return 0


def pretrain_smoke(params) -> None:
    """Train the smoke runs that the chapters read, two side by side, before executing them: in a chapter's
    kernel they would train one after another (about 8 s each, on our two cores twice the wall time)."""
    if params:
        return  # a changed parameter can change which runs the chapters need: let them train their own
    from awd.experiments import VARIANTS, default_seeds, run_grid, variant_config

    configs = [variant_config(v, "smoke", s) for v in VARIANTS for s in default_seeds("smoke")]
    run_grid(configs, SMOKE_RESULTS, jobs=2)


if __name__ == "__main__":
    sys.exit(main())
