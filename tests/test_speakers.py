"""Speaker lists (telucodec.data.speakers): disjoint by speaker, stable, and the committed test list is what it says."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from telucodec.data.speakers import (
    Utterance,
    check_disjoint,
    load_list,
    read_list,
    read_manifest,
    split_speakers,
    write_list,
)
from telucodec.errors import BadAudioWarning, DataError
from telucodec.paths import RESULTS_DIR


def _corpus(n_speakers, clips_each=1, corpus="c", languages=("a", "b")):
    return [
        Utterance(corpus, f"{corpus}/s{s}_{k}.wav", f"spk{s}", languages[s % len(languages)])
        for s in range(n_speakers)
        for k in range(clips_each)
    ]


def _speakers(utts, which):
    return {(u.corpus, u.speaker) for u in utts if u.list == which}


def test_split_is_by_speaker_and_counts_match():
    utts = _corpus(40, 2) + _corpus(30, 1, corpus="d")
    out = split_speakers(utts, test={"c": 6, "d": 4}, tune={"c": 3, "d": 2})
    assert len({u.corpus for u in out if u.list == "test" and u.corpus == "c"}) == 1
    assert len([s for s in _speakers(out, "test") if s[0] == "c"]) == 6
    assert len([s for s in _speakers(out, "tune") if s[0] == "d"]) == 2
    by_speaker = {}
    for u in out:  # every clip of a speaker is on the same list
        assert by_speaker.setdefault((u.corpus, u.speaker), u.list) == u.list
    check_disjoint(*[[u for u in out if u.list == w] for w in ("train", "tune", "test")])


def test_languages_share_the_held_out_places():
    out = split_speakers(_corpus(40, languages=("x", "y")), test={"c": 10}, tune={})
    langs = [u.language for u in out if u.list == "test"]
    assert langs.count("x") == langs.count("y") == 5


def test_adding_speakers_moves_no_one_already_held_out():
    before = split_speakers(_corpus(30, languages=("x",)), test={"c": 5}, tune={"c": 5})
    after = split_speakers(_corpus(31, languages=("x",)), test={"c": 5}, tune={"c": 5})
    moved = _speakers(before, "test") - _speakers(after, "test")
    assert len(moved) <= 1  # at most the one displaced by the newcomer's rank


def test_prolific_speakers_stay_in_training():
    utts = _corpus(10) + [Utterance("c", f"c/big_{k}.wav", "big", "a") for k in range(20)]
    out = split_speakers(utts, test={"c": 10}, tune={}, max_clips=5)
    assert {u.list for u in out if u.speaker == "big"} == {"train"}


def test_too_many_held_out_speakers_is_a_clear_error():
    with pytest.raises(DataError, match="eligible"):
        split_speakers(_corpus(5), test={"c": 4}, tune={"c": 2})


def test_check_disjoint_catches_a_shared_speaker():
    a, b = [Utterance("c", "x.wav", "s1")], [Utterance("c", "y.wav", "s1")]
    with pytest.raises(DataError, match="two lists"):
        check_disjoint(a, b)


def test_list_round_trip(tmp_path):
    utts = split_speakers(_corpus(12, 2), test={"c": 2}, tune={"c": 2})
    write_list(tmp_path / "l.tsv", utts)
    back = read_list(tmp_path / "l.tsv")
    assert sorted(back, key=lambda u: u.file) == sorted(utts, key=lambda u: u.file)
    assert {u.list for u in read_list(tmp_path / "l.tsv", "test")} == {"test"}
    with pytest.raises(DataError, match="no such list"):
        read_list(tmp_path / "missing.tsv")


def test_manifest_paths_are_relative_to_the_root(tmp_path):
    (tmp_path / "corp").mkdir()
    (tmp_path / "corp" / "manifest.tsv").write_text("file\tspeaker\tlanguage\nclips/a.wav\tA\tte\n")
    [u] = read_manifest(tmp_path / "corp" / "manifest.tsv")
    assert (u.corpus, u.file, u.speaker) == ("corp", "corp/clips/a.wav", "A")
    (tmp_path / "bad.tsv").write_text("path\twho\nx\ty\n")
    with pytest.raises(DataError, match="'file' and 'speaker'"):
        read_manifest(tmp_path / "bad.tsv")


def test_load_list_caches_and_names_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "good.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    utts = [Utterance("c", "good.wav", "a"), Utterance("c", "bad.wav", "b")]
    with pytest.warns(BadAudioWarning, match="bad.wav"):
        out = load_list(utts, tmp_path, 16000)
    assert [u.file for u, _ in out] == ["good.wav"] and len(out[0][1]) == 16000  # resampled to 16 kHz
    assert len(list((tmp_path / "cache" / "decoded").rglob("*.npy"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_list(utts, tmp_path, 16000)
    np.testing.assert_array_equal(again[0][1], out[0][1])
    with pytest.raises(DataError, match="no usable audio"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_list([utts[1]], tmp_path)


def test_the_committed_lists_hold_unseen_speakers():
    lists = read_list(RESULTS_DIR / "speakers" / "lists.tsv")
    test = [u for u in lists if u.list == "test"]
    assert len({(u.corpus, u.speaker) for u in test}) >= 40
    check_disjoint(*[[u for u in lists if u.list == w] for w in ("train", "tune", "test")])
    assert not any(u.corpus == "telugu-cv-dev" for u in test)


def test_a_list_run_trains_on_train_validates_on_tune_and_adds_the_corpus_only_when_asked(tmp_path, monkeypatch):
    import argparse

    from telucodec.cli import train_command
    from telucodec.cli.commands import main
    from telucodec.config import preset
    from telucodec.data import folders

    monkeypatch.setenv("TELUCODEC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("a1", "a2", "b1", "t1"):
        sf.write(tmp_path / f"{name}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    from dataclasses import replace

    utts = [
        replace(Utterance("c", f"{n}.wav", n[0]), list=which)
        for n, which in zip(("a1", "a2", "b1", "t1"), ("train", "train", "train", "tune"))
    ]
    write_list(tmp_path / "l.tsv", utts)
    corpus = [np.zeros(16000, np.float32)] * 5  # stands in for the embedded corpus's training split
    monkeypatch.setattr(folders, "load_dataset", lambda root, spec, split: corpus if root is None else [])
    p = preset("ci")
    args = argparse.Namespace(data_list=str(tmp_path / "l.tsv"), data_root=str(tmp_path), with_corpus=False,
                              extra_data_dir=None, recipe_codec=p.codec, recipe_train=p.train)  # fmt: skip
    train, val = train_command._listed_clips(args, 16000)
    assert (len(train), len(val)) == (3, 1)
    args.with_corpus = True
    train, val = train_command._listed_clips(args, 16000)
    assert (len(train), len(val)) == (3 + len(corpus), 1)
    assert main(["train", "--with_corpus", "--steps", "1"]) == 2  # without a list: a one-line usage error
