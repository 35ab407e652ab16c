"""Helpers for the book's notebooks: one profile switch, seeded set-up, cached training runs, plots and players.

Every notebook starts with `profile = telucodec.book.setup()`. The profile is "ci" (quick, CPU, what the stored
outputs come from) unless TELUCODEC_PROFILE=full is set or a CUDA GPU is present.

The notebooks use the helpers as `tb.<name>` (`import telucodec.book as tb`); each lives in one module:

    book.profiles   the profile switch and the seeded set-up
    book.runs       the corpus clips, the run cache (keyed by what a run executes), reconstruct, chain
    book.listings   show_source: the package's own source in a notebook
    book.players    audio players
    book.plots      training curves, spectrograms, waveforms
    book.tables     Markdown tables and the committed results they show
"""

from telucodec.book.listings import show_source
from telucodec.book.players import audio_html, file_html, listen, listen_files
from telucodec.book.plots import MAX_PANELS_PER_ROW, plot_runs, spectrograms, waveforms
from telucodec.book.profiles import PROFILES, Profile, current_profile_name, setup
from telucodec.book.runs import _clips_hash as _clips_hash
from telucodec.book.runs import _source_hash as _source_hash
from telucodec.book.runs import chain, code_fingerprint, corpus_clips, reconstruct, run, run_modules
from telucodec.book.tables import (
    ABLATION3000,
    CPU_COMMAND,
    GPU_COMMAND,
    ablation_rows,
    committed,
    in_a_codec_that_learns,
    longer_runs,
    table,
)

__all__ = [
    "ABLATION3000",
    "CPU_COMMAND",
    "GPU_COMMAND",
    "MAX_PANELS_PER_ROW",
    "PROFILES",
    "Profile",
    "ablation_rows",
    "audio_html",
    "chain",
    "code_fingerprint",
    "committed",
    "corpus_clips",
    "current_profile_name",
    "file_html",
    "listen",
    "listen_files",
    "in_a_codec_that_learns",
    "longer_runs",
    "plot_runs",
    "reconstruct",
    "run",
    "run_modules",
    "setup",
    "show_source",
    "spectrograms",
    "table",
    "waveforms",
]
