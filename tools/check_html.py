#!/usr/bin/env python3
"""Static checks of the built book (no browser): tools/check_html.py [HTML_DIR]

- every page of _toc.yml exists as HTML (and index.html);
- every <img> a page references exists and is non-empty; no image, script or stylesheet is loaded
  from another host (the site must work offline);
- MathJax is served from the site: pages with math load a local ``_static/mathjax/tex-chtml.js``
  (present, with its fonts), never a CDN; every math node is wrapped for MathJax (``\\(..\\)`` or
  ``\\[..\\]`` inside an element of class ``math``); no raw TeX (``$$``, ``\\(``, ``\\begin{``) or
  unresolved ``{glue...}`` role is left in the prose;
- chapter pages show no papermill parameters cell and no stderr output;
- internal links (href/src) resolve to files in the site, and their #fragments to ids in them.

Exit status 1 and one line per problem if anything fails.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup, NavigableString

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bookfiles import CHAPTER_PREFIX, HTML, TOC, toc_files  # noqa: E402

MATHJAX_SCRIPT = "_static/mathjax/tex-chtml.js"
MATHJAX_FONTS = "_static/mathjax/output/chtml/fonts/woff-v2"
CDN_PATTERN = re.compile(r"(cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|unpkg\.com|mathjax\.org|polyfill\.io)", re.I)
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\{glue(:\w+)?\}")
# elements whose text is code or already math, where TeX-looking text is legitimate
VERBATIM = {"pre", "code", "script", "style", "textarea", "kbd", "samp", "mjx-container"}
VERBATIM_CLASSES = {"math", "highlight", "output", "cell_output", "nohighlight"}
RESOURCE_ATTRS = {"img": "src", "script": "src", "source": "src", "iframe": "src", "video": "src", "audio": "src"}
RESOURCE_LINK_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon"}


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in ("file",)) or url.startswith("//")


def _in_verbatim(node) -> bool:
    for parent in node.parents:
        if parent.name in VERBATIM:
            return True
        classes = set(parent.get("class") or [])
        if classes & VERBATIM_CLASSES:
            return True
    return False


@lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    soup = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
    return frozenset(
        [t["id"] for t in soup.find_all(attrs={"id": True})] + [t["name"] for t in soup.find_all("a", attrs={"name": True})]
    )


def _resolve(html_dir: Path, page: Path, url: str) -> tuple[Path, str]:
    parts = urlsplit(url)
    rel = unquote(parts.path)
    if rel.startswith("/"):
        target = html_dir / rel.lstrip("/")
    elif rel:
        target = page.parent / rel
    else:
        target = page
    if rel.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target.resolve(), unquote(parts.fragment)


def check_page(html_dir: Path, page: Path, chapter: bool = False) -> list[str]:
    html_dir = html_dir.resolve()
    name = page.relative_to(html_dir).as_posix()
    problems: list[str] = []
    text = page.read_text(encoding="utf-8", errors="replace")
    soup = BeautifulSoup(text, "html.parser")

    # resources: local, present, non-empty images
    resources = [(tag, tag.get(attr)) for tag_name, attr in RESOURCE_ATTRS.items() for tag in soup.find_all(tag_name) if tag.get(attr)]
    resources += [
        (tag, tag.get("href"))
        for tag in soup.find_all("link", href=True)
        if RESOURCE_LINK_RELS & {r.lower() for r in (tag.get("rel") or [])}
    ]
    for tag, url in resources:
        if url.startswith("data:"):
            if tag.name == "img" and "," in url and not url.split(",", 1)[1].strip():
                problems.append(f"{name}: empty data: image")
            continue
        if _is_external(url):
            problems.append(f"{name}: <{tag.name}> loads {url} from another host (the site must work offline)")
            continue
        target, _ = _resolve(html_dir, page, url)
        if not target.is_file():
            problems.append(f"{name}: <{tag.name}> {url} does not exist")
        elif tag.name == "img" and target.stat().st_size == 0:
            problems.append(f"{name}: <img> {url} is empty")
    bodies = [s.string.strip() for s in soup.find_all("script") if not s.get("src") and s.string and s.string.strip()]
    for body in sorted({b for b in bodies if bodies.count(b) > 1}):
        problems.append(f"{name}: inline <script> repeated (a `const` in it is a JavaScript error): {body[:60]!r}")
    for script in soup.find_all("script"):
        # (sphinx-thebe always defines a lazy THEBE_JS_URL; it loads only if thebe is enabled, which it is not)
        for url in re.findall(r"(?:https?:)?//[^\s\"'`)]+", script.string or "") if not script.get("src") else []:
            if "mathjax" in url.lower():
                problems.append(f"{name}: inline script loads MathJax from another host: {url}")

    # math
    math_nodes = soup.select(".math")
    mathjax_srcs = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
    for src in mathjax_srcs:
        if _is_external(src) or CDN_PATTERN.search(src):
            problems.append(f"{name}: MathJax from a CDN: {src}")
    if math_nodes:
        local = [
            s for s in mathjax_srcs
            if not _is_external(s) and _resolve(html_dir, page, s)[0] == (html_dir / MATHJAX_SCRIPT).resolve()
        ]
        if not local:
            problems.append(f"{name}: has math but does not load the local {MATHJAX_SCRIPT} (found: {mathjax_srcs or 'none'})")
        fonts = html_dir / MATHJAX_FONTS
        if not fonts.is_dir() or not any(fonts.glob("*.woff")):
            problems.append(f"{name}: MathJax fonts missing in {MATHJAX_FONTS}")
        for node in math_nodes:
            tex = node.get_text().strip()
            if not ((tex.startswith("\\(") and tex.endswith("\\)")) or (tex.startswith("\\[") and tex.endswith("\\]"))):
                problems.append(f"{name}: math node not wrapped in \\(..\\) or \\[..\\] for MathJax: {tex[:60]!r}")
    for node in soup.find_all(string=True):
        if isinstance(node, NavigableString) and RAW_TEX.search(node) and not _in_verbatim(node):
            problems.append(f"{name}: raw TeX or markup left in the text: {node.strip()[:80]!r}")

    # chapters: no parameters cell, no stderr
    if chapter:
        for tag in ("tag_parameters", "tag_injected-parameters"):
            if soup.select(f".{tag}"):
                problems.append(f"{name}: shows a cell tagged {tag[4:]} (should be removed)")
        if soup.select(".output.stderr"):
            problems.append(f"{name}: shows stderr output")

    # internal links
    for a in soup.find_all("a", href=True):
        href = a["href"]
        if _is_external(href) or href.startswith(("mailto:", "javascript:", "data:")):
            continue
        target, fragment = _resolve(html_dir, page, href)
        if not target.exists():
            problems.append(f"{name}: broken link {href}")
            continue
        try:
            target.relative_to(html_dir)
        except ValueError:
            problems.append(f"{name}: link {href} leaves the site")
            continue
        if fragment and target.suffix == ".html" and fragment not in _ids(target):
            problems.append(f"{name}: link {href}: no id {fragment!r} in {target.relative_to(html_dir).as_posix()}")
    return problems


def check_site(html_dir: Path, toc_path: Path = TOC) -> list[str]:
    """All problems found in the site at html_dir (an empty list means it passed)."""
    html_dir = Path(html_dir).resolve()
    _ids.cache_clear()
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir}: no index.html (was the book built?)"]
    problems: list[str] = []
    docs = toc_files(toc_path)
    for doc in docs:
        if not (html_dir / f"{doc}.html").is_file():
            problems.append(f"TOC page {doc} was not built ({doc}.html missing)")
    chapters = {f"{d}.html" for d in docs if d.startswith(CHAPTER_PREFIX)}
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir).as_posix()
        if rel.startswith(("_static/", "_sources/", "_images/")):
            continue
        problems += check_page(html_dir, page, chapter=rel in chapters)
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    html_dir = Path(argv[0]) if argv else HTML
    problems = check_site(html_dir)
    for p in problems:
        print(p)
    print(f"check_html: {'OK' if not problems else f'{len(problems)} problem(s)'} ({html_dir})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
