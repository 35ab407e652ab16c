"""read_audio / write_audio: every kind of file a user may hand us, generated in tmp_path."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from telucodec.data import audio_io
from telucodec.data.audio_io import AudioReadError, read_audio, resample, write_audio
from telucodec.errors import TeluCodecError

SR = 16000
HAS_MP3 = "MP3" in sf.available_formats()  # libsndfile >= 1.1 reads and writes MP3
needs_mp3 = pytest.mark.skipif(not HAS_MP3, reason="this libsndfile cannot write MP3")


def tone(seconds=1.0, sr=SR, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def assert_one_line_naming(err, path):
    msg = str(err)
    assert str(path) in msg
    assert "\n" not in msg


# ----------------------------------------------------------------------------- good files


@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 2 / 128), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("FLOAT", 1e-7)])
def test_reads_pcm_widths(tmp_path, subtype, tol):
    x = tone()
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    y = read_audio(path, SR)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= tol


def test_96k_stereo_is_mixed_and_resampled(tmp_path):
    sr = 96000
    left, right = tone(1.0, sr, 440, 0.6), tone(1.0, sr, 440, 0.2)
    path = tmp_path / "stereo96k.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="PCM_24")
    y = read_audio(path, SR)
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - SR) <= 1
    # mono = mean of channels: amplitude 0.4
    mid = y[2000:-2000]
    assert abs(np.abs(mid).max() - 0.4) < 0.01


def test_8k_is_upsampled(tmp_path):
    path = tmp_path / "phone.wav"
    sf.write(path, tone(0.5, 8000, 300), 8000)
    y = read_audio(path, SR)
    assert abs(len(y) - 8000) <= 1
    # the 300 Hz tone survives: its spectral peak is at 300 Hz
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * SR / len(y) - 300) < 5


def test_native_rate_kept_with_none(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, tone(0.25, 22050), 22050)
    assert len(read_audio(path, None)) == int(0.25 * 22050)


def test_flac_ogg_mp3_and_telugu_filename(tmp_path):
    x = tone()
    files = [("తెలుగు క్లిప్ 1.flac", {}), ("a b.ogg", {})]
    if HAS_MP3:
        files.append(("song.mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}))
    for name, kw in files:
        path = tmp_path / name
        sf.write(path, x, SR, **kw)
        y = read_audio(path, SR)
        assert y.ndim == 1 and abs(len(y) - len(x)) < 0.1 * SR, name
        assert 0.3 < np.abs(y).max() < 0.7, name


@needs_mp3
def test_truncated_mp3_reads_what_is_there(tmp_path):
    good = tmp_path / "good.mp3"
    sf.write(good, tone(2.0), SR, format="MP3", subtype="MPEG_LAYER_III")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    y = read_audio(cut, SR)
    assert 0 < len(y) and np.isfinite(y).all()


def test_pyav_fallback_for_m4a_style_input(tmp_path, monkeypatch):
    # Force the PyAV path (used when libsndfile cannot decode a file) on a FLAC file.
    path = tmp_path / "x.flac"
    sf.write(path, tone(), SR)

    def no_soundfile(p):
        raise RuntimeError("libsndfile says no")

    monkeypatch.setattr(audio_io, "_read_soundfile", no_soundfile)
    y = read_audio(path, SR)
    assert len(y) == SR and np.abs(y - tone()).max() < 1e-3


def test_clipped_and_dc_are_read_unchanged(tmp_path):
    x = np.clip(tone(amp=2.0), -1, 1) * 0.5 + 0.3
    path = tmp_path / "dc.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    y = read_audio(path, SR)
    assert np.allclose(y, x, atol=1e-6)


# ----------------------------------------------------------------------------- bad files


def bad_files(tmp_path):
    files = {}
    p = tmp_path / "zero bytes.wav"
    p.write_bytes(b"")
    files["zero bytes"] = (p, "empty file")
    good = tmp_path / "good.wav"
    sf.write(good, tone(), SR)
    p = tmp_path / "truncated_header.wav"
    p.write_bytes(good.read_bytes()[:30])
    files["truncated header"] = (p, "not a readable audio file")
    p = tmp_path / "notes.wav"
    p.write_text("this is a text file, not audio\n")
    files["text"] = (p, "not a readable audio file")
    p = tmp_path / "random.mp3"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["random mp3"] = (p, "not a readable audio file")
    p = tmp_path / "nan.wav"
    x = tone()
    x[100] = np.nan
    sf.write(p, x, SR, subtype="FLOAT")
    files["nan"] = (p, "NaN")
    p = tmp_path / "inf.wav"
    x = tone()
    x[5] = np.inf
    sf.write(p, x, SR, subtype="FLOAT")
    files["inf"] = (p, "infinite")
    p = tmp_path / "nodata.wav"
    sf.write(p, np.zeros(0, np.float32), SR)
    files["no samples"] = (p, "no audio samples")
    p = tmp_path / "folder.wav"
    p.mkdir()
    files["folder"] = (p, "folder")
    files["missing"] = (tmp_path / "missing.wav", "not found")
    return files


def test_bad_files_raise_one_line_errors(tmp_path):
    for what, (path, reason) in bad_files(tmp_path).items():
        with pytest.raises(AudioReadError) as info:
            read_audio(path, SR)
        assert isinstance(info.value, TeluCodecError)
        assert_one_line_naming(info.value, path)
        assert reason in info.value.reason, (what, info.value.reason)


def test_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(), SR)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        path.chmod(0)
    else:  # root ignores file modes: simulate what open() would say

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(audio_io, "open", denied, raising=False)
    try:
        with pytest.raises(AudioReadError) as info:
            read_audio(path)
        assert "permission denied" in info.value.reason
        assert_one_line_naming(info.value, path)
    finally:
        path.chmod(0o644)


def test_one_sample_file(tmp_path):
    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.25], np.float32), SR)
    y = read_audio(path, SR)
    assert y.shape == (1,)


# ----------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_roundtrip_and_atomic(tmp_path, ext):
    x = tone()
    path = tmp_path / f"out.{ext}"
    path.write_bytes(b"old contents")
    assert write_audio(path, torch.from_numpy(x)[None, None], SR) == path
    info = sf.info(path)
    assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
    assert np.abs(read_audio(path, SR) - x).max() < 1e-4
    assert sorted(os.listdir(tmp_path)) == [f"out.{ext}"]  # no temp file left behind


def test_write_clips_out_of_range(tmp_path):
    path = tmp_path / "loud.wav"
    write_audio(path, np.array([2.0, -3.0, 0.5], np.float32), SR)
    y = read_audio(path, SR)
    assert y.max() <= 1.0 and y.min() >= -1.0 and y[0] > 0.99 and y[1] < -0.99


def test_write_errors_are_one_line(tmp_path):
    x = tone()
    cases = [(tmp_path / "x.mp4", "unsupported format"), (tmp_path / "no such folder" / "x.wav", "does not exist")]
    for path, reason in cases:
        with pytest.raises(TeluCodecError) as info:
            write_audio(path, x, SR)
        assert reason in str(info.value)
        assert_one_line_naming(info.value, path)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(TeluCodecError, match="NaN"):
        write_audio(tmp_path / "nan.wav", bad, SR)
    assert not (tmp_path / "nan.wav").exists()
    with pytest.raises(TeluCodecError, match="mono"):
        write_audio(tmp_path / "st.wav", np.zeros((2, 100), np.float32), SR)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    write_audio(path, tone(), SR)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", boom)
    with pytest.raises(TeluCodecError, match="disk full"):
        write_audio(path, tone(amp=0.1), SR)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.wav"]


def test_resample_lengths():
    x = tone(1.0, 44100)
    for sr in (8000, 16000, 22050, 48000):
        y = resample(x, 44100, sr)
        assert y.dtype == np.float32 and abs(len(y) - sr) <= 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_named_wav_does_not_block(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    with pytest.raises(AudioReadError, match="not a regular file"):
        read_audio(path)
