"""Real speech listed by speaker: manifests, speaker-disjoint splits and a cache of decoded audio.

A codec that must work for voices it never heard is measured on speakers it never heard. This module reads
corpus manifests (TSV files with at least `file` and `speaker` columns, `file` relative to the manifest's folder),
assigns every *speaker* to one of three lists, and loads the clips of a list:

* ``train``: the codec trains on these;
* ``tune``: every choice (ingredients, checkpoints, Opus's application) is measured on these;
* ``test``: reported, never trained or tuned on.

The assignment is a stable hash of the speaker label, stratified by corpus folder (and by language where a folder
has several), so the lists do not depend on the order of the manifests and adding speakers never moves the others.
Speakers who recorded many clips stay in ``train`` (they would otherwise take most of a corpus's hours with them).

Decoding 160 minutes of mp3 and flac costs about nine CPU-minutes; :func:`load_list` keeps every decoded clip as a
float32 ``.npy`` file under the run cache (``TELUCODEC_CACHE``), keyed by the file's path, size, modification time
and the sample rate, so the second load takes seconds.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from telucodec.errors import BadAudioWarning, DataError

LISTS = ("train", "tune", "test")
COLUMNS = ("list", "corpus", "file", "speaker", "language", "licence", "duration_ms")


@dataclass(frozen=True)
class Utterance:
    """One clip of a manifest. `file` is relative to the data root (the folder that holds the corpus folders)."""

    corpus: str
    file: str
    speaker: str
    language: str = ""
    licence: str = ""
    duration_ms: int = 0
    list: str = ""

    def path(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.file


def read_manifest(
    manifest: str | os.PathLike, root: str | os.PathLike | None = None, corpus: str | None = None
) -> list[Utterance]:
    """The clips of one manifest TSV. Paths become relative to `root` (default: the manifest's parent's parent, the
    folder that holds the corpus folder); `corpus` defaults to the manifest's folder name."""
    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent.parent
    corpus = corpus or manifest.parent.name
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "file" not in rows[0] or "speaker" not in rows[0]:
        raise DataError(f"{manifest}: a manifest needs a header with 'file' and 'speaker' columns")
    out = []
    for r in rows:
        rel = os.path.relpath(manifest.parent / r["file"], root)
        out.append(
            Utterance(
                corpus,
                Path(rel).as_posix(),
                r["speaker"].strip(),
                r.get("language", "") or "",
                r.get("licence", "") or "",
                int(float(r.get("duration_ms") or 0)),
            )
        )
    return out


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_speakers(
    utterances: list[Utterance], test: dict, tune: dict, max_clips: int = 5, seed: int = 0
) -> list[Utterance]:
    """Give every utterance a list: the speakers of each corpus are ranked by a stable hash of their label (within
    each language, taken in turn, so languages share the held-out places); the first ``test[corpus]`` speakers with
    at most `max_clips` clips go to "test", the next ``tune[corpus]`` to "tune", every other speaker to "train"."""
    by_corpus: dict = defaultdict(lambda: defaultdict(list))
    for u in utterances:
        by_corpus[u.corpus][u.speaker].append(u)
    assign = {}
    for corpus, speakers in by_corpus.items():
        by_language = defaultdict(list)
        for spk, utts in speakers.items():
            if len(utts) <= max_clips:
                by_language[utts[0].language].append(spk)
        queues = [sorted(v, key=lambda s: _unit(seed, s)) for _, v in sorted(by_language.items())]
        queues.sort(key=lambda q: _unit(seed, q[0]))
        ranked = []  # round robin over languages
        while any(queues):
            for q in queues:
                if q:
                    ranked.append(q.pop(0))
        n_test, n_tune = test.get(corpus, 0), tune.get(corpus, 0)
        if n_test + n_tune > len(ranked):
            raise DataError(f"{corpus}: {n_test} test + {n_tune} tune speakers asked, {len(ranked)} eligible")
        for i, spk in enumerate(ranked[: n_test + n_tune]):
            assign[(corpus, spk)] = "test" if i < n_test else "tune"
    from dataclasses import replace

    return [replace(u, list=assign.get((u.corpus, u.speaker), "train")) for u in utterances]


def write_list(path: str | os.PathLike, utterances: list[Utterance]) -> None:
    """Write utterances as a TSV with the columns of COLUMNS (sorted: corpus, speaker, file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(utterances, key=lambda u: (u.corpus, u.speaker, u.file))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for u in rows:
            w.writerow([getattr(u, c) for c in COLUMNS])


def read_list(path: str | os.PathLike, which: str | None = None) -> list[Utterance]:
    """The utterances of a list file written by :func:`write_list` (only those of list `which`, if given)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such list file: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    known = {f.name for f in fields(Utterance)}
    if not rows or not {"file", "speaker"} <= set(rows[0]):
        raise DataError(f"{path}: not a speaker list (needs 'file' and 'speaker' columns)")
    out = [Utterance(**{k: (int(v) if k == "duration_ms" else v) for k, v in r.items() if k in known}) for r in rows]
    return [u for u in out if which is None or u.list == which]


def check_disjoint(*lists: list[Utterance]) -> None:
    """Raise DataError if any speaker (corpus, label) appears in two of the lists."""
    seen: dict = {}
    for i, utts in enumerate(lists):
        for u in utts:
            key = (u.corpus, u.speaker)
            if seen.setdefault(key, i) != i:
                raise DataError(f"speaker {u.speaker} of {u.corpus} is in two lists")


# ------------------------------------------------------------------------------------------ decoded-audio cache
def _cache_dir() -> Path:
    from telucodec.paths import cache_dir

    return cache_dir() / "decoded"


def _cache_key(path: Path, sample_rate: int) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sample_rate}".encode()).hexdigest()


def _load_cached(path: Path, sample_rate: int):
    from telucodec.data.folders import _load_one

    try:
        key = _cache_key(path, sample_rate)
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    cached = _cache_dir() / key[:2] / f"{key}.npy"
    if cached.is_file():
        try:
            return np.load(cached), None
        except (OSError, ValueError):
            pass  # a torn cache file: decode again
    # _load_one reports an unusable file instead of warning: this runs in worker threads, where catching
    # warnings is not thread-safe (two overlapping catch_warnings can leave the process's warnings redirected)
    wav, reason = _load_one(path, sample_rate, min_seconds=0.25, remove_dc=True)  # load_clips' defaults
    if wav is None:
        return None, reason
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, wav)
    os.replace(tmp, cached)
    return wav, None


def load_list(
    utterances: list[Utterance], root: str | os.PathLike, sample_rate: int = 16000, workers: int | None = None
) -> list[tuple[Utterance, np.ndarray]]:
    """Decode the clips of `utterances` under `root` (cached on disk), in order. Unusable files are skipped with
    one BadAudioWarning each that names the file; DataError if none is usable."""
    from concurrent.futures import ThreadPoolExecutor

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no such data folder: {root}")
    paths = [u.path(root) for u in utterances]
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _load_cached(p, sample_rate), paths))
    out = []
    for u, p, (wav, reason) in zip(utterances, paths, results):
        if wav is None:
            warnings.warn(f"skipping {p}: {reason}", BadAudioWarning, stacklevel=2)
        else:
            out.append((u, wav))
    if not out:
        raise DataError(f"no usable audio among the {len(utterances)} listed files under {root}")
    return out
