"""`python -m telucodec`: the issue's "done when" list.

* `train --preset ci --data_dir FOLDER_OF_MP3 --checkpoint_dir D --num_epochs 1` trains and checkpoints on CPU,
  and `--resume` continues;
* the story's command line (`--data_dir --checkpoint_dir --batch_size --num_epochs --learning_rate
  --experiment_name`) works unchanged and prints the per-epoch diagnostic line;
* encode -> decode round-trips a wav at 1.5, 3 and 6 kbps; decode rejects a truncated .tlc with one line, exit 2;
* `--fixes` accepts all / none / a list / all-<name>, and refuses an unknown name with one line, exit 2.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from telucodec.cli import commands as cli
from telucodec.coding import tlcfile
from telucodec.coding.checkpoint import load_checkpoint
from telucodec.data.audio_io import write_audio
from telucodec.fixes import SEVEN, Fixes

SR = 16000
HAS_MP3 = "MP3" in sf.available_formats()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
EPOCH_LINE = re.compile(
    r"^epoch +(\d+) \| output range \[[+-]\d+\.\d{3}, [+-]\d+\.\d{3}\] \| range ratio \d+\.\d{3} \| "
    r"output_scale (\d+\.\d{3}|n/a) \| VQ loss \d+\.\d{4} \| recon loss \d+\.\d{4} \| SNR [+-]\d+\.\d{2} dB$"
)


def speech_like(seconds, seed):
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 110 + 22 * seed + 14 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def run(args, capsys):
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, lines(err)


def newest(run_dir: Path) -> Path:
    return max(run_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


@pytest.fixture(scope="module")
def mp3_run(tmp_path_factory):
    """The "done when" command as a real subprocess on a folder of MP3s; a truncated-.tlc decode runs beside it."""
    if not HAS_MP3:
        pytest.skip("this libsndfile cannot write MP3 (needs libsndfile >= 1.1)")
    root = tmp_path_factory.mktemp("cli")
    mp3 = root / "mp3s"
    mp3.mkdir()
    for i in range(4):
        sf.write(mp3 / f"common_voice_te_{i}.mp3", speech_like(1.5, i), SR, format="MP3", subtype="MPEG_LAYER_III")
    good = tlcfile.pack(
        np.zeros((3, 10), np.int64),
        sample_rate=SR,
        codebook_size=1024,
        hop_length=320,
        num_samples=3200,
        envelope_stages=1,
    )  # as the shipped model codes 3 stages
    (root / "cut.tlc").write_bytes(good[:-7])
    py = [sys.executable, "-m", "telucodec"]
    train = subprocess.Popen(
        py
        + ["train", "--preset", "ci", "--data_dir", str(mp3), "--checkpoint_dir", str(root / "D"), "--num_epochs", "1"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    decode = subprocess.Popen(
        py + ["decode", str(root / "cut.tlc"), str(root / "cut.wav")],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = {}
    for name, p in (("train", train), ("decode", decode)):
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            train.kill(), decode.kill()
            pytest.fail(f"python -m telucodec {name} hung")
        results[name] = (p.returncode, out, lines(err))
    return root, results


# ------------------------------------------------------------------------------------------- train
def test_train_on_mp3_folder_checkpoints_on_cpu(mp3_run):
    root, results = mp3_run
    rc, out, err = results["train"]
    assert rc == 0, err
    assert err == [], err  # clean data: nothing to warn about
    run_dir = root / "D" / "telucodec"
    ckpt = newest(run_dir)
    state = load_checkpoint(ckpt)
    assert state["step"] >= 1 and ckpt.name == f"step_{state['step']:08d}.pt"
    assert len(json.loads(state["epochs"])) == 1  # exactly --num_epochs 1
    assert f"done: {state['step']} steps" in out and str(run_dir) in out
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines(out)) == 1
    assert all(math.isfinite(v) for v in json.loads(state["epochs"])[0].values() if isinstance(v, float))


def test_resume_continues_to_the_second_epoch(mp3_run, capsys):
    root, results = mp3_run
    run_dir = root / "D" / "telucodec"
    before = load_checkpoint(newest(run_dir))["step"]
    rc, out, err = run(
        [
            "train",
            "--preset",
            "ci",
            "--data_dir",
            root / "mp3s",
            "--checkpoint_dir",
            root / "D",
            "--num_epochs",
            "2",
            "--resume",
        ],
        capsys,
    )
    assert rc == 0 and err == [], err
    after = load_checkpoint(newest(run_dir))
    assert after["step"] == 2 * before  # an epoch is a fixed number of steps
    epochs = json.loads(after["epochs"])
    assert [e["epoch"] for e in epochs] == [0, 1]  # epoch 0 came from the first run, not redone
    assert [int(m) for m in (EPOCH_LINE.match(l).group(1) for l in lines(out) if EPOCH_LINE.match(l))] == [1]
    assert f"done: {after['step']} steps" in out


def test_story_command_line_and_epoch_diagnostics(tmp_path, capsys):
    data = tmp_path / "wavs"
    data.mkdir()
    for i in range(3):
        write_audio(data / f"utt_{i}.wav", speech_like(1.5, i), SR)
    rc, out, err = run(
        [
            "train",
            "--data_dir",
            data,
            "--checkpoint_dir",
            tmp_path / "ck",
            "--batch_size",
            "4",
            "--num_epochs",
            "2",
            "--learning_rate",
            "5e-4",
            "--experiment_name",
            "story_run",
        ],
        capsys,
    )
    assert rc == 0, err
    epoch_lines = [line for line in lines(out) if line.startswith("epoch")]
    assert len(epoch_lines) == 2 and all(EPOCH_LINE.match(line) for line in epoch_lines), epoch_lines
    assert EPOCH_LINE.match(epoch_lines[0]).group(1) == "0"
    assert EPOCH_LINE.match(epoch_lines[0]).group(2) != "n/a"  # --fixes all (default) has the output scale
    state = load_checkpoint(newest(tmp_path / "ck" / "story_run"))
    cfg = state["train_config"]
    assert cfg["batch_size"] == 4 and cfg["num_epochs"] == 2 and cfg["learning_rate"] == 5e-4
    assert len(json.loads(state["epochs"])) == 2


# -------------------------------------------------------------------------------------- encode/decode
@pytest.mark.parametrize("kbps, n_q", [(1.5, 3), (3.0, 6), (6.0, 12)])
def test_encode_decode_round_trip(mp3_run, tmp_path, capsys, kbps, n_q):
    root, _ = mp3_run
    ckpt = root / "D" / "telucodec"
    n = 19_750  # 1.234 s: not a whole number of 320-sample frames
    write_audio(tmp_path / "in.wav", speech_like(n / SR, 5), SR)
    rc, out, err = run(
        ["encode", tmp_path / "in.wav", tmp_path / "x.tlc", "--checkpoint", ckpt, "--kbps", kbps], capsys
    )
    assert rc == 0 and err == [], err
    stream = tlcfile.read_tlc(tmp_path / "x.tlc")
    frames = math.ceil(n / 320)
    assert stream.n_q == n_q and stream.num_frames == frames and stream.num_samples == n
    size = (tmp_path / "x.tlc").stat().st_size
    assert size == 32 + math.ceil(n_q * frames * 10 / 8)
    payload_kbps = (size - 32) * 8 / (frames * 320 / SR) / 1000
    assert abs(payload_kbps - kbps) < 0.01, payload_kbps
    rc, out, err = run(["decode", tmp_path / "x.tlc", tmp_path / "y.wav", "--checkpoint", ckpt], capsys)
    assert rc == 0 and err == [], err
    info = sf.info(str(tmp_path / "y.wav"))
    assert info.samplerate == SR and info.channels == 1 and info.frames == n
    y, _ = sf.read(str(tmp_path / "y.wav"), dtype="float32")
    assert np.isfinite(y).all() and np.abs(y).max() > 0


def test_decode_keeps_what_arrived_of_a_truncated_tlc(mp3_run, tmp_path, capsys):
    """A stream cut inside its frames decodes the frames that arrived, with one warning naming the file; a cut
    inside the header (or an empty file) is a one-line error and writes nothing."""
    root, results = mp3_run
    rc, out, err = results["decode"]  # the real command line
    assert rc == 0 and len(err) == 1, err
    assert err[0].startswith("warning: ") and "cut.tlc" in err[0] and "truncated" in err[0], err
    assert (root / "cut.wav").exists()
    # in-process, with a real stream from a trained model, cut at several places
    ckpt = root / "D" / "telucodec"
    write_audio(tmp_path / "in.wav", speech_like(0.5, 1), SR)
    assert run(["encode", tmp_path / "in.wav", tmp_path / "x.tlc", "--checkpoint", ckpt], capsys)[0] == 0
    data = (tmp_path / "x.tlc").read_bytes()
    for cut in (0, 10, 27, 28):
        (tmp_path / "cut.tlc").write_bytes(data[:cut])
        rc, out, err = run(["decode", tmp_path / "cut.tlc", tmp_path / "y.wav", "--checkpoint", ckpt], capsys)
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "cut.tlc" in err[0], (cut, err)
        assert not (tmp_path / "y.wav").exists()
    (tmp_path / "cut.tlc").write_bytes(data[: len(data) // 2])  # half the frames
    rc, out, err = run(["decode", tmp_path / "cut.tlc", tmp_path / "y.wav", "--checkpoint", ckpt], capsys)
    assert rc == 0 and len(err) == 1 and err[0].startswith("warning: ") and "truncated" in err[0], err
    assert 0.1 * SR < sf.info(str(tmp_path / "y.wav")).frames < 0.4 * SR, err


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    "text, expected",
    [
        ("all", Fixes.all()),
        ("none", Fixes.none()),
        ("codebook_loss,output_scale", Fixes(codebook_loss=True, output_scale=True)),
        (" per_step_ste , average_vq_loss ", Fixes(per_step_ste=True, average_vq_loss=True)),
        ("all-fp32_perceptual", Fixes.all().with_(fp32_perceptual=False)),
    ],
)
def test_fixes_parsing(monkeypatch, capsys, text, expected):
    seen = {}

    def fake_fit(preset, fixes, clips, **kwargs):  # stop before any training: only parsing is tested
        seen.update(preset=preset, fixes=fixes, **kwargs)
        raise _Stop

    monkeypatch.setattr("telucodec.training.loop.fit", fake_fit)
    with pytest.raises(_Stop):
        cli.main(
            [
                "train",
                "--fixes",
                text,
                "--device",
                "cpu",
                "--batch_size",
                "4",
                "--learning_rate",
                "2e-4",
                "--num_epochs",
                "3",
                "--experiment_name",
                "e1",
            ]
        )
    assert seen["fixes"] == expected
    assert seen["train_config"].batch_size == 4 and seen["train_config"].learning_rate == 2e-4
    assert seen["train_config"].num_epochs == 3 and seen["experiment_name"] == "e1"


@pytest.mark.parametrize("text", ["bogus", "all-bogus", "codebook_loss,bogus", "all-"])
def test_unknown_fix_is_one_line_error(monkeypatch, capsys, text):
    monkeypatch.setattr("telucodec.training.loop.fit", lambda *a, **k: pytest.fail("fit must not run"))
    rc, out, err = run(["train", "--fixes", text, "--device", "cpu"], capsys)
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: unknown fix "), err
    assert all(name in err[0] for name in SEVEN)


# -------------------------------------------------------------------------------------- bad numbers
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--batch_size", "0", "--batch_size must be a positive integer"),  # was ZeroDivisionError
        ("--batch_size", "-8", "--batch_size must be a positive integer"),  # was a numpy ValueError
        ("--checkpoint_every", "0", "--checkpoint_every must be a positive integer"),  # was ZeroDivisionError
        ("--steps", "-3", "--steps must be a positive integer"),  # was "done: 0 steps", exit 0
        ("--num_epochs", "0", "--num_epochs must be a positive integer"),
        ("--learning_rate", "-1", "--learning_rate must be a positive number"),  # was torch's ValueError
        ("--learning_rate", "nan", "--learning_rate must be a positive number"),
        ("--seed", "-1", "--seed must be between 0 and 2**32 - 1"),  # was numpy's ValueError
    ],
)
def test_bad_numeric_options_are_one_line_errors(monkeypatch, capsys, option, value, message):
    monkeypatch.setattr("telucodec.training.loop.fit", lambda *a, **k: pytest.fail("fit must not run"))
    rc, out, err = run(["train", "--device", "cpu", option, value], capsys)
    assert rc == 2 and err == [f"error: {message}, got {float(value) if 'rate' in option else int(value)}"], err


def test_with_adds_an_ingredient_and_an_unknown_one_is_a_one_line_error(monkeypatch, capsys):
    seen = {}

    def fake_fit(*args, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr("telucodec.training.loop.fit", fake_fit)
    with pytest.raises(_Stop):
        cli.main(["train", "--recipe", "working", "--with", "relative_floor", "--device", "cpu"])
    assert seen["train_config"].spectral_floor_db == 60.0
    monkeypatch.setattr("telucodec.training.loop.fit", lambda *a, **k: pytest.fail("fit must not run"))
    rc, out, err = run(["train", "--recipe", "working", "--with", "dither", "--device", "cpu"], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: unknown ingredient(s) dither"), err
