"""The measurements that the exercise solutions of chapters 13, 15 and 16 quote, so that every number in them can
be traced to a committed file: results/book/exercise_measurements.json.

    python scripts/exercise_measurements.py            # about five minutes on one CPU thread
    python scripts/exercise_measurements.py --ch15     # only chapter 15's entries (seconds), the rest kept
    python scripts/exercise_measurements.py --ch16     # only chapter 16's entries (seconds), the rest kept
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    import sys

    torch.set_num_threads(1)
    path = Path(__file__).resolve().parent.parent / "results" / "book" / "exercise_measurements.json"
    t0 = time.perf_counter()
    if "--ch16" in sys.argv[1:]:
        out = json.loads(path.read_text())
        out.update(chapter_16())
        path.write_text(json.dumps(out, indent=1))
        print(json.dumps(out["ch16_probe"], indent=1))
        return 0
    if "--ch15" in sys.argv[1:]:
        out = json.loads(path.read_text())
    else:
        out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, **chapter_13()}
        out.update(chapter_16())
    out.update(chapter_15())
    out["ch15_machine"] = platform.processor() or platform.machine()
    out["ch15_seconds" if "--ch15" in sys.argv[1:] else "seconds"] = time.perf_counter() - t0
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k.startswith("ch15")}, indent=1))
    return 0


def chapter_13() -> dict:
    from telucodec import Fixes
    from telucodec.bench import synthetic_speech
    from telucodec.config import preset
    from telucodec.training.diagnostics import overfit_one_clip

    clip = synthetic_speech(1.0, seed=1)
    cfg = preset("ci").codec
    out: dict = {}
    # chapter 13, exercise 1: probe 1 with the balanced working loss, quantizer in and bypassed
    out["ch13_ex1_working_loss"] = {
        label: overfit_one_clip(
            clip, cfg, steps=600, lr=3e-3, bypass_quantizer=bypass, fixes=Fixes.none(), loss="working", eval_every=100
        )["curve"]
        for label, bypass in (("quantizer_in", False), ("bypassed", True))
    }
    # chapter 13, exercise 3: Fixes.all() (with the learnable output scale) against Fixes.all() without it
    out["ch13_ex3_output_scale"] = {
        f"{label}_lr{lr:g}": overfit_one_clip(
            clip, cfg, steps=400, lr=lr, bypass_quantizer=True, fixes=fixes, loss="working", eval_every=100
        )["curve"]
        for lr in (1e-2, 1e-3)
        for label, fixes in (("with_scale", Fixes.all()), ("without_scale", Fixes.parse("all-output_scale")))
    }
    return out


def chapter_15() -> dict:
    import telucodec
    from telucodec.cli.demo import demo_clip
    from telucodec.coding.inference import ONE_SPEAKER, without_envelope
    from telucodec.evaluation.metrics import band_level_error
    from telucodec.evaluation.scoring import score

    out: dict = {}
    shipped = telucodec.load(ONE_SPEAKER)  # chapter 15 studies the first shipped codec
    model = without_envelope(shipped)  # exercise 2 is about the codec as trained (its 12 stages)
    _, x = demo_clip()
    codes = model.encode(x, 16000, kbps=6.0)
    # chapter 15, exercise 2: stage-1 codes with random codes in stages 2-12, against stage 1 alone
    rng = np.random.default_rng(0)
    mixed = np.vstack(
        [codes[:1], rng.integers(0, model.config.codebook_size, size=(codes.shape[0] - 1, codes.shape[1]))]
    )
    out["ch15_ex2_random_later_stages"] = {
        label: {k: float(v) for k, v in score(x, model.decode(c, len(x)), 16000, perceptual=False).items()}
        for label, c in (("stage_1_only", codes[:1]), ("stage_1_plus_random", mixed), ("all_12", codes))
    }
    # chapter 15, exercise 4: the shipped model's 6 kbps codes decoded with the envelope, and as the codec's 9 stages
    six = shipped.encode(x, 16000, kbps=6.0)
    decoded = {"with_envelope": shipped.decode(six, len(x)), "codec_9_stages": model.decode(six[:9], len(x))}
    out["ch15_ex4_band_levels_db"] = {
        **{label: band_level_error(x, y) for label, y in decoded.items()},
        "with_envelope_vs_9_stages": band_level_error(decoded["codec_9_stages"], decoded["with_envelope"]),
    }
    return out


def chapter_16() -> dict:
    """Chapter 16's probe (telucodec.training.diagnostics.delay_uncertainty on the longest held-out sentence) at the
    chapter's 0.3 ms and exercise 1's 1 ms."""
    from telucodec.cli.demo import held_out_clips
    from telucodec.evaluation.metrics import spectral_texture
    from telucodec.training.diagnostics import delay_uncertainty

    _, x = max(held_out_clips(seconds=4.0), key=lambda c: len(c[1]))
    out = {}
    for top in (0.3e-3, 1e-3):
        probe = delay_uncertainty(x, top)
        texture = spectral_texture(x, probe["average"])
        out[f"{top * 1000:g} ms"] = {
            "sharp": {k: round(v, 4) for k, v in probe["sharp"].items()},
            "average": {k: round(v, 4) for k, v in probe["smooth"].items()},
            "average_level_db": {b: round(v["level_db"], 1) for b, v in texture.items() if b != "frequency_detail"},
        }
    return {"ch16_probe": out}


if __name__ == "__main__":
    raise SystemExit(main())
