"""Audio players: clips embedded in the page as 16-bit WAV, side by side and without level normalisation."""

from __future__ import annotations

import base64
import html
import io

import numpy as np


def audio_html(wav: np.ndarray, sample_rate: int = 16000) -> str:
    """An <audio> player for a clip, as 16-bit WAV embedded in a data URI, without level normalisation."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, np.float32), -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio>'


def listen(clips: dict, sample_rate: int = 16000, caption: str = ""):
    """A row of labelled players, e.g. {"original": x, "broken": y, "fixed": z}. Levels are not normalised,
    so a quiet output sounds quiet."""
    from IPython.display import HTML, display

    cells = "".join(
        f"<td style='padding:4px 12px'><b>{html.escape(k)}</b><br>{audio_html(v, sample_rate)}</td>"
        for k, v in clips.items()
    )
    cap = f"<caption style='caption-side:bottom'>{html.escape(caption)}</caption>" if caption else ""
    display(HTML(f"<table>{cap}<tr>{cells}</tr></table>"))
