"""The one wording of each seed fix's verdict. Each fix chapter's headline (``**Verdict: ...**``) and chapter 12's
table quote it word for word; ``tests/test_book_text.py`` fails when a chapter says it another way.

The verdicts weigh every kind of evidence the book collects: the mechanism each fix chapter probes; the committed
3000-step, three-seed ablation of the story's training (``results/cpu/ablation3000``), with the fix removed from all
seven and added alone to none; and, for fixes 1-4, the working recipe with and without the fix (600 steps, three
seeds, ``results/cpu/fixes600``; fixes 5-7 change only the story's loss, which that recipe replaces). Chapter 14
sorts them the same way: helpful in the story's training (2, 3, 4) but not in the working recipe, inert (1, 5, 6),
harmful (7).
"""

from __future__ import annotations

__all__ = ["VERDICTS", "headline", "table_cell"]

VERDICTS = {
    "codebook_loss": "false for an EMA codebook: the codebooks learn without it, and it has no measurable effect in "
    "any ablation",
    "per_step_ste": "false as stated; the per-step form helps the story's training, not the working recipe",
    "output_scale": "half-true: the premise is wrong; the change helps the story's training, as a faster-moving "
    "output more than as a range fix, and costs mel distance in the working recipe",
    "average_vq_loss": "half-true: a convention by mechanism; averaging beats summing in the story's training, not in "
    "the working recipe",
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
