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


def file_html(path) -> str:
    """An <audio> player for a committed audio file, embedded as the file's own bytes (a FLAC stays FLAC: about half
    the size of the 16-bit WAV that `audio_html` would embed, and exactly what was scored)."""
    from pathlib import Path

    path = Path(path)
    kind = {".flac": "flac", ".wav": "wav", ".ogg": "ogg", ".mp3": "mpeg"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: not an audio file a browser plays (flac, wav, ogg, mp3)")
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<audio controls preload="none" src="data:audio/{kind};base64,{data}"></audio>'


def _row(players: dict, caption: str):
    from IPython.display import HTML, display

    cells = "".join(
        f"<td style='padding:4px 12px'><b>{html.escape(k)}</b><br>{v}</td>" for k, v in players.items()
    )
    cap = f"<caption style='caption-side:bottom'>{html.escape(caption)}</caption>" if caption else ""
    display(HTML(f"<table>{cap}<tr>{cells}</tr></table>"))


def listen_files(files: dict, caption: str = ""):
    """A row of labelled players for committed audio files, {"original": path, ...} (`file_html`)."""
    _row({k: file_html(v) for k, v in files.items()}, caption)


def listen(clips: dict, sample_rate: int = 16000, caption: str = ""):
    """A row of labelled players, e.g. {"original": x, "broken": y, "fixed": z}. Levels are not normalised,
    so a quiet output sounds quiet."""
    _row({k: audio_html(v, sample_rate) for k, v in clips.items()}, caption)
