"""The quantizer's switches change gradients exactly as the book derives."""

import pytest
import torch

from telucodec.codec.quantizer import ResidualVQ, VectorQuantizer, codebook_usage
from telucodec.fixes import Fixes


def _rvq(fixes, n_q=4, dim=8, size=16):
    torch.manual_seed(0)
    return ResidualVQ(dim, n_q, size, fixes).train()


def _encoder_gain(fixes, n_q):
    """d(sum of quantized output)/dz, measured: a gain of g means the decoder's gradient reaches z times g."""
    rvq = _rvq(fixes, n_q)
    z = torch.randn(2, 8, 5, requires_grad=True)
    out = rvq(z, n_q)["quantized"]
    g = torch.randn_like(out)
    (out * g).sum().backward()
    return float(z.grad.norm() / g.norm())


@pytest.mark.parametrize("n_q", [1, 3, 6])
def test_after_loop_ste_passes_gradient_unchanged(n_q):
    assert _encoder_gain(Fixes.none(), n_q) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("n_q", [1, 3, 6])
def test_per_step_ste_as_proposed_multiplies_encoder_gradient_by_n_q(n_q):
    assert _encoder_gain(Fixes.none(per_step_ste=True), n_q) == pytest.approx(float(n_q), rel=1e-5)


@pytest.mark.parametrize("n_q", [1, 3, 6])
def test_per_step_ste_variants(n_q):
    assert _encoder_gain(Fixes.none(per_step_ste=True, residual_form="detached"), n_q) == pytest.approx(n_q, rel=1e-5)
    assert _encoder_gain(Fixes.none(per_step_ste=True, residual_form="ste"), n_q) == pytest.approx(1.0, rel=1e-5)


def test_ste_residual_form_blocks_later_commitment_gradients():
    """Original EnCodec form: only stage 1's commitment loss reaches z; with the raw residual, all stages do."""
    for form, only_first in (("ste", True), ("raw", False)):
        rvq = _rvq(Fixes.none(per_step_ste=True, residual_form=form, ema_update=False), n_q=3)
        z = torch.randn(2, 8, 5, requires_grad=True)
        rvq(z, 3)["vq_loss"].backward()
        zf = z.detach().transpose(1, 2).reshape(-1, 8)
        q1 = rvq.stages[0].codebook.detach()[rvq.stages[0].nearest(zf)]
        first_only = (rvq.beta * 2 * (zf - q1) / zf.numel()).reshape(2, 5, 8).transpose(1, 2)
        assert torch.allclose(z.grad, first_only, atol=1e-7) == only_first


def test_codebook_loss_moves_codebook_commitment_moves_encoder():
    torch.manual_seed(0)
    for fixes, codebook_gets_grad in (
        (Fixes.none(ema_update=False), False),
        (Fixes.none(codebook_loss=True, ema_update=False), True),
    ):
        rvq = ResidualVQ(8, 2, 16, fixes).train()
        z = torch.randn(2, 8, 5, requires_grad=True)
        rvq(z, 2)["vq_loss"].backward()
        assert z.grad is not None and float(z.grad.abs().sum()) > 0  # commitment -> encoder
        g = rvq.stages[0].codebook.grad
        assert (g is not None and float(g.abs().sum()) > 0) == codebook_gets_grad


def test_ema_moves_used_codes_toward_their_inputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, decay=0.5, dead_code_threshold=0.0)
    x = torch.randn(64, 4) + 3.0
    before = vq.codebook.detach().clone()
    idx = vq.nearest(x)
    vq.ema_update(x, idx)
    used = torch.unique(idx)
    moved = (vq.codebook.detach()[used] - before[used]).norm(dim=1)
    assert float(moved.min()) > 0
    # after many updates a used code sits at the mean of its assigned inputs
    for _ in range(60):
        vq.ema_update(x, idx)
    for k in used[:3]:
        assert torch.allclose(vq.codebook.detach()[k], x[idx == k].mean(0), atol=1e-3)


def test_dead_codes_are_reseeded_from_batch():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, dead_code_threshold=0.5)
    vq.ema_count.fill_(0.0)
    x = torch.randn(32, 4) * 10
    n = vq.reseed_dead_codes(x)
    assert n == 8
    for row in vq.codebook.detach():
        assert any(torch.equal(row, xi) for xi in x)


def test_kmeans_init_places_codes_on_data():
    torch.manual_seed(0)
    centers = torch.tensor([[5.0, 0], [-5.0, 0], [0, 5.0], [0, -5.0]])
    x = centers[torch.randint(0, 4, (400,))] + 0.1 * torch.randn(400, 2)
    vq = VectorQuantizer(2, 4)
    vq.kmeans_init(x, iters=20)
    err = ((x[:, None] - vq.codebook.detach()[None]) ** 2).sum(-1).min(1).values.mean()
    assert float(err) < 0.1


def test_summed_vq_loss_grows_with_n_q_averaged_does_not():
    torch.manual_seed(0)
    z = torch.randn(4, 8, 20)
    sums, means = [], []
    for n_q in (1, 4, 8):
        sums.append(float(_rvq(Fixes.none(), 8)(z, n_q)["vq_loss"]))
        means.append(float(_rvq(Fixes.none(average_vq_loss=True), 8)(z, n_q)["vq_loss"]))
    assert sums[2] > 3 * sums[0]
    assert means[2] < 1.5 * means[0]


def test_usage_and_perplexity():
    codes = torch.tensor([[[0, 1, 2, 3]], [[0, 0, 0, 0]]]).transpose(0, 1)  # (1 batch... ) shape (2,1,4)->(1,2,4)
    codes = torch.tensor([[[0, 1, 2, 3], [0, 0, 0, 0]]])
    u = codebook_usage(codes, 4)
    assert u["usage"] == [1.0, 0.25]
    assert u["perplexity"][0] == pytest.approx(4.0)
    assert u["perplexity"][1] == pytest.approx(1.0)
