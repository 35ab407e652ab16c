"""The shipped model: `telucodec.load()` finds it, it is small, it codes at every advertised rate, more bits sound
better, and `python -m telucodec demo` writes and scores every system on a held-out sentence."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import telucodec
from telucodec.coding.inference import PRETRAINED

pytestmark = pytest.mark.skipif(not PRETRAINED.exists(), reason="no shipped model in results/pretrained/")
REPO = Path(__file__).resolve().parent.parent


def test_load_without_a_path_gives_the_shipped_model_and_it_is_small():
    model = telucodec.load()
    assert Path(model.source) == PRETRAINED
    folder = sum(f.stat().st_size for f in PRETRAINED.parent.rglob("*") if f.is_file())
    assert folder <= 10_000_000  # the whole results/pretrained/, model card and benchmarks included
    assert model.config.bitrate(3) == 1500 and model.config.bitrate(12) == 6000
    card = (PRETRAINED.parent / "MODEL_CARD.md").read_text()
    assert "Opus" in card and "Command" in card and "never heard" in card


def test_the_shipped_model_writes_entropy_coded_files_that_spend_under_the_nominal_rate():
    from telucodec.cli.demo import demo_speech

    model = telucodec.load()
    assert model.entropy is not None and all(model.entropy.covers(n) for n in (3, 6, 12))
    _, x = demo_speech()
    for kbps in (1.5, 3.0, 6.0):
        codes = model.encode(x, 16000, kbps=kbps)
        coded, fixed = model.pack(codes, len(x)), model.pack(codes, len(x), entropy=False)
        assert model.unpack(coded).version == 2 and len(coded) < 0.9 * len(fixed)  # measured: 0.85, 0.80, 0.77
        np.testing.assert_array_equal(model.unpack(coded).codes, codes)  # lossless: the same codes come back


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "telucodec", "demo", "--out", str(out), "--no-visqol"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def test_demo_writes_every_system_and_prints_the_table(demo):
    out, stdout = demo
    for kbps in ("1.5", "3", "6"):
        assert (out / f"telucodec_{kbps}kbps.wav").stat().st_size > 10_000
        assert f"TeluCodec {kbps} kbps" in stdout
    assert (out / "original.wav").exists() and (out / "opus_6.wav").exists()
    assert "| system | kbit/s spent | PESQ-WB ↑ | STOI ↑ |" in stdout
    for kbps in (1.5, 3.0, 6.0):  # the .tlc files, whose bytes are the bits the table says were spent
        data = (out / f"telucodec_{kbps:g}kbps.tlc").read_bytes()
        spent = 8 * len(data) / 4.0 / 1000  # the demo sentence lasts 4 s
        row = next(line for line in stdout.splitlines() if line.startswith(f"| TeluCodec {kbps:g} kbps |"))
        assert abs(float(row.split("|")[2]) - spent) < 0.01 and spent < kbps


def test_more_bits_give_a_closer_copy_on_the_held_out_sentence():
    from telucodec.cli.demo import demo_speech
    from telucodec.evaluation.scoring import score

    model = telucodec.load()
    _, x = demo_speech()
    assert len(x) == 4 * 16000
    rows = {k: score(x, model.decode(model.encode(x, 16000, kbps=k), len(x)), 16000) for k in (1.5, 3.0, 6.0)}
    assert rows[6.0]["mel_distance"] < rows[3.0]["mel_distance"] < rows[1.5]["mel_distance"]
    assert rows[6.0]["si_snr_db"] > rows[1.5]["si_snr_db"]
    assert all(np.isfinite(r["pesq_wb"]) for r in rows.values())
