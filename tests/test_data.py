"""Scanning, robust loading, splitting and cropping; all inputs generated in tmp_path."""

import os
import threading
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from telucodec.data import folders as D
from telucodec.data.crops import CropDataset
from telucodec.data.folders import load_clips, load_dataset, scan_audio_folder, split_by_file
from telucodec.errors import BadAudioWarning, DataError

SR = 16000
HAS_MP3 = "MP3" in sf.available_formats()  # libsndfile >= 1.1 reads and writes MP3


def speech_like(seconds=1.0, sr=SR, seed=0, amp=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (amp * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def skip_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, BadAudioWarning)]


def make_messy_folder(root):
    """A folder with good files of every flavour and bad files of every kind.
    Returns (good names, {bad name: reason substring})."""
    root.mkdir(parents=True, exist_ok=True)
    good = {}
    good["pcm16.wav"] = speech_like(1.0)
    sf.write(root / "pcm16.wav", good["pcm16.wav"], SR)
    sf.write(root / "u8.WAV", speech_like(1.0, seed=1), SR, subtype="PCM_U8")
    sf.write(root / "s24.wav", speech_like(1.0, seed=2), SR, subtype="PCM_24")
    sf.write(root / "stereo96k.flac", np.stack([speech_like(1.0, 96000, 3)] * 2, 1), 96000, subtype="PCM_24")
    sf.write(root / "phone8k.wav", speech_like(1.0, 8000, 4), 8000)
    sf.write(root / "clipped.wav", np.clip(speech_like(1.0, seed=5, amp=3.0), -1, 1), SR)
    sf.write(root / "dc offset.ogg", speech_like(1.0, seed=6) + 0.4, SR)
    sf.write(root / "తెలుగు మాట 1.wav", speech_like(1.0, seed=7), SR)
    (root / "sub" / "deeper").mkdir(parents=True)
    sf.write(root / "sub" / "deeper" / "float.wav", speech_like(1.0, seed=8), SR, subtype="FLOAT")
    good_names = [
        "pcm16.wav",
        "u8.WAV",
        "s24.wav",
        "stereo96k.flac",
        "phone8k.wav",
        "clipped.wav",
        "dc offset.ogg",
        "తెలుగు మాట 1.wav",
        "float.wav",
    ]
    if HAS_MP3:
        sf.write(root / "sub" / "voice.mp3", speech_like(1.0, seed=9), SR, format="MP3", subtype="MPEG_LAYER_III")
        good_names.append("voice.mp3")

    bad = {}
    (root / "zero.wav").write_bytes(b"")
    bad["zero.wav"] = "empty file"
    (root / "header.wav").write_bytes((root / "pcm16.wav").read_bytes()[:30])
    bad["header.wav"] = "not a readable audio file"
    (root / "readme.wav").write_text("not audio")
    bad["readme.wav"] = "not a readable audio file"
    (root / "corrupt.mp3").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    bad["corrupt.mp3"] = "not a readable audio file"
    x = speech_like(1.0)
    x[10] = np.nan
    sf.write(root / "nan.wav", x, SR, subtype="FLOAT")
    bad["nan.wav"] = "NaN"
    sf.write(root / "silent.wav", np.zeros(SR, np.float32), SR)
    bad["silent.wav"] = "silent"
    sf.write(root / "one.wav", np.array([0.5], np.float32), SR)
    bad["one.wav"] = "too short"
    sf.write(root / "dc_only.wav", np.full(SR, 0.5, np.float32), SR)
    bad["dc_only.wav"] = "silent"
    (root / "notes.txt").write_text("ignored: not an audio extension")
    (root / ".hidden.wav").write_text("ignored: hidden")
    return good_names, bad


# ----------------------------------------------------------------------------- scanning


def test_scan_is_recursive_sorted_and_case_insensitive(tmp_path):
    good, bad = make_messy_folder(tmp_path / "d")
    found = scan_audio_folder(tmp_path / "d")
    names = [p.name for p in found]
    assert sorted(names) == sorted(good + list(bad))
    rel = [p.relative_to(tmp_path / "d").as_posix() for p in found]
    assert rel == sorted(rel)
    assert "notes.txt" not in names and ".hidden.wav" not in names


def test_scan_common_voice_and_slr66_layouts(tmp_path):
    cv = tmp_path / "cv-corpus-17.0" / "te"
    (cv / "clips").mkdir(parents=True)
    (cv / "validated.tsv").write_text("client_id\tpath\n")
    for i in (3, 1, 2):  # scanning only: the bytes need not be real MP3
        (cv / "clips" / f"common_voice_te_{i}.mp3").write_bytes(b"ID3")
    assert [p.name for p in scan_audio_folder(tmp_path / "cv-corpus-17.0")] == [
        "common_voice_te_1.mp3",
        "common_voice_te_2.mp3",
        "common_voice_te_3.mp3",
    ]
    slr = tmp_path / "slr66"
    for spk in ("te_in_male", "te_in_female"):
        (slr / spk).mkdir(parents=True)
        sf.write(slr / spk / f"tem_{spk}_01.wav", speech_like(0.5), 48000)
    (slr / "line_index.tsv").write_text("x\ty\n")
    found = scan_audio_folder(slr)
    assert [p.parent.name for p in found] == ["te_in_female", "te_in_male"]


def test_scan_survives_symlink_loops(tmp_path):
    root = tmp_path / "loopy"
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "a" / "b" / "x.wav", speech_like(0.5), SR)
    os.symlink(root, root / "a" / "b" / "back_to_root")  # directory cycle
    os.symlink(root / "a", root / "alias_of_a")  # same folder twice
    os.symlink("self", root / "self")  # a link to itself
    os.symlink("self2.wav", root / "self2.wav")  # a self-loop with an audio name
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("found", scan_audio_folder(root)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "scan_audio_folder hung on a symlink loop"
    names = [p.name for p in result["found"]]
    assert names.count("x.wav") == 1
    with pytest.warns(BadAudioWarning, match="self2.wav"):
        assert len(load_clips(result["found"], SR)) == 1


def test_scan_missing_or_file_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_audio_folder(tmp_path / "nope")
    f = tmp_path / "f.wav"
    sf.write(f, speech_like(0.5), SR)
    with pytest.raises(DataError, match="folder"):
        scan_audio_folder(f)


# ----------------------------------------------------------------------------- loading


def test_load_clips_skips_each_bad_file_once_and_keeps_the_rest(tmp_path):
    good, bad = make_messy_folder(tmp_path / "d")
    paths = scan_audio_folder(tmp_path / "d")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clips = load_clips(paths, SR, min_seconds=0.25)
    msgs = skip_warnings(record)
    assert sorted(p.name for p, _ in clips) == sorted(good)
    assert len(msgs) == len(bad)
    for name, reason in bad.items():
        mine = [m for m in msgs if f"{os.sep}{name}:" in m]
        assert len(mine) == 1, name
        assert mine[0].startswith("skipping ") and reason in mine[0], mine[0]
    for path, wav in clips:
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert abs(len(wav) - SR) <= 2, path  # 1 s at every source rate
        assert abs(float(wav.mean())) < 1e-4, path  # DC removed
        assert np.abs(wav).max() <= 1.0
    by_name = {p.name: w for p, w in clips}
    assert np.abs(by_name["clipped.wav"]).max() > 0.95  # clipped audio kept


def test_min_seconds(tmp_path):
    sf.write(tmp_path / "short.wav", speech_like(0.2), SR)
    with pytest.warns(BadAudioWarning, match=r"short.wav: too short"):
        assert load_clips([tmp_path / "short.wav"], SR, min_seconds=0.5) == []
    assert len(load_clips([tmp_path / "short.wav"], SR, min_seconds=0.1)) == 1


# ----------------------------------------------------------------------------- splitting


def test_split_is_stable_when_files_are_added(tmp_path):
    paths = [tmp_path / f"spk{i % 7}" / f"utt_{i:04d}.wav" for i in range(200)]
    train, val = split_by_file(paths, 0.1, seed=0, root=tmp_path)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 200
    assert 8 <= len(val) <= 35
    more = paths + [tmp_path / "new" / f"extra_{i}.wav" for i in range(50)]
    train2, val2 = split_by_file(more, 0.1, seed=0, root=tmp_path)
    assert set(val) <= set(val2) and set(train) <= set(train2)
    # a different seed gives a different split; same seed the same one
    assert split_by_file(paths, 0.1, seed=1, root=tmp_path)[1] != val
    assert split_by_file(list(reversed(paths)), 0.1, seed=0, root=tmp_path)[1] == list(reversed(val))


def test_split_small_sets(tmp_path):
    assert split_by_file([], 0.1) == ([], [])
    one = [tmp_path / "a.wav"]
    assert split_by_file(one, 0.1) == (one, [])
    for n in range(2, 6):
        paths = [tmp_path / f"{i}.wav" for i in range(n)]
        train, val = split_by_file(paths, 0.1)
        assert len(val) >= 1 and len(train) >= 1
        train, val = split_by_file(paths, 0.9)
        assert len(val) >= 1 and len(train) >= 1
    assert split_by_file([tmp_path / "a.wav", tmp_path / "b.wav"], 0.0)[1] == []


# ----------------------------------------------------------------------------- cropping


def test_crop_dataset_is_deterministic_and_epoch_dependent():
    clips = [speech_like(2.0, seed=i) for i in range(3)] + [speech_like(0.3, seed=9)]
    ds = CropDataset(clips, 8000, seed=5)
    assert len(ds) == 4
    x = ds[1]
    assert x.shape == (1, 8000) and x.dtype == torch.float32
    assert torch.equal(x, CropDataset(clips, 8000, seed=5)[1])  # same on a fresh object (resume)
    ds.set_epoch(1)
    assert not torch.equal(x, ds[1])
    assert torch.equal(ds.crop(1, epoch=0), x)
    assert not torch.equal(x, CropDataset(clips, 8000, seed=6)[1])
    # crops come from the right clip
    start = next(s for s in range(len(clips[1]) - 8000 + 1) if np.array_equal(clips[1][s : s + 8000], x[0].numpy()))
    assert 0 <= start <= len(clips[1]) - 8000
    # short clip: zero padded at the end
    short = ds[3][0]
    assert torch.equal(short[: len(clips[3])], torch.from_numpy(clips[3]))
    assert torch.count_nonzero(short[len(clips[3]) :]) == 0
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False)
    assert next(iter(loader)).shape == (2, 1, 8000)


def test_eval_mode_fixed_segments():
    clips = [speech_like(2.5, seed=1), speech_like(0.3, seed=2), speech_like(10.0, seed=3)]
    ds = CropDataset(clips, SR, train=False, max_segments_per_clip=4)
    assert len(ds) == 2 + 1 + 4
    segs = ds.eval_segments()
    assert segs.shape == (7, 1, SR)
    assert torch.equal(segs[1, 0], torch.from_numpy(clips[0][SR : 2 * SR]))
    assert torch.equal(ds[0], ds[0]) and torch.equal(ds[6], segs[6])


# ----------------------------------------------------------------------------- load_dataset


def cfg(**kw):
    base = dict(sample_rate=SR, segment_seconds=0.5, corpus_minutes=0.1, val_fraction=0.25, seed=0)
    base.update(kw)
    return SimpleNamespace(**base)


def test_load_dataset_from_folder_splits_and_warns_once(tmp_path):
    D._cache.clear()
    good, bad = make_messy_folder(tmp_path / "d")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train = load_dataset(tmp_path / "d", cfg(), "train")
        val = load_dataset(tmp_path / "d", cfg(), "val")
        every = load_dataset(tmp_path / "d", cfg(), "all")
    assert len(skip_warnings(record)) == len(bad)  # loaded once, warned once per bad file
    assert len(every) == len(good)
    assert len(train) + len(val) == len(good) and len(val) >= 1
    assert set(train.names).isdisjoint(val.names)
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float32 for c in train)
    ds = CropDataset(train, SR // 2, seed=0)
    assert ds[0].shape == (1, SR // 2)
    assert train.sample_rate == SR and train.total_seconds > 0


def test_load_dataset_no_usable_audio(tmp_path):
    D._cache.clear()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no usable audio in") as info:
        load_dataset(empty, cfg(), "train")
    assert "\n" not in str(info.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"")
    (bad / "b.flac").write_text("nope")
    with pytest.warns(BadAudioWarning):
        with pytest.raises(DataError) as info:
            load_dataset(bad, cfg(), "train")
    assert str(info.value) == f"no usable audio in {bad}: 2 files found, all skipped"


def test_load_dataset_single_file_reuses_for_val(tmp_path):
    D._cache.clear()
    sf.write(tmp_path / "only.wav", speech_like(1.0), SR)
    assert len(load_dataset(tmp_path, cfg(), "train")) == 1
    with pytest.warns(UserWarning, match="reuses"):
        assert len(load_dataset(tmp_path, cfg(), "val")) == 1


def test_load_dataset_accepts_partial_config(tmp_path):
    D._cache.clear()
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", speech_like(1.0, 22050, seed=i), 22050)
    clips = load_dataset(tmp_path, SimpleNamespace(sample_rate=8000), "all")
    assert len(clips) == 3 and all(abs(len(c) - 8000) <= 1 for c in clips)
    assert len(load_dataset(tmp_path, None, "all")[0]) == SR
