"""The embedded Telugu corpus: eSpeak NG through ctypes, cached, deterministic."""

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf

from telucodec.data import corpus
from telucodec.errors import TeluCodecError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("espeakng_loader") is None, reason="espeakng-loader not installed"
)

MINUTES = 0.1  # a few sentences


def test_sentences_are_telugu():
    assert len(corpus.SENTENCES) >= 80
    assert len(set(corpus.SENTENCES)) == len(corpus.SENTENCES)
    for s in corpus.SENTENCES:
        letters = [c for c in s if c.isalpha()]
        telugu = [c for c in letters if 0x0C00 <= ord(c) <= 0x0C7F]
        assert len(telugu) >= 0.9 * len(letters), s


def test_plan_is_deterministic_and_varied():
    a = [p for _, p in zip(range(60), corpus._plan_clips(0))]
    b = [p for _, p in zip(range(60), corpus._plan_clips(0))]
    c = [p for _, p in zip(range(60), corpus._plan_clips(1))]
    assert a == b and a != c
    assert len({p.voice for p in a}) >= 8
    assert any("+f" in p.voice for p in a) and any("+m" in p.voice or p.voice == "te" for p in a)
    assert len({p.pitch for p in a}) > 10 and len({p.rate for p in a}) > 10
    # every sentence is used once before any is repeated
    ids = [i for p in a for i in p.sentence_ids]
    first_round = ids[: len(corpus.SENTENCES)]
    assert len(set(first_round)) == len(first_round)


def test_engine_uses_the_telugu_voice():
    engine = corpus.ESpeakNG()
    assert engine.sample_rate == 22050
    assert engine.set_voice("te+f2").endswith("te+f2")
    text = "హైదరాబాద్ తెలంగాణ రాజధాని."
    wav = engine.synthesize(text, "te", seed=1)
    assert wav.dtype == np.int16 and np.abs(wav).max() > 3000
    seconds = len(wav) / engine.sample_rate
    # spoken as Telugu: roughly 1 to 4 s for these 24 characters (an English voice spelling
    # out unknown letters, or silence, would fall outside)
    assert 1.0 < seconds < 4.0
    slow = engine.synthesize(text, "te", rate=120, seed=1)
    assert len(slow) > 1.2 * len(wav)
    with pytest.raises(TeluCodecError, match="variant"):
        engine.set_voice("te+no_such_variant")


def test_build_twice_gives_identical_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path / "one"))
    paths = corpus.build_corpus(MINUTES)
    assert paths and all(p.suffix == ".flac" for p in paths)
    folder = paths[0].parent
    assert folder == corpus.corpus_dir(MINUTES)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["total_seconds"] >= MINUTES * 60
    total = 0.0
    for p, entry in zip(paths, manifest["clips"]):
        wav, sr = sf.read(p, dtype="float32")
        info = sf.info(p)
        assert sr == 16000 and info.channels == 1
        assert abs(len(wav) / sr - entry["seconds"]) < 1e-3
        assert np.abs(wav).max() > 0.1 and np.sqrt(np.mean(wav**2)) > 0.01  # not silent
        assert entry["voice"].startswith("te") and entry["text"] in " ".join(corpus.SENTENCES)
        # plausible Telugu speaking rate: 0.03-0.25 s per character of text
        assert 0.03 < entry["seconds"] / len(entry["text"]) < 0.25, entry
        total += len(wav) / sr
    assert total >= MINUTES * 60

    # cached: a second call reuses the files untouched
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert corpus.build_corpus(MINUTES) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes

    # a rebuild from scratch elsewhere is byte-identical
    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path / "two"))
    again = corpus.build_corpus(MINUTES)
    assert [p.name for p in again] == [p.name for p in paths]
    for a, b in zip(paths + [folder / "manifest.json"], again + [again[0].parent / "manifest.json"]):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert not [p for p in (tmp_path / "two" / "corpus").iterdir() if ".building" in p.name]


def test_key_depends_on_parameters():
    k = corpus.corpus_key(1.0)
    assert k == corpus.corpus_key(1.0)
    assert len({k, corpus.corpus_key(2.0), corpus.corpus_key(1.0, 22050), corpus.corpus_key(1.0, seed=1)}) == 4
    with pytest.raises(TeluCodecError):
        corpus.corpus_key(0)
    with pytest.raises(TeluCodecError):
        corpus.corpus_key(float("nan"))
    with pytest.raises(TeluCodecError, match="sample rate"):
        corpus.corpus_key(1.0, sample_rate=-5)


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "espeakng_loader" else real(name, *a)
    )
    with pytest.raises(TeluCodecError) as info:
        corpus.build_corpus(MINUTES)
    msg = str(info.value)
    assert "pip install espeakng-loader" in msg and "--data_dir" in msg and "\n" not in msg


def test_worker_failure_is_reported_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path))
    outcomes = [
        (2, "Traceback...\nerror: eSpeak NG produced no audible speech for: x\n", "no audible speech"),
        (-11, "", "crashed (signal 11)"),
        (1, "Traceback (most recent call last):\n  ...\nOSError: boom\n", "OSError: boom"),
    ]
    for rc, stderr, expect in outcomes:

        def fake_run(cmd, **kw):
            assert cmd[cmd.index("--_build_into") + 1]  # the worker is told where to build
            return corpus.subprocess.CompletedProcess(cmd, rc, "", stderr)

        monkeypatch.setattr(corpus.subprocess, "run", fake_run)
        with pytest.raises(TeluCodecError) as info:
            corpus.build_corpus(MINUTES)
        assert expect in str(info.value) and "\n" not in str(info.value)
        assert not [p for p in (tmp_path / "corpus").iterdir() if p.is_dir()]  # nothing half-built left
