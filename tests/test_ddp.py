"""Multi-process training on CPU (gloo, two processes under torchrun) matches a single-process run.

Why they should agree: the global batch of step s is the same 8 crops in both runs (each rank takes every second
one), DDP averages the two half-batch gradients (= the full-batch gradient, every loss being a mean over equal
halves), the EMA codebook counts and sums are all-reduced, and quantizer dropout draws from the same seeded RNG on
every rank. Only the order of float additions differs, hence allclose(atol=1e-5) rather than equality.
(Dead-code re-seeding would draw different vectors, but no code can die within 3 steps: EMA counts start at 1.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from telucodec.cli import commands as cli
from telucodec.coding.checkpoint import load_checkpoint
from telucodec.data.audio_io import write_audio

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)
from telucodec.bench import synthetic_speech

SR = 16000


def speech_like(seconds, seed):
    return synthetic_speech(seconds, SR, seed)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_single_process(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        write_audio(data / f"clip_{i}.wav", speech_like(2.0, i), SR)
    common = [
        "--preset",
        "ci",
        "--steps",
        "3",
        "--batch_size",
        "8",
        "--device",
        "cpu",
        "--data_dir",
        str(data),
        "--seed",
        "0",
        "--checkpoint_every",
        "3",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    ddp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "-m",
            "telucodec",
            "train",
            *common,
            "--checkpoint_dir",
            str(tmp_path / "ddp"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # meanwhile, the same command in one process (in-process: the two runs share the 2 cores)
        capsys.readouterr()
        assert cli.main(["train", *common, "--checkpoint_dir", str(tmp_path / "single")]) == 0
        out, err = ddp.communicate(timeout=240)
    except BaseException:
        os.killpg(ddp.pid, signal.SIGKILL)
        ddp.wait()
        raise
    assert ddp.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert out.count("done: 3 steps") == 1  # only rank 0 reports
    ddp_dir, single_dir = tmp_path / "ddp" / "telucodec", tmp_path / "single" / "telucodec"
    assert sorted(p.name for p in ddp_dir.glob("*.pt")) == ["step_00000003.pt"]  # written once, by rank 0
    a = load_checkpoint(ddp_dir / "step_00000003.pt")
    b = load_checkpoint(single_dir / "step_00000003.pt")
    assert a["step"] == b["step"] == 3
    assert a["model"].keys() == b["model"].keys()
    worst = {
        k: float((a["model"][k].double() - b["model"][k].double()).abs().max())
        for k in a["model"]
        if a["model"][k].is_floating_point()
    }
    assert all(torch.isfinite(v).all() for v in a["model"].values() if v.is_floating_point())
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5, rtol=0), (k, worst.get(k))
    # the comparison is not vacuous: 3 warm-up steps of Adam (lr 5e-5, 1e-4, 1.5e-4) move weights by ~3e-4,
    # well beyond the tolerance
    from telucodec.codec.model import Codec
    from telucodec.config import preset
    from telucodec.fixes import Fixes

    torch.manual_seed(0)  # fit() seeds 0 before building the model
    init = Codec(preset("ci").codec, Fixes.all()).state_dict()
    moved = max(float((b["model"][k] - init[k]).abs().max()) for k in init if "quantizer" not in k)
    assert moved > 1e-4, moved
