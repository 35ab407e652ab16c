"""The yardstick (telucodec.evaluation.yardstick): bits from the file, Opus's spent rate, levels, bandwidth, statistics."""

import numpy as np
import pytest

from telucodec.coding.inference import CodecModel
from telucodec.data.audio_io import loudness_lufs
from telucodec.evaluation import yardstick as y
from telucodec.evaluation import yardstick_report as yr

SR = 16000


def _speechlike(seconds=3.0, seed=0):
    """Harmonics of a gliding 120-200 Hz pitch under a syllable-rate envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 160 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 200 < SR / 2)
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2 + 0.003 * rng.standard_normal(len(t))
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def test_telucodec_bits_are_the_tlc_file_length():
    from telucodec.coding.tlcfile import pack

    model = CodecModel.untrained("ci")
    x = _speechlike(2.0)
    est, bits = y.telucodec_round_trip(model, x, 6.0)
    codes = model.encode(x, SR, kbps=6.0)
    assert bits == 8 * len(
        pack(codes, sample_rate=SR, codebook_size=1024, hop_length=model.config.hop_length, num_samples=len(x))
    )
    nominal = model.config.bitrate(codes.shape[0]) * len(x) / SR
    assert nominal < bits < nominal + 8 * 64  # the payload plus a header and a checksum
    assert est.shape == x.shape


def test_an_entropy_coded_model_is_counted_by_its_version_2_file_and_decodes_the_same():
    from telucodec.coding import entropy_fit

    model = CodecModel.untrained("ci")
    x = _speechlike(2.0)
    est_fixed, bits_fixed = y.telucodec_round_trip(model, x, 6.0)
    model.entropy = entropy_fit.fit_on_clips(model, [_speechlike(3.0), x])
    est, bits, fixed = y.telucodec_round_trip(model, x, 6.0, fixed_bits=True)
    codes = model.encode(x, SR, kbps=6.0)
    assert bits == 8 * len(model.pack(codes, len(x))) and model.unpack(model.pack(codes, len(x))).version == 2
    assert bits < bits_fixed == fixed  # the same codes, fewer bits
    np.testing.assert_array_equal(est, est_fixed)  # entropy coding is lossless: the same audio
    result = y.run(
        model, [("a", x), ("b", _speechlike(2.0, seed=1))], levels=(None,), kbps=(6.0,), opus_targets=(6.0, 8.0)
    )
    entry = result["systems"]["TeluCodec 6 kbps"]["as recorded"]
    assert entry["kbps"] < entry["kbps_fixed"]
    assert "without entropy coding" in yr.markdown(result)


def test_opus_bits_are_its_packets_and_vbr_spends_under_target():
    x = _speechlike(4.0)
    est, bits = y.opus_round_trip(x, SR, 8.0, "audio")
    spent = bits / (len(x) / SR) / 1000
    assert 3.0 < spent < 8.5
    assert est.shape == x.shape and np.isfinite(est).all()
    with pytest.raises(ValueError, match="application"):
        y.opus_round_trip(x, SR, 8.0, "music")


def test_equal_bits_is_the_lowest_target_spending_95_percent():
    spent = {6.0: 5.3, 8.0: 7.0, 10.0: 9.2, 12.0: 11.0}
    assert y.equal_bits_target(6.06, spent) == 8.0
    assert y.equal_bits_target(5.5, spent) == 6.0  # 5.3 >= 0.95 x 5.5
    assert y.equal_bits_target(5.7, spent) == 8.0
    assert y.equal_bits_target(20.0, spent) == 12.0


@pytest.mark.parametrize("lufs", [-35.0, -25.0, -15.0])
def test_set_level_reaches_the_loudness(lufs):
    x = _speechlike(3.0)
    out, clipped = y.set_level(x, SR, lufs)
    assert abs(loudness_lufs(out, SR) - lufs) < 0.2
    assert clipped == 0.0 and np.abs(out).max() <= 1.0
    same, _ = y.set_level(x, SR, None)
    np.testing.assert_array_equal(same, x)


def test_set_level_clips_at_full_scale_and_says_how_much():
    x = _speechlike(3.0)
    out, clipped = y.set_level(x, SR, 0.0)
    assert clipped > 0 and np.abs(out).max() == 1.0


def test_passband_finds_a_low_pass():
    from scipy.signal import butter, sosfiltfilt

    x = [
        _speechlike(3.0, s) + 0.05 * np.random.default_rng(s).standard_normal(3 * SR).astype(np.float32)
        for s in range(2)
    ]
    sos = butter(10, 4000, fs=SR, output="sos")
    lp = [sosfiltfilt(sos, c) for c in x]
    assert 3750 <= y.passband_hz(x, lp) <= 4500
    assert y.passband_hz(x, x) == SR / 2


def test_mel_distance_4k_ignores_the_band_above_4k():
    from scipy.signal import butter, sosfiltfilt

    x = _speechlike(2.0) + 0.05 * np.random.default_rng(1).standard_normal(2 * SR).astype(np.float32)
    lp = sosfiltfilt(butter(10, 4500, fs=SR, output="sos"), x)
    assert y.mel_distance_4k(x, lp) < 0.05
    assert y.mel_distance_4k(x, 0.5 * x) > 0.25  # a 6 dB error is log10(2) = 0.3


def test_dnsmos_prefers_the_clean_signal():
    x = _speechlike(3.0)
    noisy = x + 0.1 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    clean, worse = y.dnsmos_ovrl(x), y.dnsmos_ovrl(np.clip(noisy, -1, 1))
    assert 1.0 <= worse < clean <= 5.0
    assert np.isnan(y.dnsmos_ovrl(np.zeros(SR, np.float32)))


def test_compare_needs_the_interval_to_exclude_zero():
    rng = np.random.default_rng(0)
    base = [{"clip": str(i), "pesq_wb": 2 + rng.normal(0, 0.3)} for i in range(30)]
    better = [{"clip": r["clip"], "pesq_wb": r["pesq_wb"] + 0.2 + rng.normal(0, 0.05)} for r in base]
    tie = [{"clip": r["clip"], "pesq_wb": r["pesq_wb"] + rng.normal(0, 0.3)} for r in base]
    assert yr.compare(better, base, ["pesq_wb"])["pesq_wb"]["verdict"] == "better"
    assert yr.compare(base, better, ["pesq_wb"])["pesq_wb"]["verdict"] == "worse"
    assert yr.compare(tie, base, ["pesq_wb"])["pesq_wb"]["verdict"] == "no measurable difference"


def test_a_run_scores_every_system_and_names_equal_bits():
    """Two processes' runs (as recorded; -25 LUFS) merge into the one a single run gives, an extra codec beside."""
    model = CodecModel.untrained("ci")
    clips = [(f"c{i}", _speechlike(2.0, i)) for i in range(2)]
    kw = dict(
        kbps=(3.0, 6.0), opus_targets=(6.0, 8.0), visqol_levels=(), others={"TeluCodec earlier 3 kbps": (model, 3.0)}
    )
    parts = [y.run(model, clips, levels=(level,), **kw) for level in (-25.0, None)]
    assert parts[0]["equal_bits_opus_target"] is None and "not measured in this run" in yr.markdown(parts[0])
    result = yr.merge(parts)
    assert set(result["systems"]["TeluCodec 6 kbps"]) == {"as recorded", "-25 LUFS"}
    assert set(result["systems"]["TeluCodec earlier 3 kbps"]) == {"as recorded", "-25 LUFS"}
    assert result["equal_bits_opus_target"] in (6.0, 8.0) and result["levels"] == ["-25 LUFS", "as recorded"]
    assert 5.9 < result["systems"]["TeluCodec 6 kbps"]["as recorded"]["kbps"] < 6.3
    assert 2.9 < result["systems"]["TeluCodec earlier 3 kbps"]["-25 LUFS"]["kbps"] < 3.2
    text = yr.markdown(result)
    assert "TeluCodec 6 kbps vs Opus 6 kbps, -25 LUFS" in text and "passband" in text
    assert "TeluCodec 6 kbps vs TeluCodec earlier 3 kbps, as recorded" in text
    with pytest.raises(ValueError, match="same clips"):
        yr.merge([parts[0], y.run(model, clips[:1], levels=(-25.0,), **kw)])
