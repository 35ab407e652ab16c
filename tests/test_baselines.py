"""Classical-codec round trips: same length, aligned to the input, and the bits really spent."""

import os
import stat
import sys

import numpy as np
import pytest

from telucodec.bench import synthetic_speech
from telucodec.errors import TeluCodecError
from telucodec.evaluation import baseline_codecs as BC
from telucodec.evaluation import baselines as B

SR = 16000
AVAILABLE = B.available_baselines()
needs = lambda name: pytest.mark.skipif(
    name not in AVAILABLE,  # noqa: E731
    reason=f"{name} unavailable: {B.unavailable_baselines().get(name)}",
)


@pytest.fixture(scope="module")
def speech():
    return synthetic_speech(3.0, SR, seed=3)


@pytest.fixture(scope="module")
def trips(speech):
    """One round trip per available classical codec, shared by the tests below."""
    return {name: B.round_trip(name, speech, SR) for name in AVAILABLE if not name.startswith("codec2")}


# (name, lowest and highest acceptable bits/s actually spent on 3 s of speech)
RATES = [
    ("opus-6", 4000, 8000),  # VBR around the 6 kbit/s target
    ("opus-12", 8000, 14500),
    ("amrnb-4.75", 5200, 5400),  # 13 bytes per 20 ms frame = 5.2 kbit/s, plus one flushed frame
    ("amrnb-12.2", 12800, 13200),  # 32 bytes per frame = 12.8 kbit/s, plus the flush
]


@pytest.mark.parametrize("name,lo,hi", RATES)
def test_round_trip_length_rate_and_alignment(trips, speech, name, lo, hi):
    if name not in trips:
        pytest.skip(f"{name} unavailable here")
    r = trips[name]
    assert r.decoded.dtype == np.float32 and r.decoded.shape == speech.shape
    assert np.isfinite(r.decoded).all() and np.abs(r.decoded).max() > 0.05
    assert lo <= r.bits_per_second <= hi, r.bits_per_second
    assert r.bits_per_second == pytest.approx(8 * r.payload_bytes / 3.0)
    # aligned: the correlation peak sits at lag 0 (a sample either way for the filters' phase)
    lag, corr = BC.estimate_delay(speech, r.decoded, SR, max_lag=40, min_lag=-40)
    assert abs(lag) <= 2, (name, lag, corr)
    assert corr > 0.75, (name, corr)


@needs("amrnb-12.2")
def test_amr_lookahead_constant_is_what_the_codec_does(speech):
    """Without removing the 40-sample look-ahead the output would lag by 80 samples at 16 kHz."""
    r = B.round_trip("amrnb-12.2", speech, SR)
    shifted = np.concatenate([np.zeros(2 * BC.AMR_NB_LOOKAHEAD, np.float32), r.decoded])[: len(speech)]
    lag, _ = BC.estimate_delay(speech, shifted, SR, max_lag=160, min_lag=-40)
    assert abs(lag - 2 * BC.AMR_NB_LOOKAHEAD) <= 2


def test_higher_rate_spends_more_bits_and_sounds_closer(trips, speech):
    if not {"opus-6", "opus-12"} <= set(trips):
        pytest.skip("opus unavailable")
    lo, hi = trips["opus-6"], trips["opus-12"]
    assert hi.bits_per_second > 1.4 * lo.bits_per_second
    err = lambda r: np.mean((r.decoded - speech) ** 2)  # noqa: E731
    assert err(hi) < err(lo)


@needs("opus-6")
@pytest.mark.parametrize("rate", [8000, 22050])
def test_other_input_rates_come_back_at_that_rate(rate):
    x = synthetic_speech(1.0, rate, seed=1)
    r = B.round_trip("opus-6", x, rate)
    assert r.decoded.shape == x.shape
    lag, corr = BC.estimate_delay(x, r.decoded, rate, max_lag=rate // 400, min_lag=-(rate // 400))
    assert abs(lag) <= 2 * rate // 16000 + 1 and corr > 0.6


@needs("amrnb-4.75")
def test_silence_and_odd_lengths():
    for n in (1, 161, 4001):
        r = B.round_trip("amrnb-4.75", np.zeros(n, np.float32), SR)
        assert r.decoded.shape == (n,) and np.abs(r.decoded).max() < 1e-2


def test_bad_requests_are_one_line_errors():
    with pytest.raises(TeluCodecError, match="unknown baseline"):
        B.round_trip("mp3-128", np.zeros(100), SR)
    name = AVAILABLE[0] if AVAILABLE else "opus-6"
    with pytest.raises(TeluCodecError):
        B.round_trip(name, np.zeros((2, 100)), SR)
    with pytest.raises(TeluCodecError):
        B.round_trip(name, np.array([0.0, np.nan, 0.0]), SR)
    with pytest.raises(TeluCodecError):
        B.round_trip(name, np.zeros(0), SR)


def test_availability_is_reported_with_reasons():
    assert set(AVAILABLE) | set(B.unavailable_baselines()) == set(B.BASELINES)
    assert all(reason for reason in B.unavailable_baselines().values())
    report = B.encoder_report()
    assert "av:libopus" in report and "path:c2enc" in report


def test_codec2_path_with_stand_in_tools(tmp_path, monkeypatch, speech):
    """The Codec2 plumbing (files, bit count, delay search) with stand-in c2enc/c2dec scripts: 'encoding'
    copies the PCM, 'decoding' delays it by 24 samples (3 ms at 8 kHz), which the delay search must undo."""
    enc = tmp_path / "c2enc"
    dec = tmp_path / "c2dec"
    enc.write_text(f"#!{sys.executable}\nimport shutil, sys\nshutil.copyfile(sys.argv[2], sys.argv[3])\n")
    dec.write_text(
        f"#!{sys.executable}\nimport sys\nd = open(sys.argv[2], 'rb').read()\n"
        "open(sys.argv[3], 'wb').write(bytes(48) + d)\n"
    )
    for f in (enc, dec):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    B._unavailable_reason.cache_clear()
    try:
        assert "codec2-3200" in B.available_baselines()
        r = B.round_trip("codec2-3200", speech, SR)
    finally:
        B._unavailable_reason.cache_clear()
    assert r.delay_samples == 24 and "24 samples" in r.note
    assert r.decoded.shape == speech.shape
    assert r.bits_per_second == pytest.approx(8000 * 16)  # the stand-in 'codes' are the 16-bit 8 kHz PCM
    lag, _ = BC.estimate_delay(speech, r.decoded, SR, max_lag=20, min_lag=-20)
    assert abs(lag) <= 1
