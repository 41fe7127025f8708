"""The chapters as `make book` runs them, and alone: each chapter at the default profile on the committed runs
in the repository (nothing trains), then copied alone into an empty folder with a Python that lacks the
project, where it must install awd, fetch the runs and show the same; and Binder's install.

Its own file, apart from the smoke build of tests/test_book.py: `make test` runs two pytest workers with
--dist loadfile, so a file's tests (and its session fixtures, here each chapter's in-repo run, shared by two
tests) stay in one worker while the other builds the book.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import bookfiles  # noqa: E402
import build_book  # noqa: E402

CHAPTERS = bookfiles.chapter_names()

@pytest.fixture(scope="session")
def in_repo(tmp_path_factory):
    """Run a chapter in the repository as `make book` does, at the default profile with AWD_NO_TRAIN set (so every
    run is read from results/ and nothing trains); each chapter once per session, for every test that needs it."""
    import papermill

    from awd.report import NO_TRAIN_ENV

    out_dir, done = tmp_path_factory.mktemp("in_repo"), {}
    env = {NO_TRAIN_ENV: "1",  # the kernel inherits it: a missing run is an error, not a training
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}

    def run(name: str) -> Path:
        if name not in done:
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                papermill.execute_notebook(
                    str(build_book.NOTEBOOKS / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
                    parameters={"profile": build_book.DEFAULT_PROFILE}, kernel_name=build_book.KERNEL,
                    cwd=str(build_book.NOTEBOOKS), progress_bar=False)
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
            done[name] = out_dir / f"{name}.ipynb"
        return done[name]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_runs_from_the_committed_results(name, in_repo):
    """What `make book` does, chapter by chapter: at the default profile every run is read from results/ and
    nothing is trained. A missing or unfinished run fails here, and so does a chapter's claim that its
    committed runs no longer support (the chapters check those with assertions)."""
    assert in_repo(name).exists()


def _shown(nb) -> list:
    """What a chapter glued into its prose and what its cells display (Markdown, tables, text; not figures, whose
    bytes carry no meaning to compare), with the random ids that pandas gives a styled table removed."""
    import re

    shown = sorted(_glued(nb).items())
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if out.get("output_type") not in ("display_data", "execute_result") or "image/png" in data:
                continue
            if out.get("metadata", {}).get("scrapbook"):
                continue  # a glued value: in `shown` already
            for kind in ("text/markdown", "text/html", "text/plain"):
                if kind in data:
                    shown.append((kind, re.sub(r"T_[0-9a-f]{5}", "T_", data[kind])))
                    break
    return shown


def _glued(nb) -> dict:
    """What a chapter glued into its prose: name -> the plain-text and Markdown forms of the value."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = out.get("data", {})
                found[name] = (data.get("text/plain"), data.get("text/markdown"))
    return found


def _venv_without_the_project(path: Path) -> Path:
    """A fresh virtual environment that sees this one's packages (torch, jupyter, pandas: no downloads) but not
    the project: every entry of site-packages is linked into a folder that a .pth file names, except awd's."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False).create(path)  # pip, too, is this environment's (ensurepip's is older)
    python = path / "bin" / "python"
    site = Path(sysconfig.get_paths()["purelib"])
    shared = path / "shared-site-packages"
    shared.mkdir()
    for entry in site.iterdir():
        if not (entry.name.startswith(("awd", "__editable__")) and "awd" in entry.name):
            (shared / entry.name).symlink_to(entry)
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(target, "shared.pth").write_text(f"{shared}\n")
    return python


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A clone of this commit and a fresh Python that lacks the project, for chapters opened alone."""
    tmp = tmp_path_factory.mktemp("alone")
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    python = _venv_without_the_project(tmp / "venv")
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('awd'))"],
                           capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                if k != "PYTHONPATH"}, cwd=tmp)
    assert probe.stdout.strip() == "None", f"the fresh environment already has awd: {probe.stdout}{probe.stderr}"
    return dict(tmp=tmp, python=python, commit=commit, source=f"git+{clone.as_uri()}@{commit}")


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_a_chapter_copied_alone_into_an_empty_folder_installs_awd_and_glues_what_the_book_does(
        name, bare_python, in_repo, data_dir):
    """Each chapter alone in an empty folder, run by a Python that lacked the project, offline: the first
    chapter's setup cell installs awd from a clone of this commit (a file URL, as Colab would from GitHub; the
    later chapters find it installed), the committed runs are fetched from the same commit, and everything the
    chapter glues or displays is what it glues or displays in the repository. (The clone holds what is
    committed: commit before running this test.)"""
    import nbformat

    tmp, python, commit = bare_python["tmp"], bare_python["python"], bare_python["commit"]
    bare = tmp / f"bare-{name}"
    bare.mkdir()
    shutil.copy(build_book.NOTEBOOKS / f"{name}.ipynb", bare)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AWD_RESULTS_DIR", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", XDG_CACHE_HOME=str(tmp / "cache"),
               AWD_NO_TRAIN="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run([str(python), "-m", "papermill", f"{name}.ipynb", "out.ipynb", "--no-progress-bar",
                           "-p", "profile", build_book.DEFAULT_PROFILE, "-p", "awd_source", bare_python["source"]],
                          cwd=bare, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{name} failed alone in a folder:\n{proc.stderr[-6000:]}"
    assert (tmp / "cache" / "awd" / f"results-{commit[:12]}" / "results").is_dir(), "results/ not fetched"
    expected = _shown(nbformat.read(in_repo(name), as_version=4))
    assert expected and _shown(nbformat.read(bare / "out.ipynb", as_version=4)) == expected


def _requirement_lines(path: Path) -> tuple[list[str], list[str]]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    return [line for line in lines if line.startswith("-")], [line for line in lines if not line.startswith("-")]


def test_binder_installs_the_cpu_build_of_the_pinned_torch_and_the_chapters_needs():
    from packaging.requirements import Requirement

    options, reqs = _requirement_lines(ROOT / "binder" / "requirements.txt")
    parsed = {Requirement(r).name: Requirement(r) for r in reqs}  # each line parses as a requirement
    pinned = next(Requirement(r) for r in _requirement_lines(ROOT / "requirements.txt")[1] if r.startswith("torch"))
    assert str(parsed["torch"].specifier) == f"{pinned.specifier}+cpu", "Binder's torch must be the pinned one"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name for r in project["dependencies"] + project["optional-dependencies"]["chapters"]}
    assert wanted <= set(parsed), f"binder/requirements.txt lacks {sorted(wanted - set(parsed))}"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip().startswith("python-3.")


@pytest.mark.slow
def test_binder_post_build_installs_the_project_from_a_clone(tmp_path):
    """binder/postBuild, run in a clone with a fresh environment's python first on PATH (its packages, torch
    and setuptools among them, are what binder/requirements.txt installed), offline: afterwards that python
    imports awd from the clone and finds the clone's committed runs."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shutil.copytree(ROOT / "binder", clone / "binder", dirs_exist_ok=True)  # this tree's, committed or not
    _venv_without_the_project(tmp_path / "env")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{tmp_path / 'env' / 'bin'}:{env['PATH']}", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    subprocess.run(["bash", str(clone / "binder" / "postBuild")], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    found = subprocess.run([str(tmp_path / "env" / "bin" / "python"), "-c",
                            "import awd.book; print(awd.book.results_dir())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.stdout.strip() == str(clone / "results"), found.stderr


@pytest.mark.parametrize("name", CHAPTERS)
def test_notebook_is_valid_nbformat(name):
    """Each source notebook validates, and from nbformat 4.5 on every cell has a unique id (nbformat warns now
    and will refuse later)."""
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MissingIDFieldWarning and the like fail the test
        nb = nbformat.read(build_book.NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        ids = [cell.get("id") for cell in nb.cells]
        assert None not in ids and len(set(ids)) == len(ids), f"{name}: missing or repeated cell ids"


def test_every_chapter_carries_the_setup_cell_of_the_configured_repository(tmp_path):
    """The setup cell follows the parameters in every chapter and names _config.yml's repository: change the
    URL there, and the chapters no longer match until `tools/build_book.py --write-setup`."""
    assert build_book.setup_problems(CHAPTERS) == []
    url, branch = bookfiles.repository()
    assert f'"git+{url}@{branch}"' in bookfiles.setup_source()
    moved = tmp_path / "_config.yml"
    moved.write_text(bookfiles.CONFIG.read_text().replace(url, "https://example.org/fork/awd"))
    assert '"git+https://example.org/fork/awd@main"' in bookfiles.setup_source(moved)


def test_each_chapter_is_titled_with_its_place_in_the_table_of_contents():
    """The pages of the TOC's "Chapters" part are titled "N. ..." in their order (the summary once said "5."
    as the seventh chapter); the other parts' pages carry no number."""
    import re

    import nbformat
    import yaml

    parts = yaml.safe_load(bookfiles.TOC.read_text())["parts"]
    for part in parts:
        for place, entry in enumerate(part["chapters"], start=1):
            if not entry["file"].startswith(bookfiles.CHAPTER_PREFIX):
                continue
            name = entry["file"][len(bookfiles.CHAPTER_PREFIX):]
            nb = nbformat.read(build_book.NOTEBOOKS / f"{name}.ipynb", as_version=4)
            title = next(c.source for c in nb.cells if c.cell_type == "markdown").splitlines()[0]
            number = re.match(r"# (\d+)\. ", title)
            if part["caption"] == "Chapters":
                assert number and int(number.group(1)) == place, f"{name}: {title!r} is chapter {place}"
            else:
                assert not number, f"{name}: {title!r} is in the part {part['caption']!r}, not a chapter"
