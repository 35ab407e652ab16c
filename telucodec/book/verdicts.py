"""The one wording of each seed fix's verdict. Each fix chapter's headline (``**Verdict: ...**``) and chapter 12's
table quote it word for word; ``tests/test_book_text.py`` fails when a chapter says it another way.

The verdicts weigh both kinds of evidence the book collects: the mechanism each fix chapter probes, and the
committed 3000-step, three-seed ablation (``results/cpu/ablation3000``) with the fix removed from all seven and
added alone to none. Chapter 14 sorts the fixes the same way: helpful (2, 3, 4), inert (1, 5, 6), harmful (7).
"""

from __future__ import annotations

__all__ = ["VERDICTS", "headline", "table_cell"]

VERDICTS = {
    "codebook_loss": "false for an EMA codebook: the codebooks learn without it, and adding it has no measurable effect",
    "per_step_ste": "false as stated, yet the per-step form helps",
    "output_scale": "half-true: the premise is wrong, yet the change helps, as a faster-moving output more than as a "
    "range fix",
    "average_vq_loss": "half-true: a convention by mechanism, yet averaging is measurably better than summing here",
    "unclamped_losses": "right in principle, no effect here",
    "fp32_perceptual": "true as practice, not a cause of this failure",
    "reweighted_losses": "false, and harmful to the waveform",
}


def headline(fix: str) -> str:
    """The bold verdict a fix chapter's headline carries."""
    return f"**Verdict: {VERDICTS[fix]}.**"


def table_cell(fix: str) -> str:
    """The bold verdict that opens the fix's row in chapter 12's table."""
    v = VERDICTS[fix]
    return f"**{v[0].upper()}{v[1:]}.**"
