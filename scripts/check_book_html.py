#!/usr/bin/env python
"""Check the built Jupyter Book in a real browser (headless Chromium).

Run it after `jupyter-book build . -W`:

    python scripts/check_book_html.py                        # checks _build/html
    python scripts/check_book_html.py --build-dir /tmp/x/_build/html --expect 'notebooks/0[0-2]*:1:0'

It serves the built HTML on a localhost port, loads every page listed in _toc.yml with
`chromium --dump-dom`, and checks the rendered DOM:

* the page exists, has a non-empty <title> and an <h1> inside the article, and is not "Page not found";
* local <img> sources inside the article exist in the build;
* notebook pages carry a Colab launch link;
* minimum counts of figures (<img>) and audio players (<audio>) per page (see --expect);
* stored error outputs (tracebacks) are reported, and fail the check with --no-tracebacks;
* every page with formulas shows them rendered by MathJax (``mjx-container`` elements) with the network blocked,
  so the MathJax served from the build (sphinx-mathjax-offline) is what renders them.

It also takes screenshots of the preface and of one notebook page into _build/screenshots/.
Exit status: 0 all checks passed, 1 some check failed, 2 the check could not run (no build, no browser).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

REPO = Path(__file__).resolve().parent.parent

# pattern : (min figures, min audio players). Every matching pattern applies; the largest minimum wins.
DEFAULT_EXPECT = {
    "notebooks/*": (1, 0),
    "notebooks/01_*": (1, 1),
    "notebooks/03_*": (1, 1),
    "notebooks/04_*": (1, 1),
    "notebooks/05_*": (1, 1),
    "notebooks/06_*": (1, 1),
    "notebooks/07_*": (1, 1),
    "notebooks/08_*": (1, 1),
    "notebooks/09_*": (1, 1),
    "notebooks/10_*": (1, 1),
    "notebooks/11_*": (1, 1),
    "notebooks/13_*": (1, 1),
    "notebooks/14_*": (1, 1),
    "notebooks/15_*": (1, 1),
    "notebooks/16_*": (1, 1),
    "notebooks/17_*": (1, 0),
}

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]


class UsageError(Exception):
    pass


# ------------------------------------------------------------------------------------------------ TOC
def toc_pages(toc_path: Path) -> list[str]:
    """Docnames (paths without extension) in reading order: the root, then every file entry."""
    import yaml

    try:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {toc_path}: {exc}") from None
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return [str(p).removesuffix(".md").removesuffix(".ipynb") for p in pages]


def is_notebook(docname: str, source_dir: Path) -> bool:
    return (source_dir / f"{docname}.ipynb").exists() or docname.startswith("notebooks/")


# --------------------------------------------------------------------------------------------- server
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the report readable
        pass


def serve(directory: Path):
    """Serve `directory` on 127.0.0.1 at a free port, in a daemon thread. Returns (server, base_url)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ------------------------------------------------------------------------------------------- chromium
def find_chromium(explicit: str | None) -> str | None:
    candidates = (
        [explicit]
        if explicit
        else [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    )
    for name in candidates:
        if name and (path := shutil.which(name)):
            return path
    return None


# Resolve nothing but localhost: the check must not depend on the network (MathJax comes from a CDN, so
# formulas show as TeX source in offline screenshots; pass --online to let the browser fetch it).
OFFLINE_FLAG = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
ONLINE = False


def chromium_run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="telucodec-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, *([] if ONLINE else [OFFLINE_FLAG]), f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(chromium: str, url: str, timeout: float) -> str:
    proc = chromium_run(chromium, ["--virtual-time-budget=3000", "--dump-dom", url], timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"chromium --dump-dom failed (exit {proc.returncode}): {tail[0][:200]}")
    return proc.stdout


def screenshot(chromium: str, url: str, out: Path, timeout: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = chromium_run(
        chromium, ["--virtual-time-budget=3000", f"--screenshot={out}", "--window-size=1280,2000", url], timeout
    )
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium --screenshot failed for {url} (exit {proc.returncode})")


# ---------------------------------------------------------------------------------------------- check
@dataclass
class PageResult:
    docname: str
    url: str
    kind: str
    title: str = ""
    h1: str = ""
    figures: int = 0
    audio: int = 0
    tracebacks: int = 0
    formulas: int = 0
    rendered_formulas: int = 0
    colab_link: bool = False
    min_figures: int = 0
    min_audio: int = 0
    problems: list = field(default_factory=list)


_TAG = re.compile(r"<[^>]+>")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", _TAG.sub(" ", html)).strip()


def article_of(dom: str) -> str:
    m = re.search(r'<article[^>]*class="[^"]*bd-article[^"]*"[^>]*>(.*?)</article>', dom, re.S)
    if m:
        return m.group(1)
    m = re.search(r"<main[^>]*>(.*?)</main>", dom, re.S)
    return m.group(1) if m else dom


def expectations(docname: str, expect: dict) -> tuple[int, int]:
    figs = audio = 0
    for pattern, (f, a) in expect.items():
        if fnmatch.fnmatch(docname, pattern):
            figs, audio = max(figs, f), max(audio, a)
    return figs, audio


def check_page(dom: str, res: PageResult, build_dir: Path, want_colab: bool, fail_tracebacks: bool) -> None:
    m = re.search(r"<title>(.*?)</title>", dom, re.S)
    res.title = _text(m.group(1)) if m else ""
    art = article_of(dom)
    m = re.search(r"<h1[^>]*>(.*?)</h1>", art, re.S)
    res.h1 = _text(m.group(1)).rstrip("#").strip() if m else ""
    imgs = re.findall(r"<img\b[^>]*>", art)
    res.figures = len(imgs)
    res.audio = len(re.findall(r"<audio\b", art))
    res.tracebacks = sum(
        1 for cls in re.findall(r'class="([^"]*)"', art) if {"output", "traceback"} <= set(cls.split())
    )
    res.colab_link = "colab.research.google.com" in dom
    res.formulas = len(re.findall(r'class="math[ "]', art))
    res.rendered_formulas = len(re.findall(r"<mjx-container\b", art))

    if not res.title:
        res.problems.append("no <title>")
    if not res.h1:
        res.problems.append("no <h1> in the article (a notebook needs a first markdown cell with one '# ' title)")
    if re.search(r"page not found|404 not found", f"{res.title} {res.h1}", re.I):
        res.problems.append("'Page not found'")
    for tag in imgs:
        src = re.search(r'\bsrc="([^"]*)"', tag)
        if not src or src.group(1).startswith(("data:", "http:", "https:")):
            continue
        target = urlparse(urljoin(res.url, src.group(1))).path.lstrip("/")
        if not (build_dir / unquote(target)).is_file():
            res.problems.append(f"broken image {src.group(1)}")
    if res.figures < res.min_figures:
        res.problems.append(f"{res.figures} figure(s), expected at least {res.min_figures}")
    if res.audio < res.min_audio:
        res.problems.append(f"{res.audio} audio player(s), expected at least {res.min_audio}")
    if want_colab and res.kind == "notebook" and not res.colab_link:
        res.problems.append("no Colab launch link (check launch_buttons/repository in _config.yml)")
    if res.formulas and not res.rendered_formulas:
        res.problems.append(f"{res.formulas} formula(s) not rendered (MathJax did not load offline)")
    if fail_tracebacks and res.tracebacks:
        res.problems.append(f"{res.tracebacks} stored error output(s)")


def parse_expect(items: list[str]) -> dict:
    out = {}
    for item in items:
        try:
            pattern, figs, audio = item.rsplit(":", 2)
            out[pattern] = (int(figs), int(audio))
        except ValueError:
            raise UsageError(
                f"--expect {item!r}: use PATTERN:MIN_FIGURES:MIN_AUDIO, e.g. 'notebooks/04_*:1:1'"
            ) from None
    return out


def run(args) -> int:
    build_dir = Path(args.build_dir).resolve()
    source_dir = Path(args.source_dir).resolve()
    toc = Path(args.toc) if args.toc else source_dir / "_toc.yml"
    if not (build_dir / "index.html").exists():
        raise UsageError(f"no built book in {build_dir} (run `jupyter-book build . -W` first)")
    chromium = find_chromium(args.chromium)
    if chromium is None:
        raise UsageError("no Chromium found (install the Debian package `chromium`, or pass --chromium PATH)")
    pages = toc_pages(toc)
    expect = {} if args.no_default_expectations else dict(DEFAULT_EXPECT)
    expect.update(parse_expect(args.expect))
    shots_dir = Path(args.screenshots) if args.screenshots else build_dir.parent / "screenshots"

    server, base = serve(build_dir)
    t0 = time.monotonic()
    results: list[PageResult] = []
    try:

        def one(docname: str) -> PageResult:
            kind = "notebook" if is_notebook(docname, source_dir) else "page"
            figs, audio = expectations(docname, expect)
            res = PageResult(docname, urljoin(base, f"{docname}.html"), kind, min_figures=figs, min_audio=audio)
            if not (build_dir / f"{docname}.html").is_file():
                res.problems.append(f"{docname}.html was not built")
                return res
            try:
                dom = dump_dom(chromium, res.url, args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                res.problems.append(str(exc).splitlines()[0])
                return res
            check_page(dom, res, build_dir, not args.no_colab_check, args.no_tracebacks)
            return res

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, pages))

        shot_problems = []
        if not args.no_screenshots:
            notebook_pages = [r.docname for r in results if r.kind == "notebook"]
            targets = [pages[0]]
            nb = args.screenshot_page or (notebook_pages[min(4, len(notebook_pages) - 1)] if notebook_pages else None)
            if nb:
                targets.append(nb)
            for docname in targets:
                out = shots_dir / (docname.replace("/", "__") + ".png")
                try:
                    screenshot(chromium, urljoin(base, f"{docname}.html"), out, args.timeout)
                    print(f"screenshot: {out}")
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    shot_problems.append(str(exc).splitlines()[0])
    finally:
        server.shutdown()
        server.server_close()

    # ------------------------------------------------------------------ report
    width = max(len(r.docname) for r in results)
    print(f"\n{'page':<{width}}  kind      figs  audio  math  tb  status")
    for r in results:
        status = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        print(
            f"{r.docname:<{width}}  {r.kind:<8}  {r.figures:>4}  {r.audio:>5}  {r.rendered_formulas:>4}  "
            f"{r.tracebacks:>2}  {status}"
        )
    failed = [r for r in results if r.problems]
    tb_pages = [r.docname for r in results if r.tracebacks]
    if tb_pages and not args.no_tracebacks:
        print(f"\nnote: stored error outputs on {', '.join(tb_pages)} (use --no-tracebacks to make this fatal)")
    for p in shot_problems:
        print(f"screenshot problem: {p}")
    elapsed = time.monotonic() - t0
    print(
        f"\n{len(results)} pages checked in {elapsed:.1f} s: "
        f"{len(results) - len(failed)} ok, {len(failed)} failed"
        + (f", {len(shot_problems)} screenshot problem(s)" if shot_problems else "")
    )
    if args.report:
        Path(args.report).write_text(
            json.dumps(
                {
                    "pages": [asdict(r) for r in results],
                    "screenshot_problems": shot_problems,
                    "seconds": round(elapsed, 1),
                },
                indent=2,
            )
        )
    return 1 if failed or shot_problems else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--source-dir", default=str(REPO), help="book source (holds _toc.yml); default: the repository")
    p.add_argument("--build-dir", default=None, help="built HTML; default: <source-dir>/_build/html")
    p.add_argument("--toc", default=None, help="table of contents; default: <source-dir>/_toc.yml")
    p.add_argument("--chromium", default=None, help="browser executable; default: chromium on PATH")
    p.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="PATTERN:FIGS:AUDIO",
        help="minimum figures and audio players for pages matching a glob (repeatable)",
    )
    p.add_argument(
        "--no-default-expectations",
        action="store_true",
        help="drop the built-in minimums (notebooks >= 1 figure; 01, 03-11 >= 1 audio)",
    )
    p.add_argument("--no-colab-check", action="store_true", help="do not require a Colab link on notebook pages")
    p.add_argument("--no-tracebacks", action="store_true", help="fail on stored error outputs")
    p.add_argument("--screenshots", default=None, help="screenshot folder; default: <build-dir>/../screenshots")
    p.add_argument("--screenshot-page", default=None, help="notebook docname to screenshot besides the root page")
    p.add_argument("--no-screenshots", action="store_true")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="pages loaded in parallel (default: CPU count, at most 4)",
    )
    p.add_argument(
        "--online",
        action="store_true",
        help="let the browser reach the network (renders MathJax from its CDN in screenshots)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per browser call (default 60)")
    p.add_argument("--report", default=None, help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    global ONLINE
    ONLINE = args.online
    if args.build_dir is None:
        args.build_dir = str(Path(args.source_dir) / "_build" / "html")
    try:
        return run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
