"""Where a chapter finds the committed runs, wherever it is opened: a clone, Colab, Binder, a bare folder.

A chapter never names a relative path such as ``../results``: opened alone, that is a folder that does not
exist, and the chapter would train there. It asks `results_dir` instead, which looks, in this order, in

1. the folder named by ``AWD_RESULTS_DIR``;
2. the project the package was loaded from (a clone, or an editable install): its ``results/``;
3. a copy of the project's ``results/`` at the commit the package was installed from, fetched once with git
   into ``~/.cache/awd/results-<commit>`` (the source is what pip recorded in the package's
   ``direct_url.json``: the repository and commit of ``pip install git+URL@COMMIT``).

The install itself is the chapters' setup cell (it runs before ``awd`` can be imported): the project from git
at the book's commit, with the ``chapters`` extra, keeping a torch that is already there.
"""
from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

DIST = "awd"
RESULTS_ENV = "AWD_RESULTS_DIR"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "awd"


def project_root() -> Path | None:
    """The project folder the package was imported from (it holds pyproject.toml and results/), or None when
    the package is an installed copy."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "results").is_dir() else None


def installed_source() -> tuple[str, str] | None:
    """(repository URL, commit) that pip installed this package from, when it came from git."""
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    info = json.loads(text) if text else {}
    commit = info.get("vcs_info", {}).get("commit_id")
    return (info["url"], commit) if commit and info.get("url") else None


def fetch_results(url: str, commit: str, dest: Path | None = None) -> Path:
    """``results/`` of the repository ``url`` at ``commit``, fetched once (git, one commit deep) into the cache."""
    dest = Path(dest or CACHE / f"results-{commit[:12]}")
    if (dest / "results").is_dir():
        return dest / "results"
    dest.mkdir(parents=True, exist_ok=True)

    def git(*args):
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True, text=True)

    try:
        git("init", "-q")
        git("fetch", "-q", "--depth", "1", url, commit)
        git("checkout", "-q", "FETCH_HEAD", "--", "results")
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        raise RuntimeError(f"could not fetch results/ of {url} at {commit} into {dest}: {detail}\n"
                           f"Clone the repository and run the chapter there, or set {RESULTS_ENV} to a folder "
                           "of runs.") from err
    return dest / "results"


def results_dir() -> Path:
    """The folder of committed runs for this copy of the package (see the module's docstring for the order)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    root = project_root()
    if root is not None:
        return root / "results"
    source = installed_source()
    if source is None:
        raise RuntimeError(f"awd is installed from {Path(__file__).parent}, which is not a clone and was not "
                           f"installed from git, so its committed runs cannot be found: set {RESULTS_ENV} to "
                           "the results/ folder of a clone.")
    return fetch_results(*source)
