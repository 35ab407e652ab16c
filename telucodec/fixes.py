"""The seven proposed fixes, each one named switch, plus the better variants the book compares them with.

`Fixes.none()` is the broken baseline exactly as the story describes it; `Fixes.all()` turns on the seven fixes
as they were proposed. Any subset combines. The extra fields below the seven are *not* part of the story: they are
the alternatives the literature uses, so a notebook can put "the fix as proposed" beside "what EnCodec/DAC do".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

SEVEN = (
    "codebook_loss",
    "per_step_ste",
    "output_scale",
    "average_vq_loss",
    "unclamped_losses",
    "fp32_perceptual",
    "reweighted_losses",
)

RESIDUAL_FORMS = ("raw", "detached", "ste")


@dataclass(frozen=True)
class Fixes:
    # ---- the seven fixes of the story (False = the broken baseline) ----
    codebook_loss: bool = False
    """1. Add the codebook loss ||sg[z] - e||^2 beside beta * commitment, so the codebook also gets gradients."""
    per_step_ste: bool = False
    """2. Straight-through estimator inside each RVQ step, instead of once on the cumulative sum after the loop."""
    output_scale: bool = False
    """3. Multiply the decoder's tanh output by a learnable scale (initialised at `output_scale_init`)."""
    average_vq_loss: bool = False
    """4. Average the per-quantizer VQ losses over the active quantizers instead of summing them."""
    unclamped_losses: bool = False
    """5. Stop clamping recon/perceptual/VQ losses at (0,5)/(0,10)/(0,10); gradient-norm clipping stays on."""
    fp32_perceptual: bool = False
    """6. Compute the spectral loss in float32 outside autocast, instead of casting it back to the autocast dtype."""
    reweighted_losses: bool = False
    """7. Total = 2.0*recon + 0.1*perceptual + vq, instead of recon + 0.01*perceptual + vq."""

    # ---- extra named variants from the literature (not part of the seven) ----
    ema_update: bool = True
    """Update codebooks by exponential moving averages (SoundStream/EnCodec/Mimi). False + codebook_loss = DAC style."""
    residual_form: str = "raw"
    """With per_step_ste: next residual r - q ("raw", as proposed: encoder gradient x n_q), r - sg(q) ("detached",
    vector-quantize-pytorch: x n_q, no spurious codebook gradient) or r - q_ste ("ste", original EnCodec: x 1, but
    later stages' commitment losses never reach the encoder)."""
    output_scale_init: float = 3.0
    """Initial value of the learnable output scale (the story's 3.0)."""

    def __post_init__(self):
        if self.residual_form not in RESIDUAL_FORMS:
            raise ValueError(f"residual_form must be one of {RESIDUAL_FORMS}, not {self.residual_form!r}")

    @classmethod
    def none(cls, **variants) -> Fixes:
        """The broken baseline of the story (optionally with extra variants changed)."""
        return cls(**variants)

    @classmethod
    def all(cls, **variants) -> Fixes:
        """All seven fixes as proposed."""
        return cls(**{name: True for name in SEVEN}, **variants)

    @classmethod
    def parse(cls, text: str) -> Fixes:
        """'all', 'none', a comma list of fix names ('codebook_loss,output_scale'), or 'all-<name>' (all but one)."""
        text = (text or "none").strip()
        if text == "all":
            return cls.all()
        if text == "none":
            return cls.none()
        if text.startswith("all-"):
            name = text[4:]
            _check_names([name])
            return replace(cls.all(), **{name: False})
        names = [n.strip() for n in text.split(",") if n.strip()]
        _check_names(names)
        return cls(**{n: True for n in names})

    def with_(self, **changes) -> Fixes:
        """A copy with some switches changed: `Fixes.none().with_(codebook_loss=True)`."""
        return replace(self, **changes)

    def enabled(self) -> list[str]:
        """Names of the seven fixes that are on, in the story's order."""
        return [name for name in SEVEN if getattr(self, name)]

    def label(self) -> str:
        on = self.enabled()
        if not on:
            return "none"
        if len(on) == len(SEVEN):
            return "all"
        return "+".join(on)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Fixes:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _check_names(names):
    for name in names:
        if name not in SEVEN:
            raise ValueError(f"unknown fix {name!r}; choose from {', '.join(SEVEN)}, 'all' or 'none'")
