"""Interrupted training: SIGKILL at a random step, `--resume`, and the result is bit-identical to a run that was
never interrupted. Checkpoints are never half-written, temporary files are ignored, and a truncated or corrupted
newest checkpoint is reported (a warning naming it) and the previous one is used.

The batch of step s depends only on (seed, s) and every RNG state is in the checkpoint, so resuming must replay the
lost steps exactly. All processes run single-threaded (OMP_NUM_THREADS=1), so float reductions are deterministic.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from telucodec.bench import synthetic_speech
from telucodec.coding.checkpoint import load_checkpoint
from telucodec.data.audio_io import write_audio

SR = 16000
STEPS, EVERY = 16, 4
KILL_SEED = 20240611
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def speech_like(seconds, seed):
    return synthetic_speech(seconds, SR, seed)


def train_cmd(data_dir, ckpt_dir, *extra):
    return [
        sys.executable,
        "-m",
        "telucodec",
        "train",
        "--preset",
        "ci",
        "--steps",
        str(STEPS),
        "--checkpoint_every",
        str(EVERY),
        "--data_dir",
        str(data_dir),
        "--checkpoint_dir",
        str(ckpt_dir),
        "--device",
        "cpu",
        *extra,
    ]


def progress(run_dir: Path) -> int:
    """The newest step the run has reported: epoch summaries (every 2 steps here), step logs and checkpoints."""
    best = 0
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            best = max(best, int(rec.get("step", rec.get("epoch_summary", {}).get("step", 0))))
    except FileNotFoundError:
        pass
    for p in run_dir.glob("step_*.pt"):
        best = max(best, int(p.stem.split("_")[1]))
    return best


def assert_same_state(a: dict, b: dict, what: str):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs"


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / f"step_{STEPS:08d}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run and a run killed with SIGKILL at a seeded random step (started together)."""
    root = tmp_path_factory.mktemp("resume")
    data = root / "data"
    data.mkdir()
    for i in range(4):
        write_audio(data / f"clip_{i}.wav", speech_like(2.0, i), SR)
    kill_after = random.Random(KILL_SEED).randint(EVERY + 1, STEPS - 4)  # at least one checkpoint exists by then
    full = subprocess.Popen(
        train_cmd(data, root / "full"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    killed = subprocess.Popen(
        train_cmd(data, root / "killed"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    run_dir = root / "killed" / "telucodec"
    deadline = time.monotonic() + 150
    while progress(run_dir) < kill_after:
        assert killed.poll() is None, f"the run ended before the kill: {killed.stderr.read()}"
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    seen_at_kill = progress(run_dir)
    assert killed.returncode == -signal.SIGKILL
    _, full_err = full.communicate(timeout=150)
    assert full.returncode == 0, full_err
    return {"root": root, "data": data, "kill_after": kill_after, "seen_at_kill": seen_at_kill}


def test_no_half_written_checkpoint_after_kill(runs):
    run_dir = runs["root"] / "killed" / "telucodec"
    ckpts = sorted(run_dir.glob("step_*.pt"))
    assert ckpts, "no checkpoint was written before the kill"
    assert not (run_dir / f"step_{STEPS:08d}.pt").exists(), "killed after the end: the test proved nothing"
    for p in ckpts:  # every file under a final name loads and verifies
        state = load_checkpoint(p)
        assert state["step"] == int(p.stem.split("_")[1])


def test_resume_after_sigkill_is_bit_identical(runs):
    root = runs["root"]
    run_dir = root / "killed" / "telucodec"
    newest = max(int(p.stem.split("_")[1]) for p in run_dir.glob("step_*.pt"))
    # a leftover temporary file from a save that never finished must be ignored
    (run_dir / f"step_{newest + EVERY:08d}.pt.tmp-99999").write_bytes(b"PK\x03\x04 half a zip")
    proc = subprocess.run(
        train_cmd(runs["data"], root / "killed", "--resume"), env=ENV, capture_output=True, text=True, timeout=150
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and f"done: {STEPS} steps" in proc.stdout
    a, b = final_state(run_dir), final_state(root / "full" / "telucodec")
    assert a["step"] == b["step"] == STEPS
    assert_same_state(a["model"], b["model"], "model")
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert_same_state(pa, pb, "optimizer")
    # the resumed run really did restart from a checkpoint, not from scratch
    assert 0 < newest < STEPS and runs["seen_at_kill"] >= runs["kill_after"]


@pytest.mark.parametrize("damage", ["truncated", "bit_flip"])
def test_damaged_newest_checkpoint_falls_back_to_previous(runs, damage, tmp_path):
    """keep_last(2) leaves steps 12 and 16; damage step 16, resume: step 12 is used, 4 steps are replayed,
    and the new step 16 equals the uninterrupted one bit for bit."""
    src = runs["root"] / "full" / "telucodec"
    work = tmp_path / "ck"
    shutil.copytree(src, work / "telucodec")
    newest = work / "telucodec" / f"step_{STEPS:08d}.pt"
    data = bytearray(newest.read_bytes())
    if damage == "truncated":  # as a crash could leave it: no sidecar, so the loader must see it
        newest.write_bytes(data[: len(data) // 2])
        (newest.parent / (newest.name + ".sha256")).unlink()
    else:
        data[len(data) // 3] ^= 0x10  # one bit in tensor data: only the SHA-256 sidecar sees it
        newest.write_bytes(bytes(data))
    # a fresh process like the two it is compared with: single-threaded, no numeric state left by other tests
    proc = subprocess.run(
        train_cmd(runs["data"], work, "--resume"), env=ENV, capture_output=True, text=True, timeout=150
    )
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    named = [line for line in lines if newest.name in line]
    assert len(named) == 1 and named[0].startswith("warning: skipping checkpoint "), lines
    assert ("truncated or corrupted" if damage == "truncated" else "SHA-256 does not match") in named[0]
    assert "Traceback" not in err
    assert f"done: {STEPS} steps" in out
    a, b = final_state(work / "telucodec"), final_state(src)
    assert_same_state(a["model"], b["model"], "model")
