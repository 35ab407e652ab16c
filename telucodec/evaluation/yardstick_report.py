"""Reading a yardstick run: paired verdicts against Opus, one result merged from runs at different levels, and
the Markdown tables (bits spent, passband, causality and every metric at each level, then the verdicts).

A claim needs a paired clip-level bootstrap interval that excludes zero
(telucodec.evaluation.scoring.paired_difference); otherwise "no measurable difference".
"""

from __future__ import annotations

from telucodec.evaluation.yardstick import GOAL_METRICS, REPORTED_METRICS

__all__ = ["compare", "merge", "verdicts", "markdown"]


def compare(ours: list, theirs: list, metrics=GOAL_METRICS) -> dict:
    """Paired clip-level bootstrap 95 % intervals of ours minus theirs (signed so that positive = ours better),
    per metric, with a verdict word: "better", "worse" or "no measurable difference"."""
    from telucodec.evaluation.scoring import paired_difference

    out = {}
    for k in metrics:
        d = paired_difference(ours, theirs, k)
        d["verdict"] = "better" if d["low"] > 0 else "worse" if d["high"] < 0 else "no measurable difference"
        out[k] = d
    return out


def merge(parts: list) -> dict:
    """One result from runs of the same clips at different levels (run() twice, in two processes, say): the
    systems' levels side by side, the equal-bits target and passbands from the part scored as recorded."""
    first = next((p for p in parts if "as recorded" in p["levels"]), parts[0])
    out = {**first, "systems": {}, "levels": [], "passband_hz": dict(first["passband_hz"])}
    for p in parts:
        if p["clips"] != first["clips"] or p["application"] != first["application"]:
            raise ValueError("merge() takes runs of the same clips with the same Opus application")
        out["levels"] += [v for v in p["levels"] if v not in out["levels"]]
        for system, by_level in p["systems"].items():
            out["systems"].setdefault(system, {}).update(by_level)
        out["others"] = list(dict.fromkeys(out.get("others", []) + p.get("others", [])))
    return out


def verdicts(result: dict, ours: str = "TeluCodec 6 kbps") -> dict:
    """Our system against Opus 6 kbps and Opus at equal bits, at every level both were scored at."""
    eq = f"Opus {(result['equal_bits_opus_target'] or 8.0):g} kbps"
    out = {}
    for other in dict.fromkeys(("Opus 6 kbps", eq, *result.get("others", ()))):
        for level, entry in result["systems"][ours].items():
            theirs = result["systems"].get(other, {}).get(level)
            if theirs is not None:
                out[f"{ours} vs {other}, {level}"] = compare(entry["per_clip"], theirs["per_clip"])
    return out


def markdown(result: dict) -> str:
    """The tables of a run: one per level (bits spent, passband, causal, every metric), then the verdicts."""
    causal = {"TeluCodec": "no (a look-ahead: telucodec.coding.streaming)", "Opus": "yes (26.5 ms algorithmic delay)"}
    eq = result["equal_bits_opus_target"]
    equal = (
        f"Opus {eq:g} kbps (the lowest target spending at least 95 %)"
        if eq is not None
        else "not measured in this run (it is set as recorded; Opus 8 kbps is scored)"
    )
    lines = [
        f"{result['clips']} clips; Opus application {result['application']}; equal bits to TeluCodec 6 kbps: {equal}",
        "",
    ]
    cols = GOAL_METRICS + REPORTED_METRICS
    for level in result["levels"]:
        lines += [
            f"**{level}**",
            "",
            "| system | kbit/s spent | passband | causal | " + " | ".join(cols) + " |",
            "|---|---:|---:|---|" + "---:|" * len(cols),
        ]
        for system, by_level in result["systems"].items():
            if level not in by_level:
                continue
            e = by_level[level]
            band = result["passband_hz"].get(system)
            vals = " | ".join(
                "" if k not in e["mean"] else f"{e['mean'][k]:.3f}" if k == "stoi" else f"{e['mean'][k]:.2f}"
                for k in cols
            )
            lines.append(
                f"| {system} | {e['kbps']:.2f} | {band / 1000:.2f} kHz | {causal.get(system.split()[0], causal['TeluCodec'])} | "
                f"{vals} |"
                if band
                else f"| {system} | {e['kbps']:.2f} | | | {vals} |"
            )
        lines.append("")
    lines += ["Paired clip-level bootstrap, 95 % (positive: TeluCodec better; mel distance: lower is better):", ""]
    for name, comp in verdicts(result).items():
        parts = [f"{k} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {d['verdict']}" for k, d in comp.items()]
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
