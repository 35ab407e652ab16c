"""The fault suite (issue 6): every kind of bad input a real speech folder holds, generated in tmp_path, sent
through (a) data loading, (b) `python -m telucodec train` and (c) `python -m telucodec encode`.

Each input must be either skipped with one warning naming the file and the reason, or refused with a one-line
`error:` and exit 2 -- never a traceback, a hang or a silent NaN in training. Inputs that are merely unusual
(8-bit, 24-bit, 96 kHz stereo, 8 kHz, clipped, DC offset, a Telugu file name with spaces) must simply work.

The "unreadable file" is a FIFO named unreadable.wav (the suite runs as root, so chmod 000 would not stop a
read; opening a FIFO for reading blocks forever, so this also proves the loaders never open one), plus a
dangling symlink and a folder named x.wav. Most CLI calls run in-process through `telucodec.cli.commands.main` (fast);
a handful run as real subprocesses to prove the command-line contract (exit code, stderr lines, no Traceback).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from telucodec.cli import commands as cli
from telucodec.coding import tlcfile
from telucodec.data.audio_io import write_audio
from telucodec.data.folders import load_dataset
from telucodec.errors import BadAudioWarning, DataError

SR = 16000
HAS_MP3 = "MP3" in sf.available_formats()
TRAIN = ["--preset", "ci", "--steps", "3", "--device", "cpu"]
CHILD_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


# --------------------------------------------------------------------------------------------- inputs
def speech_like(seconds=2.0, sr=SR, seed=0, amp=0.3) -> np.ndarray:
    """A harmonic signal with a gliding pitch and a syllable-rate envelope: enough like voiced speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 110 + 20 * seed + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 9))
    x = x * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t + seed)) + 0.02 * rng.standard_normal(t.size)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def write_good(folder: Path, n=2, seconds=2.0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_audio(folder / f"good_{i}.wav", speech_like(seconds, seed=i + 1), SR)


def _float_with(value):
    def make(p):
        x = speech_like(1.0, seed=7)
        x[4000:4010] = value
        sf.write(p, x, SR, subtype="FLOAT")

    return make


def _truncated_header(p):
    write_audio(p.with_name("_full.wav"), speech_like(1.0), SR)
    p.write_bytes(p.with_name("_full.wav").read_bytes()[:30])  # RIFF/WAVE/fmt cut mid-chunk
    p.with_name("_full.wav").unlink()


def _corrupt_mp3(p):
    # an ID3 tag and an MPEG frame sync, then garbage: looks like MP3 to a sniffing decoder
    junk = np.random.default_rng(3).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    p.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + junk)


def _no_audio_folder(p):
    p.mkdir()
    (p / "README.txt").write_text("transcripts only\n")
    (p / "speaker.json").write_text("{}")
    (p / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def _symlink_loop(p):
    os.symlink(p.name, p)  # loop.wav -> loop.wav (ELOOP on open)
    os.symlink(".", p.parent / "cycle")  # and a folder cycle the scan must not follow forever


# name: (file name, maker, data outcome, data reason regex, encode outcome, encode reason regex)
#   data outcome: "skip" (one warning naming the file), "ok" (loaded), "ignored" (not an audio file at all)
#   encode outcome: "refuse" (exit 2, one error line naming the file) or "ok"
KINDS = {
    "zero_bytes": ("zero.wav", lambda p: p.write_bytes(b""), "skip", "empty", "refuse", "empty"),
    "truncated_header": ("header.wav", _truncated_header, "skip", "not a readable audio", "refuse", "not a readable"),
    "text_as_wav": (
        "notes.wav",
        lambda p: p.write_text("this is a transcript, not audio\n" * 20),
        "skip",
        "not a readable audio",
        "refuse",
        "not a readable",
    ),
    "nan_samples": ("nan.wav", _float_with(np.nan), "skip", "NaN", "refuse", "NaN"),
    "inf_samples": ("inf.wav", _float_with(np.inf), "skip", "NaN or infinite", "refuse", "NaN or infinite"),
    "silence": ("silence.wav", lambda p: sf.write(p, np.zeros(SR, np.float32), SR), "skip", "silent", "ok", None),
    "one_sample": ("one.wav", lambda p: sf.write(p, np.array([0.25], np.float32), SR), "skip", "too short", "ok", None),
    "pcm_u8": ("u8.wav", lambda p: sf.write(p, speech_like(1.0, seed=3), SR, subtype="PCM_U8"), "ok", None, "ok", None),
    "pcm_24": (
        "s24.wav",
        lambda p: sf.write(p, speech_like(1.0, seed=4), SR, subtype="PCM_24"),
        "ok",
        None,
        "ok",
        None,
    ),
    "stereo_96k": (
        "stereo96k.wav",
        lambda p: sf.write(p, np.stack([speech_like(1.0, 96000, 5), speech_like(1.0, 96000, 6)], 1), 96000),
        "ok",
        None,
        "ok",
        None,
    ),
    "rate_8k": ("phone8k.wav", lambda p: sf.write(p, speech_like(1.0, 8000, 2), 8000), "ok", None, "ok", None),
    "hard_clipped": (
        "clipped.wav",
        lambda p: sf.write(p, np.clip(speech_like(1.0, seed=2, amp=4.0), -1, 1), SR),
        "ok",
        None,
        "ok",
        None,
    ),
    "dc_offset": ("dc.wav", lambda p: sf.write(p, speech_like(1.0, seed=3, amp=0.2) + 0.7, SR), "ok", None, "ok", None),
    "telugu_name": ("తెలుగు మాట ఒకటి.wav", lambda p: sf.write(p, speech_like(1.0, seed=4), SR), "ok", None, "ok", None),
    "corrupt_mp3": ("broken.mp3", _corrupt_mp3, "skip", "not a readable audio", "refuse", "not a readable"),
    "fifo": ("unreadable.wav", lambda p: os.mkfifo(p), "skip", "not a regular file", "refuse", "not a regular file"),
    "dangling_symlink": (
        "gone.wav",
        lambda p: os.symlink(p.parent / "deleted_long_ago.wav", p),
        "skip",
        "not found",
        "refuse",
        "not found",
    ),
    "folder_named_wav": ("x.wav", lambda p: p.mkdir(), "ignored", None, "refuse", "folder"),
    "no_audio_folder": ("no_audio", _no_audio_folder, "ignored", None, "refuse", "folder"),
    "symlink_loop": ("loop.wav", _symlink_loop, "skip", "symbolic links", "refuse", "symbolic links"),
}
SKIPPED = [k for k, v in KINDS.items() if v[2] == "skip"]
REFUSED = [k for k, v in KINDS.items() if v[4] == "refuse"]


def make_bad(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name, maker = KINDS[kind][:2]
    path = folder / name
    maker(path)
    return path


@contextmanager
def deadline(seconds: int, what: str):
    """Fail instead of hanging (SIGALRM interrupts blocking calls such as opening a FIFO)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"{what} did not finish within {seconds} s (hang)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_cli(args, capsys, seconds=120):
    """telucodec.cli.commands.main in-process: (exit code, stdout, stderr lines). A traceback escaping main fails here."""
    capsys.readouterr()
    with deadline(seconds, "python -m telucodec " + " ".join(map(str, args))):
        rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, [line for line in err.splitlines() if line.strip()]


def assert_finite_training(run_dir: Path):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "step" in r and "loss" in r]
    assert steps, "no training step was logged"
    for r in steps:
        for k in ("loss", "recon", "perceptual", "vq", "grad_norm"):
            assert math.isfinite(r[k]), (k, r)
    for r in records:
        if "epoch_summary" in r:
            for k in ("output_min", "output_max", "recon", "vq", "snr_db"):
                assert math.isfinite(r["epoch_summary"][k]), (k, r)
    ckpts = sorted(run_dir.glob("step_*.pt"))
    assert ckpts and ckpts[-1].name == "step_00000003.pt"
    state = torch.load(ckpts[-1], map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """A checkpoint folder from 2 in-process training steps on synthetic clips (for encode)."""
    from telucodec.fixes import Fixes
    from telucodec.training.loop import fit

    root = tmp_path_factory.mktemp("ckpt")
    clips = ([speech_like(2.0, seed=s) for s in (1, 2)], [speech_like(2.0, seed=3)])
    result = fit(
        "ci", Fixes.all(), clips, steps=2, checkpoint_dir=root, experiment_name="enc", device="cpu", print_epochs=False
    )
    assert (result.run_dir / "step_00000002.pt").is_file()
    return result.run_dir


# ---------------------------------------------------------------------------------- (a) data loading
@pytest.mark.parametrize("kind", list(KINDS))
def test_data_loading(kind, tmp_path):
    folder = tmp_path / "mixed"
    write_good(folder)
    bad = make_bad(folder, kind)
    outcome, reason = KINDS[kind][2], KINDS[kind][3]
    with deadline(60, f"load_dataset with {kind}"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clips = load_dataset(folder, None, "all")
    skips = [str(w.message) for w in record if issubclass(w.category, BadAudioWarning)]
    if outcome == "skip":
        assert len(skips) == 1, skips
        assert skips[0].startswith(f"skipping {bad}: "), skips[0]
        assert re.search(reason, skips[0]), skips[0]
        assert "\n" not in skips[0]
        assert sorted(clips.names) == ["good_0.wav", "good_1.wav"]
    else:
        assert skips == []
        expected = ["good_0.wav", "good_1.wav"] + ([bad.name] if outcome == "ok" else [])
        assert sorted(clips.names) == sorted(expected)
    for wav in clips:
        assert wav.dtype == np.float32 and wav.ndim == 1 and wav.size >= SR // 4
        assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    if outcome == "ok":
        wav = clips[clips.names.index(bad.name)]
        assert abs(wav.size - SR) <= 2  # 1 s at any source rate comes back as 1 s at 16 kHz
        assert abs(float(wav.mean())) < 1e-3  # DC removed

    if outcome != "ok":  # the bad input alone: a one-line DataError
        alone = tmp_path / "alone"
        make_bad(alone, kind)
        with deadline(60, f"load_dataset of only {kind}"), warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            with pytest.raises(DataError, match="no usable audio") as exc:
                load_dataset(alone, None, "train")
        assert "\n" not in str(exc.value) and str(alone) in str(exc.value)


# ---------------------------------------------------------------------------------------- (b) train
@pytest.mark.parametrize("kind", list(KINDS))
def test_train_with_bad_file_among_good(kind, tmp_path, capsys):
    folder = tmp_path / "mixed"
    write_good(folder)
    bad = make_bad(folder, kind)
    rc, out, err = run_cli(["train", *TRAIN, "--data_dir", folder, "--checkpoint_dir", tmp_path / "ck"], capsys)
    assert rc == 0, err
    assert all(line.startswith("warning: ") for line in err), err
    named = [line for line in err if bad.name in line]
    if KINDS[kind][2] == "skip":
        assert len(named) == 1 and re.search(KINDS[kind][3], named[0]), err
        assert named[0].startswith(f"warning: skipping {bad}")
    else:
        assert named == [], err
    assert "Traceback" not in out and "done: 3 steps" in out
    assert_finite_training(tmp_path / "ck" / "telucodec")


@pytest.mark.parametrize("kind", [k for k in KINDS if KINDS[k][2] != "ok"])
def test_train_with_only_the_bad_file(kind, tmp_path, capsys):
    folder = tmp_path / "only"
    bad = make_bad(folder, kind)
    data_dir = bad if kind == "no_audio_folder" else folder
    rc, out, err = run_cli(["train", *TRAIN, "--data_dir", data_dir, "--checkpoint_dir", tmp_path / "ck"], capsys)
    assert rc == 2, err
    assert err[-1].startswith("error: no usable audio in "), err
    assert all(line.startswith("warning: ") for line in err[:-1]), err
    if KINDS[kind][2] == "skip":
        assert len(err) == 2 and bad.name in err[0]
    assert not list((tmp_path / "ck").rglob("*.pt"))


# --------------------------------------------------------------------------------------- (c) encode
@pytest.mark.parametrize("kind", list(KINDS))
def test_encode(kind, tmp_path, capsys, trained_checkpoint):
    bad = make_bad(tmp_path / "in", kind)
    out_path = tmp_path / "out.tlc"
    rc, out, err = run_cli(["encode", bad, out_path, "--checkpoint", trained_checkpoint], capsys, seconds=60)
    if KINDS[kind][4] == "refuse":
        assert rc == 2
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert bad.name in err[0] and re.search(KINDS[kind][5], err[0]), err
        assert not out_path.exists()
    else:
        assert rc == 0, err
        assert err == []
        stream = tlcfile.read_tlc(out_path)
        info_frames = sf.info(str(bad)).frames
        source_rate = sf.info(str(bad)).samplerate
        assert stream.num_samples == round(info_frames * SR / source_rate)
        assert stream.n_q == 12 and stream.sample_rate == SR  # default --kbps 6
        assert stream.codes.min() >= 0 and stream.codes.max() < 1024


# ---------------------------------------------------------------------------- true subprocesses
@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory, trained_checkpoint):
    """A handful of real `python -m telucodec` runs, started together (they are mostly import time)."""
    root = tmp_path_factory.mktemp("subproc")
    mixed, only = root / "all_bad_and_good", root / "all_bad_only"
    write_good(mixed)
    for kind in SKIPPED:
        make_bad(mixed, kind)
        make_bad(only, kind)
    fifo = make_bad(root / "enc_fifo", "fifo")
    telugu = make_bad(root / "enc_telugu", "telugu_name")
    py = [sys.executable, "-m", "telucodec"]
    jobs = {
        "train_mixed": py + ["train", *TRAIN, "--data_dir", str(mixed), "--checkpoint_dir", str(root / "ck_mixed")],
        "train_only_bad": py + ["train", *TRAIN, "--data_dir", str(only), "--checkpoint_dir", str(root / "ck_only")],
        "encode_fifo": py + ["encode", str(fifo), str(root / "fifo.tlc"), "--checkpoint", str(trained_checkpoint)],
        "encode_telugu": py
        + ["encode", str(telugu), str(root / "తెలుగు.tlc"), "--checkpoint", str(trained_checkpoint), "--kbps", "3"],
    }
    procs = {
        k: subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV, stdin=subprocess.DEVNULL
        )
        for k, cmd in jobs.items()
    }
    results = {}
    for k, p in procs.items():
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs.values():
                q.kill()
            pytest.fail(f"`python -m telucodec` hung in {k}")
        results[k] = (p.returncode, out, [line for line in err.splitlines() if line.strip()])
    return root, results


# libmpg123 inside libsndfile writes its own diagnostics straight to file descriptor 2 when it meets a corrupt
# MP3 ("[src/libmpg123/id3.c:...] warning: ...", "Note: Illegal Audio-MPEG-Header ..."). Python cannot see or
# reword them; only telucodec.data.audio_io can silence them (by redirecting fd 2 around the native decode).
NATIVE_NOISE = re.compile(r"^(\[src/libmpg123/|Note: (Illegal Audio-MPEG-Header|Trying to resync|Hit end of))")


def python_lines(err):
    return [line for line in err if not NATIVE_NOISE.match(line)]


def test_subprocess_train_skips_every_bad_file(subprocess_runs):
    root, results = subprocess_runs
    rc, out, err = results["train_mixed"]
    assert rc == 0, err
    assert "Traceback" not in out + "\n".join(err)
    err = python_lines(err)
    assert all(line.startswith("warning: ") for line in err), err
    for kind in SKIPPED:
        name = KINDS[kind][0]
        assert sum(f"{os.sep}{name}: " in line for line in err) == 1, (name, err)
    assert_finite_training(root / "ck_mixed" / "telucodec")


def test_subprocess_train_refuses_a_folder_of_only_bad_files(subprocess_runs):
    root, results = subprocess_runs
    rc, out, err = results["train_only_bad"]
    assert rc == 2
    assert "Traceback" not in out + "\n".join(err)
    err = python_lines(err)
    assert err[-1].startswith("error: no usable audio in ") and f"{len(SKIPPED)} files found, all skipped" in err[-1]
    assert len(err) == len(SKIPPED) + 1
    assert all(line.startswith("warning: skipping ") for line in err[:-1]), err


def test_subprocess_encode_refuses_a_fifo_without_hanging(subprocess_runs):
    root, results = subprocess_runs
    rc, out, err = results["encode_fifo"]
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: cannot read audio "), err
    assert "unreadable.wav" in err[0] and "not a regular file" in err[0]
    assert "Traceback" not in out and not (root / "fifo.tlc").exists()


def test_subprocess_stderr_holds_only_warning_and_error_lines(subprocess_runs):
    root, results = subprocess_runs
    for job in ("train_mixed", "train_only_bad"):
        err = results[job][2]
        assert all(line.startswith(("warning: ", "error: ")) for line in err), err


def test_subprocess_encode_telugu_name(subprocess_runs):
    root, results = subprocess_runs
    rc, out, err = results["encode_telugu"]
    assert rc == 0 and err == [], err
    stream = tlcfile.read_tlc(root / "తెలుగు.tlc")
    assert stream.n_q == 6 and stream.num_samples == SR  # 3 kbps = 6 codebooks; 1 s of audio
    assert "తెలుగు మాట ఒకటి.wav" in out
