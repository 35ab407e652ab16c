"""The multi-seed ablation reader: a difference is a verdict only when the seed ranges do not overlap."""

import json

import pytest

from telucodec.evaluation.ablation import compare, effect_rows, load_runs, summarise, summary_rows


def _write(tmp_path, name, seed, kind="nine", **metrics):
    folder = tmp_path / f"seed{seed}-{kind}"
    folder.mkdir(exist_ok=True)
    rec = {"name": name, "seed": seed, "evaluation": {"6kbps": metrics}}
    (folder / f"{name}.json").write_text(json.dumps(rec))


@pytest.fixture
def runs(tmp_path):
    for seed, (a, b, c) in enumerate([(1.0, 3.0, 1.2), (2.0, 4.0, 2.5), (1.5, 3.5, 0.9)]):
        _write(tmp_path, "all", seed, si_snr_db=a, mel_distance=0.5 - a / 10, robust_range_ratio=0.8)
        _write(tmp_path, "all-x", seed, si_snr_db=b, mel_distance=0.5 - b / 10, robust_range_ratio=1.5)
        _write(tmp_path, "all-y", seed, si_snr_db=c, mel_distance=0.5 - c / 10, robust_range_ratio=0.9)
    _write(tmp_path, "x", 0, kind="alone", si_snr_db=9.0, mel_distance=0.1, robust_range_ratio=1.0)
    return tmp_path


def test_load_runs_reads_each_family_of_seed_folders(runs):
    nine = load_runs(runs, "nine")
    assert set(nine) == {"all", "all-x", "all-y"} and sorted(nine["all"]) == [0, 1, 2]
    assert set(load_runs(runs, "alone")) == {"x"} and set(load_runs(runs)) == {"all", "all-x", "all-y", "x"}


def test_summary_is_mean_and_range_over_seeds(runs):
    s = summarise(load_runs(runs, "nine"), "all", "si_snr_db")
    assert s["mean"] == pytest.approx(1.5) and (s["min"], s["max"]) == (1.0, 2.0) and s["seeds"] == [0, 1, 2]
    row = summary_rows(load_runs(runs, "nine"), ["all", "missing"], metrics=("si_snr_db",))
    assert row == [{"configuration": "all", "seeds": 3, "SI-SNR (dB)": "1.50 [1.00, 2.00]"}]


def test_only_ranges_that_do_not_overlap_make_a_verdict(runs):
    r = load_runs(runs, "nine")
    assert compare(r, "all-x", "all", "si_snr_db")["verdict"] == "better"  # 3..4 against 1..2
    assert compare(r, "all", "all-x", "si_snr_db")["verdict"] == "worse"
    assert compare(r, "all-x", "all", "mel_distance")["verdict"] == "better"  # lower is better
    y = compare(r, "all-y", "all", "si_snr_db")  # 0.9..2.5 overlaps 1..2
    assert y["verdict"] == "no measurable effect" and y["difference"] == pytest.approx(0.0333, abs=1e-3)
    # a range ratio is better the closer it is to 1: 1.5 (|log| 0.41) is worse than 0.8 (|log| 0.22)
    assert compare(r, "all-x", "all", "robust_range_ratio")["verdict"] == "worse"
    everything = load_runs(runs)
    assert compare(everything, "x", "all", "si_snr_db")["verdict"] == "better (one seed)"  # 9 beyond 1..2 + 1
    assert compare(everything, "x", "all", "robust_range_ratio")["verdict"] == "better (one seed)"
    assert compare(everything, "all", "x", "si_snr_db")["verdict"] == "one seed only: no verdict"
    _write(runs, "y", 0, kind="alone", si_snr_db=2.5, mel_distance=0.25, robust_range_ratio=1.0)  # 2.5: outside
    assert (
        compare(load_runs(runs), "y", "all", "si_snr_db")["verdict"] == "no measurable effect (one seed)"
    )  # 1..2, not 1 beyond


def test_effect_rows_print_the_difference_and_its_verdict(runs):
    rows = effect_rows(load_runs(runs, "nine"), [("without y", "all-y", "all")], metrics=("si_snr_db",))
    assert rows == [{"comparison": "without y", "SI-SNR (dB)": "+0.03 (n.s.)"}]
