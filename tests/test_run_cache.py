"""The notebooks' run cache (telucodec.book.run) is keyed by what a run executes, not by its source text."""

from pathlib import Path

from telucodec import book

TRAIN = (Path(book.__file__).parent / "training" / "loop.py").read_text()


def test_docstring_comment_and_layout_edits_keep_the_fingerprint():
    edited = TRAIN.replace('"""Train a codec.', '"""Train a codec (reworded docstring).', 1)
    assert edited != TRAIN
    edited = edited.replace("\n\ndef ", "\n\n# a new comment\n\n\ndef ", 1)
    edited = edited.replace("(", "(  ", 1)  # layout inside an expression
    assert book.code_fingerprint(edited) == book.code_fingerprint(TRAIN)


def test_a_code_change_moves_the_fingerprint():
    changed = TRAIN.replace("per_epoch = steps_per_epoch(", "per_epoch = 1 + steps_per_epoch(", 1)
    assert changed != TRAIN
    assert book.code_fingerprint(changed) != book.code_fingerprint(TRAIN)
    # a function whose whole body is a docstring stays a valid tree when the docstring goes
    assert book.code_fingerprint('def f():\n    """only a docstring"""\n') == book.code_fingerprint(
        "def f():\n    pass\n"
    )


def test_the_run_modules_follow_the_imports_of_train():
    mods = book.run_modules()
    for name in (
        "training.loop",
        "codec.model",
        "codec.quantizer",
        "training.losses",
        "fixes",
        "config",
        "training.batches",
        "codec.backbone",
    ):
        assert name in mods, name
    assert "book" not in mods and not any(m.startswith("cli") for m in mods) and "evaluation.yardstick" not in mods
    # `from telucodec.x import y` follows y where y is a module, and imports inside functions count
    assert {"bench.common", "evaluation.metrics", "coding.bitstream"} <= set(book.run_modules("bench.quality"))
