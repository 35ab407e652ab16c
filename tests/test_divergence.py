"""Divergence: a NaN/inf in the loss, the gradients or the latent is caught within one step.

`--on_nonfinite stop` (default) ends training with one line (exit 2, "training stopped: ... last good checkpoint
kept in ...") and leaves the last good checkpoint intact and loadable; `--on_nonfinite skip` drops the step and
finishes with finite weights -- including the EMA codebooks, which are updated inside the forward pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import telucodec
import telucodec.training.loop as train_mod
from telucodec.bench import synthetic_speech
from telucodec.cli import commands as cli
from telucodec.codec.model import Codec
from telucodec.coding.checkpoint import load_checkpoint
from telucodec.config import preset
from telucodec.data.audio_io import write_audio
from telucodec.fixes import Fixes
from telucodec.training.loop import TrainingDiverged

SR = 16000
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def speech_like(seconds, seed):
    return synthetic_speech(seconds, SR, seed)


def all_finite(state: dict) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def newest_step(run_dir) -> int:
    return max(int(p.stem.split("_")[1]) for p in run_dir.glob("step_*.pt"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("div") / "clips"
    d.mkdir()
    for i in range(3):
        write_audio(d / f"clip_{i}.wav", speech_like(2.0, i), SR)
    return d


def train_args(data_dir, ckpt_dir, *extra):
    return [
        "train",
        "--preset",
        "ci",
        "--device",
        "cpu",
        "--data_dir",
        str(data_dir),
        "--checkpoint_dir",
        str(ckpt_dir),
        *extra,
    ]


# ------------------------------------------------------------------------------- the CLI's injected NaN loss
def test_injected_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    ck = tmp_path / "ck"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "telucodec",
            *train_args(data_dir, ck, "--steps", "6", "--checkpoint_every", "1", "--inject_nonfinite_at", "3"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    run_dir = ck / "telucodec"
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err == [f"error: training stopped: loss is nan at step 3; last good checkpoint kept in {run_dir}"], err
    assert "done:" not in proc.stdout
    # steps 0, 1, 2 were good and saved (step_3 = after three steps); the 4th step (index 3) stopped at once
    assert newest_step(run_dir) == 3 and not (run_dir / "step_00000004.pt").exists()
    state = load_checkpoint(run_dir / "step_00000003.pt")  # verifies the SHA-256 sidecar too
    assert state["step"] == 3 and all_finite(state["model"])
    model = telucodec.load(run_dir)  # and it is usable for inference
    codes = model.encode(speech_like(0.5, 7), SR, kbps=1.5)
    assert codes.shape == (3, 25) and np.isfinite(model.decode(codes, 8000)).all()


@pytest.mark.parametrize("at", [2, 4])  # 4 = the last of 5 steps: the final checkpoint must still appear
def test_injected_nan_loss_is_skipped_with_on_nonfinite_skip(data_dir, tmp_path, capsys, at):
    capsys.readouterr()
    rc = cli.main(
        train_args(
            data_dir,
            tmp_path / "ck",
            "--steps",
            "5",
            "--checkpoint_every",
            "5",
            "--on_nonfinite",
            "skip",
            "--inject_nonfinite_at",
            str(at),
        )
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err.strip().splitlines() == [f"warning: loss is nan at step {at}; step skipped (--on_nonfinite skip)"]
    assert "done: 5 steps" in out
    state = load_checkpoint(tmp_path / "ck" / "telucodec" / "step_00000005.pt")
    assert state["skipped_steps"] == 1 and all_finite(state["model"])
    assert all(all_finite(s) for s in state["optimizer"]["state"].values())


# ------------------------------------------------------------------- NaN gradients and NaN latents, in-process
def _clips():
    return [speech_like(2.0, 0), speech_like(2.0, 1)], [speech_like(2.0, 2)]


def _patched_codec(monkeypatch, where: str, at_call: int):
    """Make fit() build a Codec that turns the gradient of the decoder's last conv (where="grad") or the encoder
    output (where="latent") into NaN on the `at_call`-th training step (0-based). Returns the list of models."""
    made = []

    def factory(*args, **kwargs):
        model = Codec(*args, **kwargs)
        calls = {"n": 0}
        if where == "grad":

            def grad_hook(g):
                calls["n"] += 1
                return g * float("nan") if calls["n"] == at_call + 1 else g

            model.decoder.body[-1].weight.register_hook(grad_hook)
        else:

            def fwd_hook(module, inputs, output):
                if not module.training:  # validation passes do not count
                    return output
                calls["n"] += 1
                return output * float("nan") if calls["n"] == at_call + 1 else output

            model.encoder.register_forward_hook(fwd_hook)
        made.append(model)
        return model

    monkeypatch.setattr(train_mod, "Codec", factory)
    return made


@pytest.mark.parametrize(
    "where, message", [("grad", "gradient norm is nan at step 2"), ("latent", "loss is nan at step 2")]
)
def test_nan_inside_the_model_stops_within_one_step(monkeypatch, tmp_path, where, message):
    made = _patched_codec(monkeypatch, where, at_call=2)
    with pytest.raises(TrainingDiverged) as exc:
        train_mod.fit(
            "ci",
            Fixes.all(),
            _clips(),
            steps=5,
            checkpoint_dir=tmp_path,
            experiment_name="x",
            device="cpu",
            print_epochs=False,
            eval_every_epoch=False,
            train_config=replace(preset("ci").train, checkpoint_every=1),
        )
    assert str(exc.value) == f"training stopped: {message}; last good checkpoint kept in {tmp_path / 'x'}"
    assert newest_step(tmp_path / "x") == 2  # steps 0 and 1 saved, nothing after
    assert all_finite(load_checkpoint(tmp_path / "x" / "step_00000002.pt")["model"])
    # the NaN never reached the weights: the optimizer did not step on it
    params = {k: v for k, v in made[0].state_dict().items() if not k.startswith("quantizer.")}
    assert all_finite(params)


@pytest.mark.parametrize(
    "where, message", [("grad", "gradient norm is nan at step 1"), ("latent", "loss is nan at step 1")]
)
def test_nan_inside_the_model_is_skipped_and_leaves_no_trace(monkeypatch, capsys, where, message):
    """Regression: a NaN latent used to reach the EMA codebook update (which runs in the forward pass) before the
    loss was checked, so with skip every later step was NaN too and training "finished" with NaN codebooks."""
    made = _patched_codec(monkeypatch, where, at_call=1)
    result = train_mod.fit(
        "ci",
        Fixes.all(),
        _clips(),
        steps=4,
        device="cpu",
        print_epochs=False,
        eval_every_epoch=False,
        train_config=replace(preset("ci").train, on_nonfinite="skip"),
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {message}; step skipped (--on_nonfinite skip)"]
    assert result.step == 4 and result.skipped_steps == 1
    assert all_finite(made[0].state_dict())  # codebooks and EMA statistics included
    assert all(np.isfinite(r["loss"]) for r in result.history)
