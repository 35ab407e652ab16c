"""telucodec.evaluation.scoring.paired_difference: the clip-by-clip comparison the model card and chapter 15 use."""

import numpy as np
import pytest

from telucodec.evaluation.scoring import paired_difference


def _rows(values, key, names=None):
    names = names or [f"c{i}" for i in range(len(values))]
    return [{"clip": n, key: v} for n, v in zip(names, values)]


def test_a_consistent_gain_is_a_verdict_and_noise_around_zero_is_not():
    rng = np.random.default_rng(1)
    base = rng.uniform(1.5, 2.5, 30)
    better = paired_difference(
        _rows(base + 0.1 + 0.02 * rng.standard_normal(30), "pesq_wb"), _rows(base, "pesq_wb"), "pesq_wb"
    )
    assert 0.08 < better["low"] < better["mean"] < better["high"] < 0.12 and better["wins"] == 30
    noise = rng.standard_normal(30)
    tie = paired_difference(_rows(base + noise - noise.mean(), "pesq_wb"), _rows(base, "pesq_wb"), "pesq_wb")
    assert tie["low"] < 0 < tie["high"] and abs(tie["mean"]) < 1e-12 and tie["clips"] == 30


def test_mel_distance_counts_lower_as_better_and_clips_are_matched_by_name():
    ours = _rows([0.2, 0.3, 0.1], "mel_distance", ["b", "a", "c"])
    theirs = _rows([0.5, 0.4, 0.6], "mel_distance", ["a", "b", "c"])  # other order: b 0.2<0.4, a 0.3<0.5, c 0.1<0.6
    r = paired_difference(ours, theirs, "mel_distance")
    assert r["wins"] == 3 and r["mean"] == pytest.approx((0.2 + 0.2 + 0.5) / 3)
    missing = theirs + [{"clip": "d", "mel_distance": 9.0}, {"clip": "e", "mel_distance": None}]
    assert paired_difference(ours, missing, "mel_distance")["clips"] == 3  # only clips both scored


def test_bad_metric_or_too_few_clips_fail_clearly():
    with pytest.raises(ValueError, match="unknown metric 'pesq'"):
        paired_difference(_rows([1, 2], "pesq"), _rows([1, 2], "pesq"), "pesq")
    with pytest.raises(ValueError, match="1 clips scored by both"):
        paired_difference(_rows([1.0], "stoi"), _rows([1.0, 2.0], "stoi"), "stoi")
