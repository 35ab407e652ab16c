"""Reading a yardstick run: paired verdicts against Opus, one result merged from runs at different levels, and
the Markdown tables (bits spent, passband, causality and every metric at each level, then the verdicts).

A claim needs a paired clip-level bootstrap interval that excludes zero
(telucodec.evaluation.scoring.paired_difference); otherwise "no measurable difference".
"""

from __future__ import annotations

from telucodec.evaluation.yardstick import GOAL_METRICS, REPORTED_METRICS

__all__ = ["compare", "merge", "verdicts", "markdown", "equal_bits_without_entropy_coding"]


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


def equal_bits_without_entropy_coding(result: dict, ours: str = "TeluCodec 6 kbps") -> str | None:
    """The Opus system at equal bits to our files *without* entropy coding (version 1), when ours are entropy-coded
    and that target differs: the comparison a reader of nominal rates would make."""
    from telucodec.evaluation.yardstick import equal_bits_target

    entry = result["systems"].get(ours, {}).get("as recorded")
    if not entry or "kbps_fixed" not in entry:
        return None
    spent = {
        float(s.split()[1]): by_level["as recorded"]["kbps"]
        for s, by_level in result["systems"].items()
        if s.startswith("Opus ") and "as recorded" in by_level
    }
    target = equal_bits_target(entry["kbps_fixed"], spent)
    return None if target == result["equal_bits_opus_target"] else f"Opus {target:g} kbps"


def verdicts(result: dict, ours: str = "TeluCodec 6 kbps") -> dict:
    """Our system against Opus 6 kbps and Opus at equal bits (and, for entropy-coded files, at equal bits
    without entropy coding), at every level both were scored at."""
    eq = f"Opus {(result['equal_bits_opus_target'] or 8.0):g} kbps"
    fixed = equal_bits_without_entropy_coding(result, ours)
    out = {}
    for other in dict.fromkeys(("Opus 6 kbps", eq, *([fixed] if fixed else []), *result.get("others", ()))):
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
    fixed = equal_bits_without_entropy_coding(result)
    if fixed:
        equal += f"; without entropy coding it would be {fixed}, which is compared too"
    lines = [
        f"{result['clips']} clips; Opus application {result['application']}; equal bits to TeluCodec 6 kbps: {equal}",
        "",
    ]
    entropy_coded = any(
        e.get("kbps_fixed", e["kbps"]) != e["kbps"]
        for by_level in result["systems"].values()
        for e in by_level.values()
    )
    if entropy_coded:
        lines += [
            "TeluCodec's files are entropy-coded (.tlc version 2); in brackets, the same codes' bits without entropy "
            "coding (version 1).",
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
            spent = f"{e['kbps']:.2f}" + (
                f" ({e['kbps_fixed']:.2f})" if e.get("kbps_fixed", e["kbps"]) != e["kbps"] else ""
            )
            vals = " | ".join(
                "" if k not in e["mean"] else f"{e['mean'][k]:.3f}" if k == "stoi" else f"{e['mean'][k]:.2f}"
                for k in cols
            )
            lines.append(
                f"| {system} | {spent} | {band / 1000:.2f} kHz | {causal.get(system.split()[0], causal['TeluCodec'])} | "
                f"{vals} |"
                if band
                else f"| {system} | {spent} | | | {vals} |"
            )
        lines.append("")
    lines += ["Paired clip-level bootstrap, 95 % (positive: TeluCodec better; mel distance: lower is better):", ""]
    for name, comp in verdicts(result).items():
        parts = [f"{k} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {d['verdict']}" for k, d in comp.items()]
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
