"""The GPU script's code path, tested on CPU before it ever reaches a GPU (`experiments --dry-run`)."""

import json

import pytest

from telucodec.coding.inference import load
from telucodec.training import experiments


def test_dry_run_writes_metrics_samples_and_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "gpu"
    code = experiments.main(
        [
            "--dry-run",
            "--steps",
            "2",
            "--runs",
            "none,all",
            "--eval_clips",
            "1",
            "--probe_steps",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "ablation.json").read_text())
    assert set(summary["runs"]) == {"none", "all"} and not summary["failed"]
    for name, run in summary["runs"].items():
        assert run["steps"] == 2 and run["steps_per_s"] > 0
        assert {"1.5kbps", "3kbps", "6kbps"} <= set(run["evaluation"])
        assert set(run["evaluation"]["6kbps"]) >= {"snr_db", "si_snr_db", "range_ratio", "mel_distance"}
    assert summary["precision_probe"]["off"]["step_s"] > 0
    assert (out / "ablation_curves.png").stat().st_size > 1000
    assert list((out / "runs" / "all").glob("sample0_6kbps.*"))
    model = load(out / "telucodec.safetensors")
    assert model.codec.fixes.enabled() == [
        "codebook_loss",
        "per_step_ste",
        "output_scale",
        "average_vq_loss",
        "unclamped_losses",
        "fp32_perceptual",
        "reweighted_losses",
    ]


def test_working_recipe_ablation_dry_run_records_each_runs_ingredients(tmp_path):
    from telucodec.training.recipes import WORKING

    out = tmp_path / "recipe"  # one run without k-means (the costly part of a start): the recipe's code path
    code = experiments.main(
        [
            "--dry-run",
            "--recipe",
            "working",
            "--steps",
            "2",
            "--runs",
            "working-kmeans_init",
            "--eval_clips",
            "1",
            "--probe_steps",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["recipe"] == "working" and not summary["failed"]
    run = json.loads((out / "runs" / "working-kmeans_init" / "result.json").read_text())
    assert run["recipe"] == "working" and run["ingredients"] == [i for i in WORKING if i != "kmeans_init"]
    assert run["steps"] == 2 and run["enabled"] == [
        "codebook_loss",
        "per_step_ste",
        "output_scale",
        "average_vq_loss",
        "unclamped_losses",
        "fp32_perceptual",
        "reweighted_losses",
    ]
    assert run["audio_s_per_s"] > 0 and {"1.5kbps", "3kbps", "6kbps"} <= set(run["evaluation"])
    with pytest.raises(ValueError, match="unknown run"):
        experiments.main(["--dry-run", "--recipe", "working", "--runs", "working-balance", "--out", str(out)])
