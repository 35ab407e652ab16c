"""Checkpoints: atomic writes, integrity checks, refusal of unsafe pickles, folder helpers."""

import hashlib
import os
import pickle
import random
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from telucodec.coding import checkpoint as ck
from telucodec.coding.checkpoint import (
    CheckpointWarning,
    checkpoint_path,
    keep_last,
    latest_checkpoint,
    load_checkpoint,
    load_latest_good,
    load_weights_safetensors,
    save_checkpoint,
    save_weights_safetensors,
)
from telucodec.errors import CheckpointError


def training_state(step=7):
    torch.manual_seed(step)
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.GroupNorm(2, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 16)).pow(2).mean().backward()
    opt.step()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.default_rng(step).bit_generator.state,
            "python": random.Random(step).getstate(),
        },
        "step": step,
        "best": np.float64(0.25),  # numpy scalars are stored as Python numbers
        "config": {"name": "ci", "lr": 1e-3, "fixes": {"ema": True, "clamp": None}, "channels": [16, 32]},
    }


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b and type(a) is type(b) or isinstance(a, np.generic)


def only_files(folder):
    return sorted(p.name for p in folder.iterdir())


# -------------------------------------------------------------------------------- round trip
def test_round_trip_with_rng_states(tmp_path):
    state = training_state()
    path = tmp_path / "ck.pt"
    assert save_checkpoint(path, state) == path
    assert only_files(tmp_path) == ["ck.pt", "ck.pt.sha256"]
    out = load_checkpoint(path)
    assert_same(state["model"], out["model"])
    assert_same(state["optimizer"], out["optimizer"])
    assert out["scaler"] == state["scaler"] and out["step"] == 7 and out["config"] == state["config"]
    assert type(out["best"]) is float and out["best"] == 0.25
    assert out["rng"]["torch"].dtype == torch.uint8
    # Restoring the RNG state reproduces the random stream exactly.
    torch.set_rng_state(state["rng"]["torch"])
    expected = torch.rand(5)
    torch.set_rng_state(out["rng"]["torch"])
    assert torch.equal(torch.rand(5), expected)
    g = np.random.default_rng()
    g.bit_generator.state = out["rng"]["numpy"]
    assert g.random() == np.random.default_rng(7).random()
    r = random.Random()
    r.setstate(out["rng"]["python"])
    assert r.random() == random.Random(7).random()
    # A model restored from the checkpoint matches.
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.GroupNorm(2, 4))
    model.load_state_dict(out["model"])


def test_sidecar_is_sha256sum_format(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", {"x": torch.arange(5)})
    digest, name = (tmp_path / "a.pt.sha256").read_text().split()
    assert name == "a.pt" and digest == hashlib.sha256(path.read_bytes()).hexdigest()
    save_checkpoint(tmp_path / "b.pt", {"x": 1}, sidecar=False)
    assert not (tmp_path / "b.pt.sha256").exists() and load_checkpoint(tmp_path / "b.pt") == {"x": 1}


@dataclass
class Cfg:
    lr: float = 1e-3


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"config": Cfg()}, "state['config']"),
        ({"rng": {"numpy": np.zeros(3)}}, "state['rng']['numpy']"),
        ({"f": [1, lambda: 0]}, "state['f'][1]"),
        ({"k": {(1, 2): 3}}, "key"),
    ],
)
def test_refuses_to_save_non_plain_objects(tmp_path, bad, where):
    with pytest.raises(CheckpointError, match="cannot save") as info:
        save_checkpoint(tmp_path / "x.pt", bad)
    assert where in str(info.value)
    assert only_files(tmp_path) == []


# --------------------------------------------------------------------------------- atomicity
@pytest.mark.parametrize("failure", ["torch.save", "os.replace", "fsync"])
def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, failure):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    before = path.read_bytes(), (tmp_path / "ck.pt.sha256").read_bytes()

    if failure == "torch.save":
        real_save = torch.save

        def half_save(obj, f, *a, **k):  # write part of a file, then die
            f.write(b"PK\x03\x04 partial")
            raise RuntimeError("simulated crash in torch.save")

        monkeypatch.setattr(torch, "save", half_save)
    elif failure == "os.replace":
        monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    else:
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))

    with pytest.raises(CheckpointError, match="cannot save checkpoint to .*ck.pt"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert not any(".tmp-" in n for n in only_files(tmp_path))
    assert path.read_bytes() == before[0]
    out = load_checkpoint(path)
    assert out["step"] == 1
    if failure == "torch.save":
        assert torch.save is real_save


def test_interrupt_during_save_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1})

    def interrupted(obj, f, *a, **k):
        f.write(b"junk")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert only_files(tmp_path) == ["ck.pt", "ck.pt.sha256"] and load_checkpoint(path)["step"] == 1


# ------------------------------------------------------------------------ corruption, safety
def test_missing_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_truncation_is_detected(tmp_path, with_sidecar):
    path = save_checkpoint(tmp_path / "ck.pt", training_state(), sidecar=with_sidecar)
    data = path.read_bytes()
    cuts = sorted({0, 1, 10, 100, len(data) // 2, len(data) - 22, len(data) - 1} | set(range(0, len(data), 997)))
    for n in cuts:
        path.write_bytes(data[:n])
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert "ck.pt" in msg and "\n" not in msg


def test_torch_zip_alone_misses_bit_flips_but_sidecar_catches_all(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", training_state())
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(0, len(data), 150).tolist()) | {0, len(data) - 1})
    missed_by_torch = 0
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="ck.pt"):
            load_checkpoint(path)  # sidecar present: every flip is caught
        side = tmp_path / "ck.pt.sha256"
        saved = side.read_bytes()
        side.unlink()
        try:
            load_checkpoint(path)
            missed_by_torch += 1
        except CheckpointError:
            pass
        side.write_bytes(saved)
    # This is why the sidecar exists: the zip container alone lets many flips through.
    assert missed_by_torch > len(positions) // 4


def test_malformed_sidecar(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})
    (tmp_path / "ck.pt.sha256").write_text("not a hash\n")
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(path)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilOpen:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle2", "torch.save+sidecar", "open"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    payload = {"model": {"w": torch.ones(2)}, "step": 3, "x": EvilOpen(marker) if writer == "open" else Evil(marker)}
    if writer == "pickle2":
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    else:
        torch.save(payload, path)
    if writer == "torch.save+sidecar":  # an attacker can ship a matching checksum too
        (tmp_path / "evil.pt.sha256").write_text(f"{ck.sha256_file(path)}  evil.pt\n")
    with pytest.raises(CheckpointError, match="not a plain-weights checkpoint") as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "evil.pt" in msg and "unsafe" in msg and "\n" not in msg
    assert not marker.exists()


# ------------------------------------------------------------------------- folder helpers
def test_latest_checkpoint_orders_by_step(tmp_path):
    assert latest_checkpoint(tmp_path) is None and latest_checkpoint(tmp_path / "missing") is None
    for step in (2, 10, 9):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    (tmp_path / "step-00000099.pt.tmp-123").write_bytes(b"half")  # leftover temp file: ignored
    (tmp_path / "notes.txt").write_text("x")
    assert checkpoint_path(tmp_path, 10).name == "step-00000010.pt"
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [
        "step-00000002.pt",
        "step-00000009.pt",
        "step-00000010.pt",
    ]


def test_keep_last(tmp_path):
    for step in range(1, 6):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    removed = keep_last(tmp_path, 2)
    assert [p.name for p in removed] == [f"step-0000000{i}.pt" for i in (1, 2, 3)]
    assert only_files(tmp_path) == [
        "step-00000004.pt",
        "step-00000004.pt.sha256",
        "step-00000005.pt",
        "step-00000005.pt.sha256",
    ]
    assert keep_last(tmp_path, 5) == []
    with pytest.raises(ValueError):
        keep_last(tmp_path, 0)


def test_load_latest_good_falls_back(tmp_path):
    assert load_latest_good(tmp_path) is None
    for step in (1, 2, 3):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    newest, middle = checkpoint_path(tmp_path, 3), checkpoint_path(tmp_path, 2)
    newest.write_bytes(newest.read_bytes()[:50])  # truncated by a crash
    torch.save({"x": Evil(tmp_path / "PWNED")}, middle)  # replaced by something unsafe
    (tmp_path / "step-00000002.pt.sha256").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path, state = load_latest_good(tmp_path)
    assert path == checkpoint_path(tmp_path, 1) and state == {"step": 1}
    msgs = [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]
    assert len(msgs) == 2 and "step-00000003.pt" in msgs[0] and "step-00000002.pt" in msgs[1]
    assert not (tmp_path / "PWNED").exists()
    checkpoint_path(tmp_path, 1).write_bytes(b"garbage")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError, match="no loadable checkpoint"):
        load_latest_good(tmp_path)


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip(tmp_path):
    shared = torch.randn(4, 3)
    tensors = {
        "enc.w": shared,
        "dec.w": shared,  # tied weights share storage
        "half": torch.randn(5, dtype=torch.bfloat16),
        "idx": torch.arange(6).reshape(2, 3),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0),
    }
    meta = {"config": '{"n_q": 8}', "telucodec_version": "0.1"}
    path = save_weights_safetensors(tmp_path / "w.safetensors", tensors, meta)
    assert only_files(tmp_path) == ["w.safetensors"]
    out, out_meta = load_weights_safetensors(path)
    assert set(out) == set(tensors)
    for k in tensors:
        assert out[k].dtype == tensors[k].dtype and torch.equal(out[k], tensors[k])
    assert {k: out_meta[k] for k in meta} == meta and len(out_meta["telucodec_sha256"]) == 64


def test_safetensors_corruption(tmp_path):
    path = save_weights_safetensors(tmp_path / "w.safetensors", {"w": torch.randn(64)}, {"a": "b"})
    data = path.read_bytes()
    for pos in (len(data) - 1, len(data) - 100, len(data) // 2):  # inside tensor data
        b = bytearray(data)
        b[pos] ^= 0x10
        path.write_bytes(bytes(b))
        with pytest.raises(CheckpointError, match="w.safetensors.*corrupted"):
            load_weights_safetensors(path)
    for n in (0, 5, 20, len(data) - 1):
        path.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="w.safetensors"):
            load_weights_safetensors(path)
    with pytest.raises(CheckpointError, match="no weights file"):
        load_weights_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="metadata"):
        save_weights_safetensors(tmp_path / "x.safetensors", {"w": torch.ones(1)}, {"n": 3})
