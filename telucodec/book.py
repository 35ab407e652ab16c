"""Helpers for the book's notebooks: one profile switch, seeded set-up, cached training runs, plots and players.

Every notebook starts with `profile = telucodec.book.setup()`. The profile is "ci" (quick, CPU, what the stored
outputs come from) unless TELUCODEC_PROFILE=full is set or a CUDA GPU is present.
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import io
import json
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from telucodec.config import preset as get_preset
from telucodec.fixes import Fixes
from telucodec.paths import RESULTS_DIR, cache_dir

GPU_COMMAND = "bash scripts/gpu_run.sh   # one H100, at most 9 minutes"


@dataclass(frozen=True)
class Profile:
    name: str  # "ci" or "full"
    preset: str  # model/training preset used by the notebooks' live runs
    steps: int  # optimizer steps of one controlled-experiment run
    device: str
    description: str


PROFILES = {
    "ci": dict(preset="ci", steps=200, description="quick CPU profile: stored outputs come from it"),
    "full": dict(preset="full", steps=3000, description="full profile: the GPU model, thousands of steps"),
}


def current_profile_name() -> str:
    name = os.environ.get("TELUCODEC_PROFILE")
    if name:
        if name not in PROFILES:
            raise ValueError(f"TELUCODEC_PROFILE must be one of {', '.join(PROFILES)}, not {name!r}")
        return name
    return "full" if torch.cuda.is_available() else "ci"


def setup(seed: int = 0) -> Profile:
    """Seed everything, pin CPU threads in the ci profile, make plots PNG and quiet known-harmless warnings."""
    name = current_profile_name()
    device = "cuda" if (name == "full" and torch.cuda.is_available()) else "cpu"
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if name == "ci":
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.set_printoptions(precision=4, sci_mode=False)
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import matplotlib

        matplotlib.rcParams.update(
            {
                "figure.dpi": 90,
                "savefig.dpi": 90,
                "figure.figsize": (8, 3.2),
                "axes.grid": True,
                "grid.alpha": 0.3,
                "axes.spines.top": False,
                "axes.spines.right": False,
            }
        )
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:
        pass
    spec = PROFILES[name]
    return Profile(name, spec["preset"], spec["steps"], device, spec["description"])


# ------------------------------------------------------------------------------------------------ data
_CLIPS: dict = {}


def corpus_clips(profile: Profile, data_dir=None):
    """(train, val) lists of float32 clips: the embedded Telugu corpus (or data_dir) at the profile's size."""
    key = (profile.preset, str(data_dir))
    if key not in _CLIPS:
        from telucodec.data.folders import load_dataset, spec_for

        spec = spec_for(profile.preset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CLIPS[key] = (load_dataset(data_dir, spec, "train"), load_dataset(data_dir, spec, "val"))
    return _CLIPS[key]


# ------------------------------------------------------------------------------------------------ cached runs
def run_modules(start: str = "training.loop") -> list:
    """The package's modules a training run can execute: `start` and everything it imports from the package,
    followed transitively (imports inside functions included), read from the syntax trees."""
    import ast

    pkg = Path(__file__).parent

    def source(name):
        path = pkg / f"{name.replace('.', '/')}.py"
        return path if path.exists() else pkg / name.replace(".", "/") / "__init__.py"

    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or not source(name).exists():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(source(name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "telucodec":
                base = node.module[len("telucodec.") :] if "." in node.module else ""
                # `from telucodec.x import y`: x, and y too where y is a module of package x
                todo += [base] if base else []
                todo += [
                    f"{base}.{a.name}".lstrip(".")
                    for a in node.names
                    if source(f"{base}.{a.name}".lstrip(".")).exists()
                ]
    return sorted(seen)


def code_fingerprint(source: str) -> str:
    """A hash of what a module *does*: its syntax tree without docstrings (comments and layout never reach the
    tree). A docstring, comment or formatting edit keeps the fingerprint, so the notebooks' run cache stays warm;
    any change to the code changes it."""
    import ast

    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def _source_hash() -> str:
    h = hashlib.sha256()
    pkg = Path(__file__).parent
    for name in run_modules():
        path = pkg / f"{name.replace('.', '/')}.py"
        path = path if path.exists() else pkg / name.replace(".", "/") / "__init__.py"
        h.update(name.encode() + code_fingerprint(path.read_text()).encode())
    return h.hexdigest()[:16]


def _clips_hash(clips) -> str:
    h = hashlib.sha256()
    for part in clips:
        for c in part:
            h.update(np.ascontiguousarray(c).tobytes())
    return h.hexdigest()[:16]


def run(profile: Profile, fixes: Fixes, clips=None, steps: int | None = None, seed: int = 0, **train_changes):
    """Train (or fetch from the cache) one run of the profile's preset. Deterministic, so a cached run equals a
    fresh one bit for bit; the cache only saves time when several notebooks need the same run.
    `train_changes` override TrainConfig fields (e.g. learning_rate=1e-5, optimizer="adam", amp="bf16")."""
    from dataclasses import replace

    from telucodec.codec.model import Codec
    from telucodec.training.loop import RunResult, fit

    clips = clips if clips is not None else corpus_clips(profile)
    steps = steps or profile.steps
    p = get_preset(profile.preset)
    tcfg = replace(p.train, seed=seed, **train_changes)
    numerics = (os.environ.get("MKL_CBWR"), torch.get_num_threads())
    extra = [] if numerics == ("COMPATIBLE", 1) else [list(numerics)]  # runs outside the CI set-up stay apart
    # The CPU kernels torch dispatches to (AVX512, AVX2, default; ATEN_CPU_CAPABILITY selects them) round
    # differently, so a run trained under one numeric path is never reused under another.
    extra.append(["cpu_capability", torch.backends.cpu.get_cpu_capability()])
    key = hashlib.sha256(
        json.dumps(
            [
                _source_hash(),
                _clips_hash(clips),
                profile.preset,
                profile.device,
                steps,
                fixes.to_dict(),
                tcfg.to_dict(),
                torch.__version__,
            ]
            + extra,
            sort_keys=True,
        ).encode()
    ).hexdigest()[:24]
    path = cache_dir() / "runs" / f"{key}.pt"
    if path.exists():
        try:
            state = torch.load(path, weights_only=True)
            torch.manual_seed(seed)
            model = Codec(p.codec, fixes)
            model.load_state_dict(state["model"])
            return RunResult(
                model=model.to(profile.device),
                history=json.loads(state["history"]),
                epochs=json.loads(state["epochs"]),
                step=steps,
                seconds=float(state["seconds"]),
            )
        except Exception:
            path.unlink(missing_ok=True)
    result = fit(
        profile.preset,
        fixes,
        clips,
        train_config=tcfg,
        steps=steps,
        device=profile.device,
        print_epochs=False,
        progress=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    torch.save(
        {
            "model": result.model.state_dict(),
            "history": json.dumps(result.history),
            "epochs": json.dumps(result.epochs),
            "seconds": result.seconds,
        },
        tmp,
    )
    os.replace(tmp, path)
    return result


def reconstruct(model, wav: np.ndarray, n_q: int | None = None) -> np.ndarray:
    """Run a clip through a model (eval mode, no gradient) and return the output as float32 numpy
    (telucodec.evaluation.scoring.reconstruct, the package's one path)."""
    from telucodec.evaluation.scoring import reconstruct as _reconstruct

    return _reconstruct(model, wav, n_q)


# ------------------------------------------------------------------------------------------------ display
def show_source(obj, contains: str | None = None, context: int = 0):
    """Display the package's own source of a function or class (whole, or only the lines around `contains`)."""
    from IPython.display import Code, display

    src = inspect.getsource(obj)
    if contains:
        lines = src.splitlines()
        keep = [i for i, l in enumerate(lines) if contains in l]
        picked = sorted({j for i in keep for j in range(max(0, i - context), min(len(lines), i + context + 1))})
        src = "\n".join(lines[j] for j in picked)
    display(Code(src, language="python"))


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


MAX_PANELS_PER_ROW = 3  # the book's rule: at most three panels a row, legible at the page's content width


def plot_runs(
    runs: dict, keys=("recon", "vq", "grad_norm_encoder"), epoch_keys=("range_ratio", "snr_db"), title: str = ""
):
    """Training curves (per logged step) and validation diagnostics (per epoch) for several labelled runs."""
    import matplotlib.pyplot as plt

    labels_y = {
        "recon": "recon loss (L1+MSE)",
        "vq": "VQ loss",
        "perceptual": "perceptual loss",
        "grad_norm_encoder": "encoder grad norm",
        "grad_norm_z": "|dL/dz|",
        "output_scale": "output scale",
        "range_ratio": "range ratio (out/in)",
        "snr_db": "SNR (dB)",
        "si_snr_db": "SI-SNR (dB)",
        "mel_distance": "mel distance",
        "codebook_usage": "codebook usage (fraction)",
        "output_peak": "output peak",
        "loss": "total loss",
    }
    n = len(keys) + len(epoch_keys)
    cols = min(n, MAX_PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.7 * cols, 3.0 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, k in zip(axes, keys):
        for label, r in runs.items():
            xs = [h["step"] for h in r.history if h.get(k) is not None]
            ys = [h[k] for h in r.history if h.get(k) is not None]
            ax.plot(xs, ys, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(labels_y.get(k, k))
        if k.startswith("grad") or k in ("vq",):
            ax.set_yscale("log")
    for ax, k in zip(axes[len(keys) :], epoch_keys):
        for label, r in runs.items():
            ax.plot([e["step"] for e in r.epochs], [e[k] for e in r.epochs], marker="o", label=label)
        ax.set_xlabel("step (validation at each epoch end)")
        ax.set_ylabel(labels_y.get(k, k))
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def spectrograms(clips: dict, sample_rate: int = 16000, title: str = ""):
    """Log-magnitude spectrograms side by side (frequency in kHz, time in s, level in dB)."""
    import matplotlib.pyplot as plt

    n = len(clips)
    cols = min(n, MAX_PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.2 * rows), sharey=True, constrained_layout=True, squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    for ax, (label, wav) in zip(axes, clips.items()):
        x = torch.from_numpy(np.asarray(wav, np.float32))
        spec = torch.stft(x, 512, 128, window=torch.hann_window(512), return_complex=True).abs()
        db = 20 * torch.log10(spec + 1e-5).numpy()
        im = ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            vmin=-80,
            vmax=20,
            extent=[0, len(wav) / sample_rate, 0, sample_rate / 2000],
            cmap="magma",
        )
        ax.set_title(label)
        ax.set_xlabel("time (s)")
    for ax in axes[::cols]:
        ax.set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=axes.tolist(), label="level (dB)")
    if title:
        fig.suptitle(title)
    plt.show()


def waveforms(clips: dict, sample_rate: int = 16000, title: str = ""):
    """Waveforms overlaid on one axis (amplitude in full-scale units)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.8))
    for label, wav in clips.items():
        ax.plot(np.arange(len(wav)) / sample_rate, wav, lw=0.6, label=label, alpha=0.85)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude (full scale = 1)")
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    plt.show()


def table(rows: list, columns: list | None = None, floatfmt: str = "{:.2f}"):
    """Display a list of dicts as a Markdown table (numbers rounded for stable stored outputs)."""
    from IPython.display import Markdown, display

    if not rows:
        print("(no rows: nothing committed for this table yet)")
        return
    columns = columns or list(rows[0])
    fmt = lambda v: floatfmt.format(v) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    display(Markdown("\n".join(lines)))


CPU_COMMAND = (
    "python -m telucodec experiments --preset ci --device cpu --amp off --steps 300 --parallel 2 "
    "--eval_clips 8 --extra_data_dir <telugu-cv-dev> --out results/cpu"
)


def gpu_results(name: str = "ablation"):
    """The committed full GPU results (results/gpu/<name>.json), or None with a note when not yet committed."""
    return committed("gpu", name)


def committed(kind: str = "cpu", name: str = "ablation"):
    """Committed ablation results: kind "cpu" (a 2000-step CPU run of the nine configurations) or "gpu"
    (the H100 run). Returns the parsed JSON, or None after printing where they will come from."""
    path = RESULTS_DIR / kind / f"{name}.json"
    if not path.exists():
        what = {"gpu": f"one H100 run of: {GPU_COMMAND}", "cpu": f"a CPU run of: {CPU_COMMAND}"}[kind]
        print(
            f"{kind.upper()} ablation results are not committed yet (expected at results/{kind}/{name}.json).\n"
            f"They come from {what}\nNothing here is extrapolated from another run."
        )
        return None
    return json.loads(path.read_text())


def ablation_rows(results: dict, names=None, kbps: str = "6kbps") -> list:
    """Rows (one per configuration) of the committed ablation at one bitrate, for tb.table."""
    rows = []
    for name in names or results["runs"]:
        run = results["runs"].get(name)
        if run is None:
            continue
        ev = run["evaluation"][kbps]
        rows.append(
            {
                "configuration": name,
                "SNR (dB)": ev["snr_db"],
                "SI-SNR (dB)": ev["si_snr_db"],
                "range ratio": ev["range_ratio"],
                "mel distance": ev["mel_distance"],
                "PESQ-WB": ev.get("pesq_wb") if ev.get("pesq_wb") is not None else float("nan"),
                "STOI": ev.get("stoi") if ev.get("stoi") is not None else float("nan"),
            }
        )
    return rows


ABLATION3000 = "cpu/ablation3000"


def longer_runs(fix: str, metrics=("snr_db", "si_snr_db", "robust_range_ratio", "mel_distance", "pesq_wb", "stoi")):
    """The "longer runs" cell of chapters 04-10: the committed 3000-step, multi-seed ablation
    (results/cpu/ablation3000) for `none`, `all` and `all` minus `fix`, each metric as mean [min, max] over seeds,
    then the effect of leaving the fix out of `all` (and of adding it alone to `none`, once those runs are
    committed) with the verdict of telucodec.evaluation.ablation.compare: a difference counts only when the seed ranges do
    not overlap. Returns the runs it read."""
    from telucodec.evaluation.ablation import effect_rows, load_runs, summary_rows

    folder = RESULTS_DIR / ABLATION3000
    nine, alone = load_runs(folder, "nine"), load_runs(folder, "alone")
    if not nine:
        print(f"the 3000-step ablation is not committed yet ({folder})")
        return {}
    steps = sorted({r["steps"] for seeds in nine.values() for r in seeds.values()})
    print(
        f"3000-step ablation ({', '.join(map(str, steps))} steps per run), 6 kbps, held-out clips; "
        f"mean [min, max] over seeds"
    )
    table(summary_rows(nine, ["none", "all", f"all-{fix}"], metrics=metrics))
    runs = {**nine, **alone}
    pairs = [(f"all without {fix}, against all", f"all-{fix}", "all")]
    if fix in alone:
        pairs.append((f"{fix} alone, against none", fix, "none"))
    table(effect_rows(runs, pairs, metrics=[m for m in metrics if m not in ("range_ratio", "snr_db")]))
    return runs


def chain(k: int) -> Fixes:
    """The book's running configuration after chapter k of the fixes: the first k fixes on, in the story's order
    (chain(0) = Fixes.none(), chain(7) = Fixes.all())."""
    from telucodec.fixes import SEVEN

    return Fixes(**{name: i < k for i, name in enumerate(SEVEN)})
