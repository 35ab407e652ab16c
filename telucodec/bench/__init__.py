"""Benchmarks: how good is TeluCodec against classical codecs, and how fast is it against EnCodec's architecture.

    python -m telucodec bench quality [--data_dir DIR] [--checkpoint CKPT] [--max_clips N] [--out DIR]
    python -m telucodec bench speed   [--seconds 10] [--repeats 3] [--checkpoint CKPT | --preset full]

Both write a markdown table, a JSON file (results, machine, versions, the command) and, for quality, a
quality-vs-bitrate plot into ``--out`` (default ``results/bench``).  ``--quick`` runs on tiny synthetic
inputs so CI can exercise every code path in seconds; its numbers mean nothing.

Definitions
-----------
* bits/s spent: bytes actually produced for the clip x 8 / clip duration.  TeluCodec: the whole ``.tlc``
  file (payload + 32-byte header/CRC, see :mod:`telucodec.coding.bitstream`); the payload-only rate is also
  stored.  Classical codecs: see :mod:`telucodec.evaluation.baselines`.
* RTF (real-time factor) = seconds of audio processed / wall-clock seconds.  Higher is faster;
  RTF 50 means one second of audio takes 20 ms.  Warm-up runs are excluded; the median of the repeats
  is reported.
"""

from __future__ import annotations

from telucodec.bench.cli import main
from telucodec.bench.common import DEFAULT_OUT, SR, TELUCODEC_KBPS, machine_info, synthetic_speech
from telucodec.bench.quality import quality, quality_markdown
from telucodec.bench.speed import speed, speed_markdown

__all__ = [
    "synthetic_speech",
    "machine_info",
    "quality",
    "speed",
    "main",
    "TELUCODEC_KBPS",
    "DEFAULT_OUT",
    "SR",
    "quality_markdown",
    "speed_markdown",
]
