"""Codes as tokens (telucodec.tokens): token orders, the code language model, its coder and its sampler.

* the delay and flat orders invert exactly; sequence lengths are what chapter 18's table says;
* the one-pass scores and the one-position-at-a-time path agree, and no code's score depends on a code after it
  in the token order (each order's causality, probed by changing one code);
* the LM coder gives back exactly the codes it coded, in both orders, and spends what the model's cross-entropy
  says plus at most a few words a block;
* training lowers the bits on codes with structure, resumes exactly, and keeps the best weights by the tuning set;
* sampling is reproducible from its seed, keeps to the codebook and, greedy, repeats what it learnt.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from telucodec.tokens import lm_coding
from telucodec.tokens.lm import CodeLM, LMConfig
from telucodec.tokens.lm_fit import CodeSet, block_bits, load_lm, save_lm, train
from telucodec.tokens.orders import delay, flatten, sequence_length, undelay, unflatten

TINY = dict(n_q=3, codebook_size=16, context_frames=8, d_model=32, n_layers=2, n_heads=2)


def tiny(order: str, seed: int = 0) -> CodeLM:
    torch.manual_seed(seed)
    return CodeLM(LMConfig(order=order, **TINY)).eval()


def test_orders_invert_and_count():
    codes = torch.randint(0, 16, (2, 3, 5))
    grid = delay(codes, pad=16)
    assert grid.shape == (2, 3, 7) and grid[0, 2, 0] == 16 and grid[0, 2, 2] == codes[0, 2, 0]
    assert torch.equal(undelay(grid), codes)
    assert torch.equal(unflatten(flatten(codes), 3), codes)
    assert flatten(codes)[0, :3].tolist() == codes[0, :, 0].tolist()
    assert sequence_length(50, 12, "flat") == 600 and sequence_length(50, 12, "delay") == 61
    with pytest.raises(ValueError):
        sequence_length(50, 12, "interleaved")
    with pytest.raises(ValueError):
        unflatten(torch.zeros(7, dtype=torch.long), 3)


@pytest.mark.parametrize("order", ["delay", "flat"])
def test_one_pass_equals_one_position_at_a_time(order):
    model = tiny(order)
    codes = torch.randint(0, 16, (1, 3, 8))
    whole = model.code_logprobs(codes)[0]
    coded = lm_coding._walk(model, 8, lambda lp, k, f: codes[0, k, f])  # follows the codes ...
    assert torch.equal(torch.as_tensor(coded), codes[0])
    seen = torch.zeros(3, 8)

    def record(lp, k, f):  # ... and records the score each one got on the way
        seen[k, f] = lp.gather(1, codes[0, k, f][:, None])[:, 0]
        return codes[0, k, f]

    lm_coding._walk(model, 8, record)
    assert torch.allclose(seen, whole, atol=1e-5)


@pytest.mark.parametrize("order", ["delay", "flat"])
def test_no_code_is_scored_from_a_later_one(order):
    model = tiny(order)
    codes = torch.randint(0, 16, (1, 3, 8))
    changed = codes.clone()
    changed[0, 1, 4] = (codes[0, 1, 4] + 1) % 16
    a, b = model.code_logprobs(codes)[0], model.code_logprobs(changed)[0]
    # position of (stage k, frame f) in the token order
    pos = (lambda k, f: f * 3 + k) if order == "flat" else (lambda k, f: f + k)
    for k in range(3):
        for f in range(8):
            if pos(k, f) < pos(1, 4) or (order == "delay" and pos(k, f) == pos(1, 4) and k != 1):
                assert torch.allclose(a[k, f], b[k, f]), (k, f)
    assert not torch.allclose(a[1, 4], b[1, 4])  # its own score does change
    later = [(k, f) for k in range(3) for f in range(8) if pos(k, f) > pos(1, 4)]
    assert any(not torch.allclose(a[k, f], b[k, f]) for k, f in later)  # and it is read by what follows


@pytest.mark.parametrize("order", ["delay", "flat"])
def test_lm_coder_round_trip_and_cost(order):
    model = tiny(order)
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 16, (3, 21))
    blocks = lm_coding.encode_clip(model, clip)
    assert len(blocks) == 3  # 8 + 8 + 5 frames
    assert np.array_equal(lm_coding.decode_clip(model, blocks, 21), clip)
    ideal = block_bits(model, [clip]).sum()
    spent = 32 * sum(len(b) for b in blocks)
    assert ideal <= spent <= ideal + 3 * 64 + 0.01 * ideal
    with pytest.raises(ValueError):
        lm_coding.encode_block(model, np.full((3, 4), 16))  # a code outside the codebook
    with pytest.raises(ValueError):
        lm_coding.encode_block(model, np.zeros((3, 9), int))  # longer than the context


def _structured(clips: int, frames: int, seed: int) -> CodeSet:
    """Stage 0 counts up, each stage above copies the one below plus its index: a predictable sequence."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(clips):
        s0 = (rng.integers(16) + np.arange(frames)) % 16
        parts.append(np.stack([(s0 + k) % 16 for k in range(3)]))
    return CodeSet(np.concatenate(parts, 1), np.cumsum([0] + [frames] * clips))


def test_training_learns_resumes_exactly_and_keeps_the_best(tmp_path):
    config = LMConfig(order="delay", **TINY)
    data, tune = _structured(12, 20, 0), _structured(4, 20, 1)
    kw = dict(batch=8, lr=1e-2, warmup=5, eval_every=10, log=lambda s: None)
    whole = train(config, data, tune, tmp_path / "a", steps=40, **kw)

    def crash(line):  # killed at step 30, after the step-20 checkpoint and before the step-30 one
        if '"step": 30' in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, data, tune, tmp_path / "b", steps=40, **{**kw, "log": crash})
    resumed = train(config, data, tune, tmp_path / "b", steps=40, **kw)
    for (n, p), (_, q) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(p, q), n
    curve = json.loads((tmp_path / "a" / "curve.json").read_text())["curve"]
    assert [r["step"] for r in curve] == [10, 20, 30, 40]
    assert curve[-1]["tune_bits_per_frame"] < 0.5 * 3 * math.log2(16)  # half of what uniform codes cost
    best = load_lm(tmp_path / "a" / "best.safetensors")
    assert block_bits(best, tune.clips()).sum() / 80 == pytest.approx(
        min(r["tune_bits_per_frame"] for r in curve), abs=2e-3
    )
    greedy = lm_coding.continue_codes(best, tune.codes[:, :6].numpy(), 12, top_k=1)
    assert greedy.shape == (3, 12)
    expect = (tune.codes[0, 5].item() + 1 + np.arange(12)) % 16
    assert (greedy[0] == expect).mean() >= 0.75  # it learnt to count


def test_sampling_is_seeded_and_stays_in_the_codebook():
    model = tiny("delay")
    prompt = np.random.default_rng(0).integers(0, 16, (3, 5))
    a = lm_coding.continue_codes(model, prompt, 19, seed=3)
    b = lm_coding.continue_codes(model, prompt, 19, seed=3)
    c = lm_coding.continue_codes(model, prompt, 19, seed=4)
    assert a.shape == (3, 19) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 16


def test_saved_model_scores_the_same(tmp_path):
    model = tiny("flat")
    save_lm(tmp_path / "lm.safetensors", model, half=False)
    back = load_lm(tmp_path / "lm.safetensors")
    codes = torch.randint(0, 16, (2, 3, 8))
    assert torch.equal(model.code_logprobs(codes), back.code_logprobs(codes))
    with pytest.raises(ValueError, match="must be one of"):
        LMConfig(order="interleaved")
    with pytest.raises(ValueError):
        CodeSet(np.zeros((3, 10)), [0, 4, 9])  # starts must end at the frame count
