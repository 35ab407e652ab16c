"""The notebooks' run cache (telucodec.book.run) is keyed by what a run executes, not by its source text."""

from pathlib import Path

import telucodec
from telucodec import book

TRAINING = Path(telucodec.__file__).parent / "training"
TRAIN = (TRAINING / "loop.py").read_text()  # fit()
RUN_DATA = (TRAINING / "run_data.py").read_text()  # the clips, crops and step counts fit() trains on


def test_docstring_comment_and_layout_edits_keep_the_fingerprint():
    edited = TRAIN.replace('"""Train a codec.', '"""Train a codec (reworded docstring).', 1)
    assert edited != TRAIN
    edited = edited.replace("\n\ndef ", "\n\n# a new comment\n\n\ndef ", 1)
    edited = edited.replace("(", "(  ", 1)  # layout inside an expression
    assert book.code_fingerprint(edited) == book.code_fingerprint(TRAIN)


def test_a_code_change_moves_the_fingerprint():
    changed = RUN_DATA.replace("per_epoch = steps_per_epoch(", "per_epoch = 1 + steps_per_epoch(", 1)
    assert changed != RUN_DATA
    assert book.code_fingerprint(changed) != book.code_fingerprint(RUN_DATA)
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


def test_a_recipe_run_trains_the_recipe_and_is_cached_apart_from_the_story_run(tmp_path, monkeypatch):
    """tb.run(..., recipe="working") trains the working recipe's network (weight norm, k-means codebooks) with the
    fixes it is given, and never shares a cache entry with the story run of the same fixes."""
    import numpy as np
    import torch

    from telucodec import Fixes
    from telucodec.bench import synthetic_speech

    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    profile = book.Profile("ci", "ci", 2, "cpu", "test")
    clips = ([synthetic_speech(2.0, seed=s).astype(np.float32) for s in range(4)], [synthetic_speech(2.0, seed=9)])
    story = book.run(profile, Fixes.all(), clips=clips)
    working = book.run(profile, Fixes.all(), clips=clips, recipe="working")
    assert working.model.config.weight_norm and working.model.config.kmeans_buffer > 0
    assert not story.model.config.weight_norm and story.model.fixes == working.model.fixes == Fixes.all()
    assert len(list((tmp_path / "runs").glob("*.pt"))) == 2
    again = book.run(profile, Fixes.all(), clips=clips, recipe="working")  # from the cache
    assert all(
        torch.equal(a, b) for a, b in zip(working.model.state_dict().values(), again.model.state_dict().values())
    )
