"""Benchmark code paths on tiny inputs (--quick): tables, JSON and plot written, numbers consistent."""

import json
import math

import numpy as np
import pytest
import soundfile as sf

from telucodec import bench
from telucodec.coding import bitstream, inference
from telucodec.evaluation.baselines import available_baselines

try:
    import encodec  # noqa: F401

    HAVE_ENCODEC = True
except ImportError:
    HAVE_ENCODEC = False


def test_synthetic_speech_is_deterministic_and_speech_like():
    a, b = bench.synthetic_speech(2.0, 16000, seed=5), bench.synthetic_speech(2.0, 16000, seed=5)
    assert a.dtype == np.float32 and a.shape == (32000,)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, bench.synthetic_speech(2.0, 16000, seed=6))
    assert np.abs(a).max() == pytest.approx(0.7, abs=1e-3)
    # energy mostly below 4 kHz, but not a pure tone: many active spectral bins
    spec = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(len(a), 1 / 16000)
    assert spec[freqs < 4000].sum() > 0.7 * spec.sum()
    assert (spec > 1e-3 * spec.max()).mean() > 0.05


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained 'ci' codec exported like a shipped checkpoint, to exercise --checkpoint."""
    path = tmp_path_factory.mktemp("ckpt") / "ci.safetensors"
    inference.export_safetensors(inference.CodecModel.untrained("ci", seed=0), path)
    return path


def test_quality_quick_writes_table_json_and_plot(tmp_path, ckpt):
    out = tmp_path / "bench"
    assert bench.main(["quality", "--quick", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    md, js, png = out / "quality.md", out / "quality.json", out / "quality.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    res = json.loads(js.read_text())
    assert res["command"].startswith("python -m telucodec bench quality --quick")
    assert res["machine"]["torch"] and res["clips"] == 2
    rows = {r["system"]: r for r in res["rows"]}
    seconds = res["audio_seconds"]
    for kbps in bench.TELUCODEC_KBPS:
        r = rows[f"telucodec-{kbps:g}"]
        assert r["status"] == "ok"
        # every .tlc byte is paid for: payload at exactly kbps, plus the 32-byte header per clip
        assert r["kbps_payload"] == pytest.approx(kbps, rel=0.02)
        overhead = res["clips"] * bitstream.OVERHEAD_BYTES * 8 / seconds / 1000
        assert r["kbps_spent"] == pytest.approx(r["kbps_payload"] + overhead, rel=1e-9)
        assert 1.0 <= r["pesq_wb"] <= 4.7 and 0 <= r["mel_distance"] < 10
    for name in available_baselines():
        r = rows[name]
        assert r["status"] == "ok" and r["kbps_spent"] > 0.5 * r["target_kbps"]
        assert math.isfinite(r["stoi"]) and math.isfinite(r["si_snr_db"])
    if "opus-12" in available_baselines():  # a real codec at 12 kbps is far better than an untrained net
        assert rows["opus-12"]["pesq_wb"] > rows["telucodec-6"]["pesq_wb"]
        assert rows["opus-12"]["mel_distance"] < rows["telucodec-6"]["mel_distance"]
    text = md.read_text()
    assert "| TeluCodec 6 kbps | 6 |" in text and "PESQ-WB" in text


def _speech_folder(tmp_path, n):
    """A folder of n 1.5 s synthetic speech clips."""
    data = tmp_path / "speech"
    data.mkdir()
    for i in range(n):
        sf.write(data / f"clip{i}.wav", bench.synthetic_speech(1.5, 16000, seed=i), 16000)
    return data


def test_quality_without_checkpoint_marks_telucodec_pending(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "PRETRAINED", tmp_path / "missing.safetensors")
    data = _speech_folder(tmp_path, 2)
    names = available_baselines()[:1]
    res = bench.quality(data_dir=data, max_clips=5, out_dir=None, baselines_to_run=names, progress=lambda m: None)
    assert res["clips"] == 2
    rows = {r["system"]: r for r in res["rows"]}
    assert all(rows[f"telucodec-{k:g}"]["status"] == "pending checkpoint" for k in bench.TELUCODEC_KBPS)
    assert "pending checkpoint" in bench.quality_markdown(res)
    for n in names:
        assert rows[n]["status"] == "ok"


def test_speed_quick_reports_rtf_and_train_step(tmp_path):
    out = tmp_path / "bench"
    assert bench.main(["speed", "--quick", "--devices", "cpu-1", "--out", str(out)]) == 0
    res = json.loads((out / "speed.json").read_text())
    models = {r["model"] for r in res["rows"]}
    assert models == ({"telucodec", "encodec"} if HAVE_ENCODEC else {"telucodec"})
    for r in res["rows"]:
        assert r["device"] == "cpu-1" and r["threads"] == 1
        assert r["encode_rtf"] == pytest.approx(res["audio_seconds"] / r["encode_s"])
        assert r["round_trip_rtf"] == pytest.approx(res["audio_seconds"] / (r["encode_s"] + r["decode_s"]))
        assert r["train_step_s"] > 0
        assert r["round_trip_rtf_cpu_time"] == pytest.approx(
            res["audio_seconds"] / (r["encode_cpu_s"] + r["decode_cpu_s"])
        )
    if HAVE_ENCODEC:
        ratio = res["ratios_telucodec_over_encodec"][0]
        t, e = res["rows"][0], res["rows"][1]
        assert ratio["round_trip_rtf"] == pytest.approx(t["round_trip_rtf"] / e["round_trip_rtf"])
        assert res["models"]["encodec"]["sample_rate"] == 24000
    md = (out / "speed.md").read_text()
    assert "encode+decode RTF" in md and "not meaningful" in md


def test_speed_rejects_unknown_device():
    from telucodec.errors import TeluCodecError

    with pytest.raises(TeluCodecError, match="unknown device"):
        bench.speed(quick=True, devices="tpu", progress=lambda m: None)


def test_a_delay_found_per_clip_is_summarised_in_one_note(tmp_path, monkeypatch):
    """Codec2's delay is measured per clip; the table's note names the range once, not one sentence per clip."""
    import numpy as np

    from telucodec.evaluation import baselines as B

    monkeypatch.setattr(inference, "PRETRAINED", tmp_path / "missing.safetensors")
    data = _speech_folder(tmp_path, 3)
    lags = iter([40, 90, 130])

    def fake_round_trip(key, wav, sr):
        lag = next(lags)
        return B.BaselineResult(
            decoded=np.asarray(wav, np.float32),
            bits_per_second=3200.0,
            payload_bytes=100,
            delay_samples=lag,
            note=f"Codec2 3200 via c2enc/c2dec at 8 kHz; bits = .bit file "
            f"size; delay {lag} samples found by cross-correlation (peak 0.20)",
        )

    monkeypatch.setattr(B, "round_trip", fake_round_trip)
    monkeypatch.setattr(B, "unavailable_baselines", lambda: {})
    res = bench.quality(
        data_dir=data, max_clips=5, out_dir=None, baselines_to_run=["codec2-3200"], progress=lambda m: None
    )
    note = {r["system"]: r for r in res["rows"]}["codec2-3200"]["note"]
    assert note.count("delay found per clip by cross-correlation") == 1
    assert note.endswith("(40-130 samples at the codec's rate, median 90)")
