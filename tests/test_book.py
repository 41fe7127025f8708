"""The book: every chapter runs through papermill at the smoke profile, the HTML builds with
warnings as errors, passes the static check, and renders in a real browser (headless Chromium
driven by Playwright) with figures loaded and math typeset, offline.

Tests marked slow build the book; the others check the checker on a tiny hand-made site. (The chapters
at the default profile, in the repository and alone, are tests/test_chapters.py.)
The build goes into the repository's own gitignored outputs (book/chapters/, _build/), once per
session, so every test that reads it stays in this file: `make test` runs two pytest workers with
--dist loadfile, which keeps a file's tests in one worker. Screenshots go to _build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
sys.path.insert(0, str(ROOT / "tools"))

import bookfiles  # noqa: E402
import build_book  # noqa: E402
import check_html  # noqa: E402

CHAPTERS = bookfiles.chapter_names()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# what the build reads or writes (the rest of the tree may be changing under other work meanwhile)
BUILD_PATHS = ["book", "notebooks", "results", "_build", "_config.yml", "_toc.yml"]


def _git_status() -> str:
    try:
        return subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *BUILD_PATHS],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "(no git)"


@pytest.fixture(scope="session")
def built_book():
    """Run tools/build_book.py --profile smoke once; yields its log and the git status around it."""
    before = _git_status()
    start = time.perf_counter()
    env = dict(os.environ, AWD_BOOK_NO_REEXEC="1")  # run with this interpreter (the venv under make test)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_book.py"), "--profile", "smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed (exit {proc.returncode}):\n{log[-8000:]}"
    yield {"log": log, "seconds": time.perf_counter() - start, "git_before": before, "git_after": _git_status()}


def test_tools_share_their_names_through_one_module():
    """check_html reads the TOC through bookfiles, not through build_book (which runs check_html)."""
    import ast

    tree = ast.parse((ROOT / "tools" / "check_html.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "build_book" not in modules and "bookfiles" in modules
    assert build_book.toc_files is bookfiles.toc_files and check_html.toc_files is bookfiles.toc_files


CODE_COLUMN = 90  # characters of code the page's column shows without scrolling
FOLDED = {"remove-cell", "remove-input", "hide-input", "hide-cell", "parameters", "setup"}


@pytest.mark.parametrize("name", CHAPTERS)
def test_visible_code_fits_the_code_column(name):
    """Every line of code a reader sees, in a code cell that is not folded away or in a fenced block of the
    prose (the exercises' solutions), fits the page's code column."""
    import re

    import nbformat

    nb = nbformat.read(build_book.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    long = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not FOLDED & set(cell.metadata.get("tags", [])):
            lines = cell.source.splitlines()
        elif cell.cell_type == "markdown":
            lines = [line for block in re.findall(r"```[^\n]*\n(.*?)```", cell.source, re.S)
                     for line in block.splitlines()]
        else:
            continue
        long += [f"cell {i}, {len(line)} characters: {line[:60]}..." for line in lines if len(line) > CODE_COLUMN]
    assert not long, f"{name}: lines wider than {CODE_COLUMN} characters (wrap them, or fold the cell):\n" + "\n".join(long)


def test_the_teaching_pages_note_about_the_lab_profile_holds_for_the_committed_lab_runs():
    """book/teaching.md says what the committed lab runs (seed 0) show: the book's three main directions. A
    re-recorded lab that loses one of them fails here: rewrite the note (and this test) to what the runs show."""
    import csv

    from awd.config import Config

    rows = {r["variant"]: r for r in csv.DictReader((ROOT / "results" / "index.csv").open())
            if r["profile"] == "lab" and r["dataset"] == "ptb" and r["seed"] == "0"}
    text = " ".join((ROOT / "book" / "teaching.md").read_text().split())
    assert ("the model without dropout overfits and ends worse than the full model, the untied model ends worse "
            "than the tied one, and NT-ASGD fires in the full model") in text
    val = {v: float(r["best_val_ppl"]) for v, r in rows.items()}
    assert int(rows["no dropout"]["best_epoch"]) < int(rows["no dropout"]["epochs_done"])
    assert val["no dropout"] > val["full"] and val["no tying"] > val["full"]
    assert rows["full"]["averaging_start_epoch"]
    assert f"{Config.from_profile('lab').epochs} epochs" in text


IMPLEMENT = {"03_dropout": ["locked_dropout", "embedding_dropout", "weight_drop"],
             "04_optimization": ["ar_tar", "trigger"]}


@pytest.mark.parametrize("name", IMPLEMENT)
def test_implement_it_yourself_solutions_pass_their_checkers(name, capsys):
    """Each implement-it-yourself exercise has a stub cell that calls its checker, and the solution in its
    (folded) dropdown, run on its own, matches awd exactly."""
    import re

    import nbformat
    import torch
    import torch.nn.functional as F

    from awd import exercises

    cells = nbformat.read(build_book.NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
    checked = [m.group(1) for c in cells if c.cell_type == "code"
               for m in [re.search(r"exercises\.check_(\w+)\((\w+)\)", c.source)] if m]
    assert checked == IMPLEMENT[name]
    solutions = [c.source for c in cells if c.cell_type == "markdown" and re.match(r":::\{solution\} ch0\d-impl", c.source)]
    assert len(solutions) == len(checked), "one folded solution per exercise"
    for fn_name, solution in zip(checked, solutions):
        assert ":class: dropdown" in solution
        namespace = {"torch": torch, "F": F}
        exec(re.search(r"```python\n(.*?)```", solution, re.S).group(1), namespace)
        assert getattr(exercises, f"check_{fn_name}")(namespace[fn_name]), capsys.readouterr().out


def test_toc_lists_chapters_with_source_notebooks():
    assert CHAPTERS, "_toc.yml lists no book/chapters/* pages"
    for name in CHAPTERS:
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"no notebooks/{name}.ipynb for the TOC entry"


@pytest.mark.slow
def test_build_prints_progress_per_notebook(built_book):
    for name in CHAPTERS:
        assert f"{name}: done in" in built_book["log"], f"no progress line for {name}"
    assert "check_html: OK" in built_book["log"]


@pytest.mark.slow
def test_build_leaves_git_tree_unchanged(built_book):
    assert built_book["git_after"] == built_book["git_before"], (
        "the book build changed tracked or unignored files:\n"
        f"before:\n{built_book['git_before']}\nafter:\n{built_book['git_after']}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_notebook_ran_at_smoke_profile_and_drew_a_figure(built_book, name):
    import nbformat

    nb = nbformat.read(ROOT / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "profile = \"smoke\"" in injected[0].source, "papermill did not inject profile='smoke'"
    for cell in code:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            assert "remove-cell" in tags, "parameter cells must be hidden from the page"
        assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
    assert nb.metadata.get("papermill", {}).get("parameters", {}).get("profile") == "smoke"


@pytest.mark.slow
def test_static_html_check(built_book):
    problems = check_html.check_site(HTML)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_mathjax_is_local_not_cdn(built_book):
    assert (HTML / check_html.MATHJAX_SCRIPT).stat().st_size > 100_000
    with_math = 0
    for page in [HTML / f"{d}.html" for d in build_book.toc_files()]:
        text = page.read_text()
        assert "cdn.jsdelivr.net/npm/mathjax" not in text and "mathjax@" not in text, page
        if 'class="math' in text:  # a page without math (the appendix, the teaching page) loads none
            with_math += 1
            assert "_static/mathjax/tex-chtml.js" in text, f"{page} does not load the local MathJax"
    assert with_math >= len(CHAPTERS) - 1, "most chapters have math: did the math stop rendering?"


@pytest.mark.slow
def test_launch_buttons_point_at_source_notebooks(built_book):
    text = (HTML / "book" / "chapters" / f"{CHAPTERS[0]}.html").read_text()
    assert "colab.research.google.com/github/" in text and f"/notebooks/{CHAPTERS[0]}.ipynb" in text
    assert "mybinder.org/v2/gh/" in text
    assert "blob/main/book/chapters/" not in text


# ---------------------------------------------------------------- real browser


def _chromium() -> str | None:
    if os.environ.get("AWD_CHROMIUM"):  # an explicit choice, and the only one tried
        return os.environ["AWD_CHROMIUM"] if Path(os.environ["AWD_CHROMIUM"]).is_file() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _need_or_skip(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test may not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(built_book):
    """Serve _build/html on 127.0.0.1 (random port) for the browser."""
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        _need_or_skip("no Chromium found (apt-get install chromium, or set AWD_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need_or_skip("the playwright Python package is not installed (pip install -r requirements.txt)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


BROWSER_CHECK = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = Array.from(document.querySelectorAll('img'));
  await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .cell_output, textarea')
       .forEach(n => n.remove());
  return {
    mathjax: !!(window.MathJax && MathJax.version),
    mathjaxVersion: window.MathJax && MathJax.version,
    mathNodes: article.querySelectorAll('.math').length,
    typesetMathNodes: Array.from(article.querySelectorAll('.math')).filter(n => n.querySelector('mjx-container')).length,
    mjx: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    images: imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})),
    articleImages: article.querySelectorAll('img').length,
    leftover: prose.textContent.match(/\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{|\\{glue/g) || [],
    stderr: document.querySelectorAll('.output.stderr').length,
    params: document.querySelectorAll('.tag_parameters, .tag_injected-parameters').length,
  };
}"""


# Code blocks, tables and figures must fit the content column, or scroll inside a box of their own: one that
# pushes past the column hides its right part (or widens the whole page) on a phone.
OVERFLOW_CHECK = """() => {
  const article = document.querySelector('article') || document.body;
  const column = article.getBoundingClientRect();
  const scrolls = n => ['auto', 'scroll'].includes(getComputedStyle(n).overflowX);
  const scroller = el => { for (let n = el; n && n !== article; n = n.parentElement) { if (scrolls(n)) return n; }
                           return null; };
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
                     ? '.' + el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '');
  const bad = [];
  // display math only: inline math's glyphs overhang their box by a pixel or two, which is no overflow
  const blocks = 'pre, table, img, figure, .cell_output, mjx-container[display="true"]';
  for (const el of article.querySelectorAll(blocks)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || el.closest('details:not([open])')) continue;  // folded away: not on screen
    const wider = el.tagName !== 'MJX-CONTAINER' && el.scrollWidth > el.clientWidth + 1;
    const out = box.right > column.right + 1 || box.left < column.left - 1;
    const own = scroller(el);
    const clipped = own && own.getBoundingClientRect().right <= column.right + 1;
    if ((wider && !own) || (out && !clipped)) {
      bad.push({element: name(el), width: Math.round(box.width), scrollWidth: el.scrollWidth,
                column: Math.round(column.width), text: (el.textContent || el.getAttribute('src') || '').slice(0, 60)});
    }
  }
  return {bad, pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth};
}"""
WIDTHS = {"phone": 390, "desktop": 1280}


def _pages():
    return ["book/intro"] + [f"book/chapters/{n}" for n in CHAPTERS] + ["book/teaching"]


NO_MATH = {"book/teaching"}  # pages without formulas


@pytest.mark.slow
@pytest.mark.parametrize("doc", _pages())
@pytest.mark.parametrize("width", WIDTHS)
def test_page_fits_the_screen(browser, site, doc, width):
    """At a phone's width and at a desktop's, no code block, table or figure runs out of the content column
    without a scroll bar of its own, and the page never scrolls sideways. The screenshots stay in
    _build/screenshots/ (CI keeps them as artifacts)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": WIDTHS[width], "height": 900})
    try:
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            (site, "data:", "blob:", "about:")) else route.abort())
        page = context.new_page()
        page.goto(f"{site}/{doc}.html", wait_until="load", timeout=60_000)
        page.evaluate(BROWSER_CHECK)  # waits for MathJax and the images
        result = page.evaluate(OVERFLOW_CHECK)
        page.screenshot(path=str(SCREENSHOTS / f"{doc.replace('/', '__')}@{width}.png"), full_page=True)
    finally:
        context.close()
    assert not result["bad"], f"{doc} at {WIDTHS[width]} px: out of the column:\n" + json.dumps(result["bad"], indent=1)
    assert result["pageWidth"] <= result["viewport"], f"{doc} at {WIDTHS[width]} px scrolls sideways: {result}"


@pytest.mark.slow
def test_the_overflow_check_catches_what_runs_out_of_the_column(browser):
    """A table wider than the column fails; the same table in a box that scrolls passes."""
    page = browser.new_page(viewport={"width": 390, "height": 600})
    try:
        wide = '<table style="width: 600px"><tr><td>x</td></tr></table>'
        page.set_content(f'<article style="width: 300px">{wide}</article>')
        assert [b["element"] for b in page.evaluate(OVERFLOW_CHECK)["bad"]] == ["table"]
        page.set_content(f'<article style="width: 300px"><div style="overflow-x: auto">{wide}</div></article>')
        assert page.evaluate(OVERFLOW_CHECK)["bad"] == []
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.parametrize("doc", _pages())
def test_page_renders_in_browser(browser, site, doc):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    outside, errors = [], []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        def route(route):
            url = route.request.url
            if url.startswith(site) or url.startswith(("data:", "blob:", "about:")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(f"{site}/{doc}.html", wait_until="load", timeout=60_000)
        assert response is not None and response.ok, f"{doc}.html: HTTP {response and response.status}"
        result = page.evaluate(BROWSER_CHECK)
        page.screenshot(path=str(SCREENSHOTS / f"{doc.replace('/', '__')}.png"), full_page=True)
    finally:
        context.close()

    detail = json.dumps(result, indent=1)
    assert not outside, f"{doc}: requests to other hosts (the book must work offline): {outside}"
    assert not errors, f"{doc}: JavaScript errors: {errors}"
    bad = [i for i in result["images"] if not i["ok"]]
    assert not bad, f"{doc}: images that did not load: {bad}"
    if doc in NO_MATH:
        assert result["mathNodes"] == 0, f"{doc} has math now: take it out of NO_MATH"
    else:
        assert result["mathjax"], f"{doc}: MathJax did not load\n{detail}"
        assert result["mathNodes"] > 0 and result["mjx"] > 0, f"{doc}: no typeset math\n{detail}"
        assert result["typesetMathNodes"] == result["mathNodes"], f"{doc}: math left untypeset\n{detail}"
        assert result["mathErrors"] == 0, f"{doc}: MathJax errors\n{detail}"
    assert not result["leftover"], f"{doc}: raw TeX left in the page: {result['leftover']}"
    if doc.startswith("book/chapters/"):
        assert result["articleImages"] > 0, f"{doc}: no figure on the page"
        assert result["stderr"] == 0 and result["params"] == 0, f"{doc}: stderr or parameters shown\n{detail}"


# ---------------------------------------------------------------- the static checker itself

GOOD_PAGE = """<html><head>
<script defer src="{up}_static/mathjax/tex-chtml.js?v=1"></script></head><body><article>
<h1 id="top">Title</h1><p>Inline <span class="math notranslate nohighlight">\\(x^2\\)</span> and</p>
<div class="math notranslate nohighlight">\\[\\sum_t p_t\\]</div>
<pre>code may say $$ and \\(</pre>
<img src="{up}_images/fig.png"><a href="#top">here</a> <a href="{up}book/intro.html#top">intro</a>
<a href="https://example.org/">out</a>
</article></body></html>"""


def _tiny_site(tmp_path):
    html = tmp_path / "html"
    (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").mkdir(parents=True)
    (html / "_static" / "mathjax" / "tex-chtml.js").write_text("/* mathjax */")
    (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2" / "a.woff").write_bytes(b"w")
    (html / "_images").mkdir()
    (html / "_images" / "fig.png").write_bytes(b"\x89PNG")
    (html / "book" / "chapters").mkdir(parents=True)
    (html / "index.html").write_text('<html><body><a href="book/intro.html">intro</a></body></html>')
    (html / "book" / "intro.html").write_text(GOOD_PAGE.format(up="../"))
    (html / "book" / "chapters" / "01_x.html").write_text(GOOD_PAGE.format(up="../../"))
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapters/01_x\n")
    return html, toc


def test_check_html_passes_a_good_site(tmp_path):
    html, toc = _tiny_site(tmp_path)
    assert check_html.check_site(html, toc) == []


@pytest.mark.parametrize("old, new, expected", [
    ('{up}_static/mathjax/tex-chtml.js?v=1', 'https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js', "CDN"),
    ('<img src="{up}_images/fig.png">', '<img src="{up}_images/missing.png">', "does not exist"),
    ('<h1 id="top">Title</h1>', '<h1 id="top">Title</h1><p>$$ E = mc^2 $$</p>', "raw TeX"),
    ('<h1 id="top">Title</h1>', '<h1 id="top">Title</h1><p>see {{glue:text}}`x`</p>', "raw TeX"),
    ('<span class="math notranslate nohighlight">\\(x^2\\)</span>', '<span class="math">x^2</span>', "not wrapped"),
    ('{up}book/intro.html#top', '{up}book/nowhere.html', "broken link"),
    ('{up}book/intro.html#top', '{up}book/intro.html#nothere', "no id"),
    ('<article>', '<article><div class="cell tag_parameters"></div>', "parameters"),
    ('<article>', '<article><div class="output stderr">warn</div>', "stderr"),
    ('<body>', '<body><script>const A = 1</script><script>const A = 1</script>', "repeated"),
])
def test_check_html_catches(tmp_path, old, new, expected):
    html, toc = _tiny_site(tmp_path)
    page = html / "book" / "chapters" / "01_x.html"
    text = page.read_text()
    old, new = old.format(up="../../"), new.format(up="../../")
    assert old in text
    page.write_text(text.replace(old, new))
    problems = check_html.check_site(html, toc)
    assert any(expected in p for p in problems), problems


def test_check_html_requires_every_toc_page(tmp_path):
    html, toc = _tiny_site(tmp_path)
    (html / "book" / "chapters" / "01_x.html").unlink()
    assert any("was not built" in p for p in check_html.check_site(html, toc))


def test_check_html_rejects_empty_image(tmp_path):
    html, toc = _tiny_site(tmp_path)
    (html / "_images" / "fig.png").write_bytes(b"")
    assert any("is empty" in p for p in check_html.check_site(html, toc))


def test_prepare_for_book_hides_parameters_and_tames_outputs():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    long_log = "".join(f"epoch {i}\n" for i in range(build_book.LONG_OUTPUT_LINES + 5))
    nb = new_notebook(cells=[
        new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
        new_code_cell("profile = 'book'", metadata={"tags": ["injected-parameters"]}),
        new_code_cell("train()", outputs=[new_output("stream", name="stdout", text=long_log)]),
        new_code_cell("bar()", outputs=[
            new_output("stream", name="stdout", text="  0%|\r 50%|\r100%|\ndone\n"),
            new_output("display_data", data={build_book.WIDGET_MIME: {"model_id": "x"}, "text/plain": "HBox()"}),
        ]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    stats = build_book.prepare_for_book(nb)
    assert stats == {"hidden": 2, "collapsed": 1, "widgets_dropped": 1}
    assert "remove-cell" in nb.cells[0].metadata.tags and "remove-cell" in nb.cells[1].metadata.tags
    assert "hide-output" in nb.cells[2].metadata.tags
    assert nb.cells[3].outputs == [new_output("stream", name="stdout", text="100%|\ndone\n")]
    assert "widgets" not in nb.metadata


def test_toc_parser_reads_parts_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: book/chapters/01_a\n        sections:\n          - file: book/chapters/02_b.ipynb\n"
        "      - file: book/extra\n"
    )
    assert bookfiles.toc_files(toc) == ["book/intro", "book/chapters/01_a", "book/chapters/02_b", "book/extra"]
    assert bookfiles.chapter_names(toc) == ["01_a", "02_b"]
