"""Write results/pretrained/MODEL_CARD.md from the measured files (no number typed by hand).

    python scripts/model_card.py results/pretrained

Reads the training record (training.json, scripts/voices_record.py), the yardstick on the test list's unseen
speakers (results/yardstick/shipped-test.json) and on the Telugu training speaker's held-out files
(shipped-dev.json), the first shipped codec's yardstick on the same test clips (one-speaker-test.json), the
tune-list curve (results/voices/tune_curve.json) and the speed benchmark (speed/speed.json).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOALS = ("pesq_wb", "stoi", "si_snr_db", "dnsmos_ovrl")
LABEL = {"pesq_wb": "PESQ-WB", "stoi": "STOI", "si_snr_db": "SI-SNR", "dnsmos_ovrl": "DNSMOS OVRL"}


def _read(path):
    path = ROOT / path
    return json.loads(path.read_text()) if path.exists() else None


def _interval(d):
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def first_gap(first: dict) -> float:
    """The first shipped codec's PESQ-WB gap to equal-bits Opus, as recorded (one-speaker-test.json)."""
    from telucodec.evaluation.yardstick_report import compare

    eq = f"Opus {first['equal_bits_opus_target']:g} kbps"
    ours, theirs = (first["systems"][s]["as recorded"]["per_clip"] for s in ("TeluCodec 6 kbps", eq))
    return compare(ours, theirs)["pesq_wb"]["mean"]


def speed_lines(speed: dict) -> list:
    """The speed section: bench speed's rows, EnCodec's architecture timed in the same run."""
    return [
        "## Speed",
        "",
        f"`python -m telucodec bench speed` ({speed['audio_seconds']:g} s of audio, median of "
        f"{speed['repeats']} runs; machine {speed['machine']['cpu']}), EnCodec's architecture timed in the same run:",
        "",
        "| model | device | encode × real time | decode × real time | encode+decode × real time |",
        "|---|---|---:|---:|---:|",
        *(
            f"| {r['model']} | {r['device']} | {r['encode_rtf']:.1f} | {r['decode_rtf']:.1f} | {r['round_trip_rtf']:.1f} |"
            for r in speed["rows"]
        ),
    ]


def goals(test: dict, first_gap_pesq: float) -> list:
    """The issue's floor and moonshot, level by level, from paired clip-level intervals."""
    from telucodec.evaluation.yardstick_report import compare

    systems = test["systems"]
    eq = f"Opus {test['equal_bits_opus_target']:g} kbps"
    lines = [
        "| level | 6 kbps vs Opus 6 kbps: better / worse (goal metrics) | PESQ-WB gap to equal bits "
        f"({eq}) | 6 kbps vs Opus 8 kbps (equal bits without entropy coding) | 3 kbps vs Opus 6 kbps |",
        "|---|---|---:|---|---|",
    ]
    floor_met, moon6, moon3 = True, True, True
    fixed = systems["TeluCodec 6 kbps"]["as recorded"].get("kbps_fixed", float("nan"))
    for level in test["levels"]:
        ours6, ours3 = systems["TeluCodec 6 kbps"].get(level), systems["TeluCodec 3 kbps"].get(level)
        o6, o8, oeq = (
            systems.get(f"Opus {t:g} kbps", {}).get(level) for t in (6.0, 8.0, test["equal_bits_opus_target"])
        )
        if not (ours6 and o6):
            continue

        def words(ours, theirs):
            c = compare(ours["per_clip"], theirs["per_clip"])
            better = [LABEL[k] for k in GOALS if c[k]["verdict"] == "better"]
            worse = [LABEL[k] for k in GOALS if c[k]["verdict"] == "worse"]
            return better, worse, c

        b6, w6, _ = words(ours6, o6)
        gap = compare(ours6["per_clip"], oeq["per_clip"])["pesq_wb"] if oeq else None
        b8, w8, _ = words(ours6, o8) if o8 else ([], [], None)
        b3, w3, _ = words(ours3, o6) if ours3 else ([], [], None)
        eq_words = words(ours6, oeq) if oeq else ([], GOALS, None)
        moon6 &= len(eq_words[0]) == len(GOALS)
        moon3 &= len(b3) == len(GOALS)
        if level in ("as recorded", "-35 LUFS", "-15 LUFS"):
            floor_met &= not w6 and len(b6) >= 2 and gap is not None and gap["mean"] >= first_gap_pesq / 2
        say = lambda b, w: f"better: {', '.join(b) or 'none'}; worse: {', '.join(w) or 'none'}"  # noqa: E731
        lines.append(
            f"| {level} | {say(b6, w6)} | {_interval(gap) if gap else '-'} | {say(b8, w8) if o8 else '-'} | "
            f"{say(b3, w3) if ours3 else '-'} |"
        )
    lines += [
        "",
        "- The floor (at -35 LUFS, -15 LUFS and as recorded: worse than Opus 6 kbps on none of the four goal "
        "metrics beyond the spread, better on at least two, and a PESQ-WB gap to equal-bits Opus at most half of "
        f"the first shipped codec's {first_gap_pesq:+.2f}): **{'met' if floor_met else 'not met'}**.",
        "- The first goal (6 kbps better than Opus at equal bits on all four, at every level): "
        f"**{'met' if moon6 else 'not met'}**, with equal bits counted from the entropy-coded files. Without entropy "
        f"coding the same codes spend {fixed:.2f} kbit/s, equal bits would be Opus 8 kbps, and the fourth column "
        "compares with it.",
        f"- The second goal (3 kbps better than Opus 6 kbps on all four, at every level): **{'met' if moon3 else 'not met'}**.",
        "",
        'Every verdict is a paired clip-level bootstrap, 95 %; "better" or "worse" only when the interval excludes 0. '
        "Opus at 6 and 8 kbps codes narrowband (the passband column): part of what PESQ-WB, STOI and DNSMOS reward "
        "here is the band above 4 kHz that this codec keeps and Opus drops at these rates.",
    ]
    return lines


def against_first(test: dict, first: dict) -> list:
    """The shipped codec against the first shipped one on the same test clips, level by level."""
    from telucodec.evaluation.yardstick_report import compare

    lines = ["| level | rate | " + " | ".join(LABEL[k] for k in GOALS) + " |", "|---|---|" + "---:|" * len(GOALS)]
    for level in test["levels"]:
        for rate in ("6", "3"):
            name = f"TeluCodec {rate} kbps"
            new, old = test["systems"][name].get(level), first["systems"].get(name, {}).get(level)
            if new and old:
                c = compare(new["per_clip"], old["per_clip"])
                lines.append(
                    f"| {level} | {rate} kbps | "
                    + " | ".join(f"{_interval(c[k])} {c[k]['verdict']}" for k in GOALS)
                    + " |"
                )
    return lines


def algorithmic_delay(weights) -> str:
    """The delay measured by telucodec.coding.receptive_field, in words."""
    import telucodec
    from telucodec.coding import receptive_field

    ctx = receptive_field.context(telucodec.load(weights))
    ms = lambda samples: samples / 16  # noqa: E731  (16 samples per ms at 16 kHz)
    return (
        f"its algorithmic delay is {ms(ctx.algorithmic_delay_samples):.0f} ms (a 20 ms frame, "
        f"{ms(ctx.encoder_right):.1f} ms of encoder look-ahead and {ctx.decoder_right} frames, "
        f"{ms(ctx.decoder_right * ctx.hop_length):.0f} ms, of decoder look-ahead; measured by "
        "`telucodec.coding.receptive_field`), against Opus's 26.5 ms"
    )


def main(folder):
    from telucodec.evaluation import yardstick_report

    folder = Path(folder)
    train = json.loads((folder / "training.json").read_text())
    test, dev, first = (
        _read(f"results/yardstick/{n}.json") for n in ("shipped-test", "shipped-dev", "one-speaker-test")
    )
    speed = _read(f"{folder.relative_to(ROOT) if folder.is_absolute() else folder}/speed/speed.json")
    curve = _read("results/voices/tune_curve.json")
    env, ent = train["envelope"], train["entropy"]
    tuned = {p["checkpoint"]: p["6kbps"]["pesq_wb"] for p in curve or []}
    mb = train["file_bytes"] / 1e6
    delay = algorithmic_delay(folder / "telucodec.safetensors")
    L = [
        "# Model card: TeluCodec, the shipped codec (thousand voices)",
        "",
        "`telucodec.safetensors` is what `telucodec.load()` and `python -m telucodec encode|decode|demo` use when no "
        f"checkpoint is given. {train['architecture']}; {train['parameters'] / 1e6:.2f} M parameters; 16 kHz, 50 "
        "frames/s; 1.5, 3 and 6 kbit/s nominal (3, 6 or 12 codebooks of 10 bits). At 1.5, 3 and 6 kbit/s the last "
        + ", ".join(f"{k} of the {n}" for n, k in env["split"])
        + " codebooks are envelope codebooks (`telucodec.codec.envelope`: the 21 mel-band levels above 1 kHz of each "
        "20 ms frame, imposed on the decoder's output). The `.tlc` files it writes are entropy-coded (format "
        f"version 2, a static model of {ent['contexts']} context classes, id `{ent['id']}`), so it spends fewer bits "
        f"than its nominal rate. The file ({mb:.1f} MB) stores the weights in half precision "
        f"(`export_safetensors(compact=True)`). It is not causal: {delay}.",
        "",
    ]
    if test:
        L += [
            "## On voices it never heard (read this first)",
            "",
            f"The yardstick (`telucodec.evaluation.yardstick`, `results/yardstick/shipped-test.json`): {test['clips']} "
            "clips, the first 8 s of one clip from each of the test list's speakers (`results/speakers/lists.tsv`: 20 "
            "from each corpus folder, many languages), whom nothing here trained or was tuned on; bits counted from "
            "the `.tlc` files and Opus's raw packets.",
            "",
            yardstick_report.markdown(test),
            "",
            "### The goals, level by level",
            "",
            *goals(test, first_gap(first)),
            "",
        ]
    if test and first:
        L += [
            "### Against the first shipped codec (one speaker), on the same clips",
            "",
            "Paired differences, this codec minus the first (`results/yardstick/one-speaker-test.json`), positive = "
            "this one better:",
            "",
            *against_first(test, first),
            "",
        ]
    if dev:
        L += [
            "## The Telugu training speaker (secondary)",
            "",
            "The held-out files of the one real Telugu speaker whose other files are in the train list "
            "(`results/yardstick/shipped-dev.json`, the dev list). A voice it trained on: this flatters it.",
            "",
            yardstick_report.markdown(dev),
            "",
        ]
    L += [
        "## How it was trained",
        "",
        f"- Recipe: {train['recipe']}.",
        f"- Command: `{train['command']}`",
        f"- Steps: {train['steps']} ({train['schedule_note']}); {train['wall_minutes'] / 60:.1f} h of training wall "
        f"time, {train['cpu_seconds'] / 3600:.1f} CPU-hours of process time, on {train['machine']} "
        f"({train['threads']}).",
        f"- Envelope codebooks, fitted after training on the train list ({env['vectors'] // 3} frames of 20 ms, each "
        f"at 3 loudness levels; {env['fit_seconds']:.0f} s): `{env['command']}`",
        f"- Entropy model, fitted on the train list's codes ({ent['frames']['12']} frames; {ent['fit_seconds']:.0f} s; "
        "bits per code on its own fit data: "
        + ", ".join(f"{b:.2f} at {n} codebooks" for n, b in ent["fit_bits_per_code"].items())
        + f"): `{ent['command']}`",
        "- Chosen on the tune list only (30 speakers; `results/voices/README.md`): the run's final step, and "
        "envelope codebooks on this run rather than the fine-tuned conv codec (tune-list PESQ-WB "
        f"{tuned['results/pretrained/telucodec.safetensors']:.2f} against "
        f"{tuned['results/voices/candidates/conv-finetune-4000-envelope.safetensors']:.2f} at 6 kbps).",
        "",
        "## Data and licences",
        "",
        f"Data: {train['data_note']}.",
        "",
        "| corpus folder | clips | speakers | minutes | languages | licence |",
        "|---|---:|---:|---:|---|---|",
    ]
    L += [
        f"| `{name}` | {d['clips']} | {d['speakers']} | {d['minutes']:.1f} | {', '.join(d['languages'][:8])}"
        f"{' …' if len(d['languages']) > 8 else ''} | {', '.join(d['licences'])} |"
        for name, d in train["data"].items()
    ]
    L += [
        "",
        "- Mozilla Common Voice 6.1 (CC0-1.0). Common Voice asks users not to try to identify speakers.",
        '- LibriSpeech (CC BY 4.0): V. Panayotov, G. Chen, D. Povey and S. Khudanpur, "LibriSpeech: an ASR corpus '
        'based on public domain audio books", ICASSP 2015. VCTK (CC BY 4.0): J. Yamagishi, C. Veaux and K. '
        "MacDonald, CSTR VCTK Corpus, version 0.92, University of Edinburgh, 2019. This model was trained on them; "
        "the attribution travels with it.",
        "- The Telugu speaker (`telugu-cv-dev`, Common Voice layout, CC0-1.0): one anonymous speaker, from the public "
        "repository MagicalCoder-12/index-tts (`tests/te/`).",
        "- Only that one speaker is Telugu: no other Telugu speech with a clear licence was available. The codec "
        "codes sound, not language, and the test list's languages are as varied as the train list's.",
        "",
    ]
    if curve:
        pts = [p for p in curve if p["checkpoint"].startswith("checkpoints/voices/")]
        L += [
            "## Quality against CPU-hours (tune list, 30 unseen speakers, 6 kbps, the codec as trained)",
            "",
            "`results/voices/tune_curve.json` (`scripts/tune_quality.py`); the envelope codebooks are fitted once, "
            "after training, so these points are the codec without them.",
            "",
            "| step | CPU-hours | PESQ-WB | STOI | SI-SNR (dB) | DNSMOS OVRL |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        L += [
            f"| {p['step']} | {p['cpu_seconds'] / 3600:.2f} | {p['6kbps']['pesq_wb']:.2f} | {p['6kbps']['stoi']:.3f} | "
            f"{p['6kbps']['si_snr_db']:.1f} | {p['6kbps'].get('dnsmos_ovrl', float('nan')):.2f} |"
            for p in pts
        ]
        L += [""]
    if speed:
        L += speed_lines(speed) + [""]
    L += [
        "## Limits",
        "",
        "- Not causal (above). The first shipped codec's convolutional decoder looked 7 frames ahead (198 ms in "
        "all); this one's stack of ConvNeXt blocks at frame rate looks further. Not for a live call.",
        "- Trained on read speech: no music, noise, reverberant rooms or overlapping talkers were measured.",
        "- The envelope codebooks code absolute band levels, fitted at three loudness levels; the tables above "
        "give its quality from -35 to -15 LUFS.",
        "",
    ]
    (folder / "MODEL_CARD.md").write_text("\n".join(L))
    print(f"wrote {folder / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/pretrained").resolve())
