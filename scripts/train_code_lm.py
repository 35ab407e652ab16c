"""Train the code language model of chapter 18 on the train list's codes (resumable: rerun the same command).

    OMP_NUM_THREADS=1 python scripts/train_code_lm.py --order delay --steps 3000 --out checkpoints/tokens/delay

Needs checkpoints/tokens/codes_{train,tune}.npz (scripts/code_tokens.py). Chooses on the tune list only; the test
list is scored by scripts/code_lm_results.py.
"""

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", choices=("flat", "delay"), required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--codes", default=str(ROOT / "checkpoints/tokens"))
    ap.add_argument("--context_frames", type=int, default=64)
    ap.add_argument("--d_model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval_every", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from telucodec.tokens.lm import LMConfig
    from telucodec.tokens.lm_fit import CodeSet, train

    codes = Path(args.codes)
    train_set, tune_set = CodeSet.load(codes / "codes_train.npz"), CodeSet.load(codes / "codes_tune.npz")
    config = LMConfig(
        n_q=train_set.codes.shape[0],
        order=args.order,
        context_frames=args.context_frames,
        d_model=args.d_model,
        n_layers=args.layers,
    )
    train(
        config,
        train_set,
        tune_set,
        args.out,
        args.steps,
        batch=args.batch,
        lr=args.lr,
        eval_every=args.eval_every,
        seed=args.seed,
        log=lambda s: print(s, flush=True),
    )


if __name__ == "__main__":
    main()
