"""The Jupyter Book: its configuration, its table of contents, and (opt-in) a full build checked in a browser.

The fast tests run with the rest of the suite. The build test takes a minute or two, so it runs only when asked:

    pytest tests/test_book_build.py                  # TELUCODEC_BOOK_TEST=0 skips the slow build

It builds the book with `jupyter-book build -W` into a temporary folder (the repository's _build is not touched)
and then runs scripts/check_book_html.py on the result in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import check_book_html  # noqa: E402

CONFIG = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
PAGES = check_book_html.toc_pages(REPO / "_toc.yml")


def _source(docname: str) -> Path | None:
    for ext in (".md", ".ipynb"):
        if (REPO / f"{docname}{ext}").is_file():
            return REPO / f"{docname}{ext}"
    return None


def _h1_lines(markdown: str) -> list[str]:
    """Level-1 ATX headings outside fenced code blocks."""
    out, fence = [], None
    for line in markdown.splitlines():
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            mark = m.group(1)[0] * 3
            if fence is None:
                fence = mark
            elif mark == fence:
                fence = None
            continue
        if fence is None and re.match(r"^# \S", line):
            out.append(line)
    return out


# --------------------------------------------------------------------------------------------- fast
def test_config_renders_stored_outputs_and_builds_only_the_toc():
    assert str(CONFIG["execute"]["execute_notebooks"]) == "off"
    assert CONFIG["only_build_toc_files"] is True
    for pattern in (".venv/**", "venv/**", "_build/**", "tests/**", "telucodec/**", "results/**", "scripts/**"):
        assert pattern in CONFIG["exclude_patterns"], pattern
    exts = set(CONFIG["parse"]["myst_enable_extensions"])
    assert {"dollarmath", "amsmath", "colon_fence", "deflist", "html_image"} <= exts
    # no Sphinx extensions beyond Jupyter Book's own, so a later JB2 upgrade stays mechanical; the one exception
    # only copies MathJax into the build so that formulas render offline (the browser check tests that)
    assert (CONFIG.get("sphinx") or {}).get("extra_extensions", []) in ([], ["sphinx-mathjax-offline"])
    assert "bibtex_bibfiles" not in CONFIG


def test_config_launch_buttons_point_at_the_repository():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == ""
    repo = CONFIG["repository"]
    assert repo["url"].startswith("https://github.com/") and repo["branch"] == "main"
    assert repo["path_to_book"] == ""


def test_toc_lists_each_page_once_starting_at_the_preface():
    assert PAGES[0] == "book/preface"
    assert len(PAGES) == len(set(PAGES)), "a page is listed twice in _toc.yml"


@pytest.mark.parametrize("docname", PAGES)
def test_toc_page_exists_and_has_exactly_one_title(docname):
    path = _source(docname)
    assert path is not None, f"_toc.yml lists {docname}, but neither {docname}.md nor {docname}.ipynb exists"
    if path.suffix == ".md":
        text = path.read_text(encoding="utf-8")
        first = next(line for line in text.splitlines() if line.strip() and not line.startswith("("))
        assert first.startswith("# "), f"{path.name} must start with a '# ' title, not {first[:40]!r}"
        assert len(_h1_lines(text)) == 1, f"{path.name} has {len(_h1_lines(text))} '# ' headings; use one"
    else:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
        assert cells and cells[0]["cell_type"] == "markdown", f"{path.name}: the first cell must be markdown"
        first = "".join(cells[0]["source"]).lstrip()
        assert first.startswith("# "), f"{path.name}: the first cell must start with a '# ' title"
        h1 = [h for c in cells if c["cell_type"] == "markdown" for h in _h1_lines("".join(c["source"]))]
        assert len(h1) == 1, f"{path.name} has {len(h1)} '# ' headings in markdown cells; use one"
        assert nb.get("metadata", {}).get("kernelspec", {}).get("name"), f"{path.name} has no kernelspec"


def test_check_script_reads_the_toc_and_expectations():
    assert "notebooks/04_fix1_codebook_loss" in PAGES and "book/glossary" in PAGES
    assert check_book_html.expectations("notebooks/04_fix1_codebook_loss", check_book_html.DEFAULT_EXPECT) == (1, 1)
    assert check_book_html.expectations("notebooks/02_codec_anatomy", check_book_html.DEFAULT_EXPECT) == (1, 0)
    assert check_book_html.expectations("book/story", check_book_html.DEFAULT_EXPECT) == (0, 0)
    with pytest.raises(check_book_html.UsageError):
        check_book_html.parse_expect(["notebooks/*:one:1"])


def test_check_script_counts_figures_and_audio_inside_the_article_only(tmp_path):
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "fig.png").write_bytes(b"png")
    dom = (
        "<html><head><title>04 · Fix — Book</title></head><body>"
        '<img src="../_static/logo.png">'
        '<article class="bd-article"><h1>04 · Fix<a class="headerlink">#</a></h1>'
        '<img src="../_images/fig.png"><img src="../_images/missing.png">'
        '<audio controls="controls"><source src="data:audio/wav;base64,AAAA"></audio>'
        '<div class="highlight-ipythontb notranslate output traceback"><pre>boom</pre></div>'
        '</article><a href="https://colab.research.google.com/github/x/y/blob/main/n.ipynb">Colab</a>'
        "</body></html>"
    )
    res = check_book_html.PageResult(
        "notebooks/04_fix", "http://127.0.0.1:1/notebooks/04_fix.html", "notebook", min_figures=1, min_audio=2
    )
    check_book_html.check_page(dom, res, tmp_path, want_colab=True, fail_tracebacks=False)
    assert (res.figures, res.audio, res.tracebacks, res.colab_link) == (2, 1, 1, True)
    assert res.h1 == "04 · Fix"
    assert any("broken image ../_images/missing.png" in p for p in res.problems)
    assert any("expected at least 2" in p for p in res.problems)
    assert len(res.problems) == 2


# --------------------------------------------------------------------------------------------- slow
def _book_test_requested(config) -> bool:
    expr = config.getoption("markexpr", "") or ""
    # On by default (CI builds the book and checks it in Chromium); TELUCODEC_BOOK_TEST=0 or -m "not book" skips it.
    return os.environ.get("TELUCODEC_BOOK_TEST", "1") != "0" and "not book" not in expr


@pytest.mark.book
def test_book_builds_without_warnings_and_renders_in_a_browser(tmp_path, request):
    if not _book_test_requested(request.config):
        pytest.skip(
            "the book build takes 1-2 min: run `pytest -m book tests/test_book_build.py` or set TELUCODEC_BOOK_TEST=1"
        )
    jb = shutil.which("jupyter-book")
    if jb is None:
        pytest.skip("jupyter-book is not installed (pip install 'jupyter-book>=1.0.4,<2')")
    if check_book_html.find_chromium(None) is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")

    build = subprocess.run(
        [jb, "build", str(REPO), "-W", "--keep-going", "--path-output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = build.stdout + build.stderr
    warnings = [line for line in log.splitlines() if re.search(r"\bWARNING\b|\bERROR\b", line)]
    assert build.returncode == 0, "jupyter-book build -W failed:\n" + "\n".join(warnings[-40:] or log[-4000:])
    html = tmp_path / "_build" / "html"
    assert (html / "book" / "preface.html").stat().st_size > 1000  # canary: a build that silently wrote nothing

    check = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "check_book_html.py"),
            "--source-dir",
            str(REPO),
            "--build-dir",
            str(html),
            "--screenshots",
            str(tmp_path / "_build" / "screenshots"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert check.returncode == 0, "browser check failed:\n" + check.stdout[-6000:] + check.stderr[-2000:]
    assert (tmp_path / "_build" / "screenshots" / "book__preface.png").stat().st_size > 10_000
