"""The notebooks' helpers fail loudly where a page would otherwise show something wrong."""

import pytest

from telucodec.book import show_source
from telucodec.codec.quantizer import ResidualVQ


def test_show_source_refuses_a_listing_that_matches_nothing(capsys):
    with pytest.raises(ValueError, match="stale"):
        show_source(ResidualVQ.forward, contains="this text is in no line of the function")
    show_source(ResidualVQ.forward, contains="per_step_ste", context=1)  # a line that exists is shown
    assert "per_step_ste" in capsys.readouterr().out


def test_a_committed_file_is_embedded_as_its_own_bytes(tmp_path):
    import base64

    import numpy as np
    import pytest
    import soundfile as sf

    from telucodec.book import audio_html, file_html

    x = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    sf.write(tmp_path / "a.flac", x, 16000)
    page = file_html(tmp_path / "a.flac")
    assert page.startswith('<audio controls preload="none" src="data:audio/flac;base64,')
    assert base64.b64decode(page.split("base64,")[1].split('"')[0]) == (tmp_path / "a.flac").read_bytes()
    assert len(page) < 0.8 * len(audio_html(x))  # smaller than the WAV the array player embeds
    with pytest.raises(ValueError, match="not an audio file"):
        file_html(tmp_path / "a.txt")


def test_a_fix_inside_the_working_recipe_is_read_with_its_seeds_or_said_untestable(capsys, monkeypatch):
    """Fixes 1-4 are read from the committed three-seed runs with a verdict per metric; fixes 5-7, which the working
    loss never reaches, are said to be untestable there instead of shown as a table of zeros."""
    import telucodec.book.tables as tables
    from telucodec.book import in_a_codec_that_learns

    shown = []
    monkeypatch.setattr(tables, "table", lambda rows, *a, **k: shown.append(rows))
    runs = in_a_codec_that_learns("output_scale")
    assert {len(runs["working"]), len(runs["working-output_scale"])} == {3}
    assert {r["steps"] for r in runs["working"].values()} == {600}
    assert "3 seeds each" in capsys.readouterr().out
    summary, effect = shown
    assert [r["configuration"] for r in summary] == ["working", "working-output_scale"]
    assert effect[0]["comparison"] == "working without output_scale, against working"
    assert all(v.endswith(("(better)", "(worse)", "(n.s.)")) for k, v in effect[0].items() if k != "comparison")
    assert in_a_codec_that_learns("fp32_perceptual") == {}
    assert "cannot test it" in capsys.readouterr().out


def test_every_stored_listing_is_the_code_as_it_is_now(monkeypatch):
    """The book renders stored outputs (execute_notebooks: off), so a listing stored before the code changed would
    show code that no longer runs. The notebook's imports and each show_source call are run again and must display,
    listing for listing, what the notebook stores."""
    import ast
    import json
    from pathlib import Path

    import IPython.display

    import telucodec.book as tb

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    stale, checked = [], 0
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        namespace = {"tb": tb}
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            body = ast.parse(source).body
            exec(
                "\n".join(
                    ast.get_source_segment(source, n) for n in body if isinstance(n, (ast.Import, ast.ImportFrom))
                ),
                namespace,
            )
            calls = [ast.get_source_segment(source, n) for n in body if isinstance(n, ast.Expr)]
            calls = [c for c in calls if "show_source(" in c]
            if not calls:
                continue
            shown.clear()
            exec("\n".join(calls), namespace)
            stored = [
                "".join(o["data"]["text/plain"])
                for o in cell["outputs"]
                if o.get("output_type") == "display_data" and "text/plain" in o["data"]
            ]
            checked += 1
            if [obj.data.rstrip("\n") for obj in shown] != [text.rstrip("\n") for text in stored]:
                stale.append(f"{path.stem} cell {i}")
    assert checked > 10
    assert not stale, ", ".join(stale)


def test_the_stored_module_map_names_every_module_of_the_package():
    """Chapter 00's module map is generated from the package, but the book shows the stored output: a module added
    or removed since the chapter last ran would be missing from (or linger in) the map a reader sees."""
    import json
    import pkgutil
    import re
    from pathlib import Path

    import telucodec

    path = Path(__file__).resolve().parents[1] / "notebooks" / "00_setup_and_tour.ipynb"
    (cell,) = [c for c in json.loads(path.read_text())["cells"] if "pkgutil.walk_packages" in "".join(c["source"])]
    stored = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in cell["outputs"])
    modules = {
        m.name
        for m in pkgutil.walk_packages(telucodec.__path__, "telucodec.")
        if not m.ispkg and not m.name.endswith("__main__")
    }
    assert set(re.findall(r"\| `(telucodec\.[\w.]+)` \|", stored)) == modules  # the module column
