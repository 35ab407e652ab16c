"""Write results/speakers/lists.tsv: every clip of the shared real-speech corpora, assigned by speaker to train,
tune or test (telucodec.data.speakers), plus the Telugu dev speaker (train, and "dev" for its held-out files).

    python scripts/speaker_lists.py --data_root ../shared/data

The test list holds 60 speakers (20 per corpus folder), the tune list 30; nothing is trained or tuned on the test
list. The Telugu dev speaker is one voice: its files are split by file as the earlier shipped model was
(telucodec.data.folders.split_by_file, 25 % held out), and the held-out ones form the "dev" list, the training-speaker row.
"""

import argparse
from dataclasses import replace
from pathlib import Path

from telucodec.data.folders import split_by_file
from telucodec.data.speakers import check_disjoint, read_manifest, split_speakers, write_list

TEST = {"indic_commonvoice_cc0": 20, "multi_commonvoice61_cc0": 20, "en_librispeech_vctk_ccby": 20}
TUNE = {"indic_commonvoice_cc0": 10, "multi_commonvoice61_cc0": 10, "en_librispeech_vctk_ccby": 10}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_root", default="../shared/data")
    ap.add_argument("--out", default="results/speakers/lists.tsv")
    args = ap.parse_args()
    root = Path(args.data_root)
    utts = []
    for manifest in sorted((root / "speech-multilingual").glob("*/manifest.tsv")):
        utts += read_manifest(manifest, root)
    utts = split_speakers(utts, TEST, TUNE)
    dev = read_manifest(root / "telugu-cv-dev" / "manifest.tsv", root)
    dev = [replace(u, speaker=f"te_{u.speaker}", language="te", licence="CC0-1.0") for u in dev]
    _, held = split_by_file([root / u.file for u in dev], 0.25, 0, root=root / "telugu-cv-dev")
    held = {p.as_posix() for p in held}
    dev = [replace(u, list="dev" if (root / u.file).as_posix() in held else "train") for u in dev]
    utts += dev
    check_disjoint(
        *[[u for u in utts if u.list == name and u.corpus != "telugu-cv-dev"] for name in ("train", "tune", "test")]
    )
    write_list(args.out, utts)
    for name in ("train", "tune", "test", "dev"):
        sel = [u for u in utts if u.list == name]
        print(
            f"{name}: {len(sel)} clips, {len({(u.corpus, u.speaker) for u in sel})} speakers, "
            f"{sum(u.duration_ms for u in sel) / 60000:.1f} min"
        )


if __name__ == "__main__":
    main()
