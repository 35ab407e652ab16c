"""The book says each thing once: no paragraph of prose is stored twice, in one chapter or across chapters."""

import json
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def paragraphs():
    """(where, paragraph) for every paragraph of 200 characters or more of the notebooks' markdown and book/*.md."""
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb_path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                for p in re.split(r"\n\s*\n", "".join(cell["source"])):
                    yield f"{nb_path.stem} cell {i}", " ".join(p.split())
    for md in sorted((ROOT / "book").glob("*.md")):
        for p in re.split(r"\n\s*\n", md.read_text()):
            yield md.name, " ".join(p.split())


def test_no_paragraph_is_stored_twice():
    where = defaultdict(list)
    for place, p in paragraphs():
        if len(p) >= 200:
            where[p].append(place)
    copies = {p[:80]: places for p, places in where.items() if len(places) > 1}
    assert not copies


def test_no_line_of_prose_is_stored_twice():
    """Catches repeats inside one paragraph too (an exercise pasted eight times in a row): every line of prose of
    80 characters or more, outside code blocks and tables, appears once in the whole book."""
    where = defaultdict(list)
    texts = [
        (f"{p.stem} cell {i}", "".join(c["source"]))
        for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
        for i, c in enumerate(json.loads(p.read_text())["cells"])
        if c["cell_type"] == "markdown"
    ]
    texts += [(md.name, md.read_text()) for md in sorted((ROOT / "book").glob("*.md"))]
    for place, text in texts:
        fenced = False
        for line in text.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and len(line.strip()) >= 80 and not line.lstrip().startswith("|"):
                where[line.strip()].append(place)
    copies = {line[:80]: places for line, places in where.items() if len(places) > 1}
    assert not copies


def test_no_notebook_redefines_a_package_function_under_its_name():
    """A notebook that defines `robust_range_ratio` itself shows the reader a different measure under the name the
    package's tables use. Notebook code defines only names the package does not export."""
    import ast
    import importlib
    import pkgutil

    import telucodec

    names = set()
    for m in pkgutil.walk_packages(telucodec.__path__, "telucodec."):
        if not m.name.endswith("__main__"):
            module = importlib.import_module(m.name)
            names |= {
                n
                for n, v in vars(module).items()
                if not n.startswith("_") and callable(v) and getattr(v, "__module__", "").startswith("telucodec")
            }
    shadows = []
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb_path.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            code = "\n".join(l for l in "".join(cell["source"]).splitlines() if not l.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                    shadows.append(f"{nb_path.stem} cell {i}: {node.name}")
    assert not shadows


def test_checked_cells_are_tagged_not_commented():
    """A cell whose output nbval compares carries the cell tag ``nbval-check-output`` (invisible in the rendered
    page), not a test-marker comment as its first line that every reader has to read past; and every chapter
    checks at least one cell."""
    marker = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$", re.M)
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"]
        assert not [i for i, c in enumerate(cells) if marker.search("".join(c["source"]))], p.name
        assert any("nbval-check-output" in c["metadata"].get("tags", []) for c in cells), p.name


def test_each_fix_has_one_verdict_worded_the_same_everywhere():
    """The seven verdicts (telucodec.book.verdicts) open each fix chapter's verdict and its row in chapter 12's
    table, and fill chapter 14's verdict table, word for word; a fix chapter states no other verdict headline."""
    from telucodec import SEVEN
    from telucodec.book.verdicts import headline, table_cell

    def markdown(name):
        (path,) = (ROOT / "notebooks").glob(f"{name}*.ipynb")
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")

    claims = markdown("12_claims_vs_evidence")
    summary = markdown("14_what_actually_fixes_it")
    for i, fix in enumerate(SEVEN):
        chapter = markdown(f"{i + 4:02d}_fix{i + 1}_")
        assert headline(fix) in chapter, fix
        assert re.findall(r"\*\*Verdict: [^*]*\*\*", chapter) == [headline(fix)], fix
        assert table_cell(fix) in claims, fix
        assert table_cell(fix) in summary, fix


def test_no_chapter_is_over_twenty_thousand_characters_of_prose():
    """A chapter that needs more than 20 000 characters of prose (its markdown cells) is two chapters."""
    sizes = {
        p.stem: sum(
            len("".join(c["source"])) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "markdown"
        )
        for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
    }
    assert {k: v for k, v in sizes.items() if v > 20_000} == {}


def test_notebook_code_fits_the_page():
    """The rendered book's code column shows about 90 characters; a longer line scrolls sideways."""
    long = [
        f"{p.stem} cell {i}: {len(line)} characters"
        for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
        for i, c in enumerate(json.loads(p.read_text())["cells"])
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if len(line) > 88
    ]
    assert not long, ", ".join(long)
