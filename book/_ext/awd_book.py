"""Small Sphinx extension for the AWD-LSTM book (loaded through `local_extensions` in _config.yml).

1. The chapter pages are built from papermill outputs in book/chapters/, a gitignored folder, so the
   theme's launch buttons (Colab, Binder) would point at files that do not exist in the repository.
   They are rewritten to the source notebooks in notebooks/, which do.
2. Sphinx 7.4 registers an inline script added during reading (``app.add_js_file(None, body=...)``)
   twice: once as filename None, and again in ``prepare_writing`` as filename ''. With sphinx-thebe that
   puts ``const THEBE_JS_URL = ...`` twice on every page, a JavaScript error in the browser
   ("Identifier 'THEBE_JS_URL' has already been declared"). The duplicates are dropped before writing.
"""

from __future__ import annotations

BUILD_PREFIX = "book/chapters/"
SOURCE_PREFIX = "notebooks/"


def _rewrite(buttons):
    for button in buttons or []:
        if not isinstance(button, dict):
            continue
        url = button.get("url")
        # only links into the repository (launch buttons); not the local .ipynb download, not the issue form
        if isinstance(url, str) and url.startswith("http") and "/issues/" not in url and BUILD_PREFIX in url:
            button["url"] = url.replace(BUILD_PREFIX, SOURCE_PREFIX)
        _rewrite(button.get("buttons"))


def point_launch_buttons_at_sources(app, pagename, templatename, context, doctree):
    if pagename.startswith(BUILD_PREFIX):
        _rewrite(context.get("header_buttons"))


def normalize_inline_scripts(app, env):
    files = getattr(app.builder, "_js_files", None)
    if not isinstance(files, list):
        return None
    try:
        from sphinx.builders.html._assets import _JavaScript
    except ImportError:  # another Sphinx: leave it alone
        return None
    fixed = []
    for js in files:
        if isinstance(js, _JavaScript) and js.filename is None:
            js = _JavaScript("", priority=js.priority, **js.attributes)
        if js not in fixed:
            fixed.append(js)
    files[:] = fixed
    return None


def setup(app):
    # sphinx-book-theme adds its launch/source buttons at priority 501; run after it.
    app.connect("html-page-context", point_launch_buttons_at_sources, priority=600)
    app.connect("env-updated", normalize_inline_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
