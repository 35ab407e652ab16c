"""Adversarial training: the discriminators' loss, the generator's adversarial and feature-matching losses, and
`Adversary`, which holds the discriminators and their optimizer inside a training run (`telucodec.training.loop`).

The codec is the generator. Each step, one forward pass of the discriminators on the real batch and one on the
codec's output gives all three losses:

- discriminator: hinge, mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))) (EnCodec, MelGAN), or least squares,
  mean((D(x) - 1)^2) + mean(D(x_hat)^2) (HiFi-GAN, DAC); averaged over the sub-discriminators;
- adversarial (generator): mean(relu(1 - D(x_hat))) or mean((D(x_hat) - 1)^2);
- feature matching: for every hidden layer l of every sub-discriminator, ||D_l(x) - D_l(x_hat)||_1 divided by
  mean(|D_l(x)|) (EnCodec's relative form, so deep and shallow layers count alike), averaged over layers.

The discriminators' gradient is taken from their own loss only (autograd.grad on their parameters), so the
generator's losses never train them and their loss never trains the generator: the two updates are simultaneous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from telucodec.training.discriminators import Discriminators

LOSSES = ("hinge", "lsgan")


def discriminator_loss(real_logits: list, fake_logits: list, kind: str = "hinge") -> torch.Tensor:
    """Loss of the discriminators: real cells pushed above +1 (hinge) or to 1 (least squares), fake cells
    below -1 or to 0; mean over sub-discriminators."""
    if kind == "hinge":
        parts = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    elif kind == "lsgan":
        parts = [((r - 1) ** 2).mean() + (f**2).mean() for r, f in zip(real_logits, fake_logits)]
    else:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose from {', '.join(LOSSES)}")
    return sum(parts) / len(parts)


def generator_loss(fake_logits: list, kind: str = "hinge") -> torch.Tensor:
    """The codec's adversarial loss: its output's cells pushed above +1 (hinge) or to 1 (least squares)."""
    if kind == "hinge":
        parts = [F.relu(1 - f).mean() for f in fake_logits]
    elif kind == "lsgan":
        parts = [((f - 1) ** 2).mean() for f in fake_logits]
    else:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose from {', '.join(LOSSES)}")
    return sum(parts) / len(parts)


def feature_matching_loss(real_features: list, fake_features: list, eps: float = 1e-8) -> torch.Tensor:
    """Relative L1 between the discriminators' hidden activations on the real and the decoded batch, averaged
    over every layer of every sub-discriminator. The real activations are constants (detached)."""
    parts = []
    for real_maps, fake_maps in zip(real_features, fake_features):
        for r, f in zip(real_maps, fake_maps):
            r = r.detach()
            parts.append((f - r).abs().mean() / (r.abs().mean() + eps))
    return sum(parts) / len(parts)


class Adversary:
    """The discriminators of one training run, their optimizer, and their step. Float32 throughout."""

    def __init__(self, kinds, channels: int, loss: str, learning_rate: float, betas, max_grad_norm: float, device):
        if loss not in LOSSES:
            raise ValueError(f"unknown adversarial loss {loss!r}; choose from {', '.join(LOSSES)}")
        self.net = Discriminators(kinds, channels).to(device)
        self.params = list(self.net.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=learning_rate, betas=tuple(betas), weight_decay=0.0)
        self.loss, self.max_grad_norm = loss, max_grad_norm

    def losses(self, fake: torch.Tensor, real: torch.Tensor, generator_terms: bool = True) -> dict:
        """The discriminators' loss on (real, fake) and, if asked, the generator's adversarial and feature-
        matching terms. `fake` stays attached to the codec's graph (the generator terms need it)."""
        with torch.autocast(device_type=fake.device.type, enabled=False):
            real_logits, real_features = self.net(real.float())
            fake_logits, fake_features = self.net(fake.float())
            out = {"discriminator": discriminator_loss(real_logits, fake_logits, self.loss)}
            if generator_terms:
                out["adversarial"] = generator_loss(fake_logits, self.loss)
                out["feature"] = feature_matching_loss(real_features, fake_features)
        return out

    def gradients(self, discriminator_loss_value: torch.Tensor) -> list:
        """d(discriminator loss)/d(discriminator parameters) only; the graph is kept for the generator."""
        return list(torch.autograd.grad(discriminator_loss_value, self.params, retain_graph=True))

    def clip(self, grads: list, world: int = 1) -> float:
        """Put `grads` in place (averaged over DDP ranks), clip them, and return the norm before clipping."""
        import torch.distributed as dist

        for p, g in zip(self.params, grads):
            if world > 1:
                dist.all_reduce(g)
                g /= world
            p.grad = g
        return float(torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))

    def step(self, lr: float):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict):
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
