"""What the book's tools share: where things are, the pages of _toc.yml, the repository of _config.yml, and
the setup cell every chapter carries.

tools/build_book.py (which builds) and tools/check_html.py (which checks what was built) both import from
here, and neither imports the other's module for these names.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = ROOT / "book" / "chapters"
BUILD = ROOT / "_build"
HTML = BUILD / "html"
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
# a TOC page under this prefix is the papermill output of notebooks/<name>.ipynb
CHAPTER_PREFIX = "book/chapters/"
SETUP_TAG = "setup"


def toc_files(toc_path: Path = TOC) -> list[str]:
    """All docnames listed in the TOC (root first), in reading order."""
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text())
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for key in ("parts", "chapters", "sections", "entries", "subtrees"):
                walk(node.get(key))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [re.sub(r"\.(ipynb|md)$", "", f) for f in found]


def chapter_names(toc_path: Path = TOC) -> list[str]:
    """Names (``NN_name``) of the TOC pages that are built from notebooks/."""
    return [f[len(CHAPTER_PREFIX):] for f in toc_files(toc_path) if f.startswith(CHAPTER_PREFIX)]


def repository(config_path: Path = CONFIG) -> tuple[str, str]:
    """(URL, branch) of the book's repository: _config.yml's ``repository``, the one place that names it."""
    import yaml

    repo = yaml.safe_load(Path(config_path).read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def setup_source(config_path: Path = CONFIG) -> str:
    """The setup cell of every chapter (tagged ``setup``; hidden on the page, one click away).

    It runs right after the parameters, before anything imports ``awd``. Where ``awd`` is missing (Colab,
    Binder without the package, a chapter copied alone into a folder) it installs the project from git, at the
    commit the book was built from (``awd_source``, injected by the build) or else at _config.yml's branch.
    Where torch is already installed it is kept: Colab's CUDA build stays, and no multi-GB download starts.
    """
    url, branch = repository(config_path)
    return f'''\
# Setup: a chapter opened on its own (Colab, Binder, a bare folder) installs the project it needs.
import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("awd") is None:
    source = awd_source or "git+{url}@{branch}"
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if importlib.util.find_spec("torch") is None:
        subprocess.run(pip + [f"awd[chapters] @ {{source}}"], check=True)
    else:  # keep the torch that is there: the package alone, then what it needs but torch
        subprocess.run(pip + ["--no-deps", f"awd @ {{source}}"], check=True)
        importlib.invalidate_caches()
        needs = [r.split(";")[0].strip() for r in importlib.metadata.requires("awd")]
        subprocess.run(pip + [r for r in needs if not r.startswith("torch")], check=True)
    importlib.invalidate_caches()'''
