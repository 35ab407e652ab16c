"""The shipped codec's codes of the speaker lists, as token arrays for the code language model (chapter 18).

    OMP_NUM_THREADS=1 python scripts/code_tokens.py --data_root ../shared/data

Codes every clip of the train, tune and test lists (results/speakers/lists.tsv) at 6 kbps (12 stages) with the
shipped model and writes checkpoints/tokens/codes_<list>.npz: `codes` (12, frames) uint16, every clip's frames one
after another, and `starts` (clips + 1) where each clip begins, plus the clips' speakers. Nothing here is committed
(10 MB); telucodec.tokens.lm_fit trains on it.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_root", required=True)
    ap.add_argument("--list", default=str(ROOT / "results/speakers/lists.tsv"))
    ap.add_argument("--out", default=str(ROOT / "checkpoints/tokens"))
    ap.add_argument("--which", default="train,tune,test")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import telucodec
    from telucodec.coding.chunked import encode_chunked
    from telucodec.data.speakers import load_list, read_list

    model = telucodec.load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for which in args.which.split(","):
        t0 = time.time()
        utts = read_list(args.list, which)
        clips = load_list(utts, args.data_root, model.sample_rate, workers=1)
        parts = [encode_chunked(model, np.ascontiguousarray(w, np.float32), model.config.n_q) for _, w in clips]
        starts = np.cumsum([0] + [p.shape[1] for p in parts])
        np.savez(
            out / f"codes_{which}.npz",
            codes=np.concatenate(parts, axis=1).astype(np.uint16),
            starts=starts,
            speakers=np.array([u.speaker for u, _ in clips]),
            model_id=np.array(model.entropy.hex_id),
        )
        print(
            f"{which}: {len(parts)} clips, {starts[-1]} frames ({starts[-1] / 50 / 60:.1f} min) in {time.time() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
