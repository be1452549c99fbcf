"""The benchmark scripts' short modes run (CI runs the ablation's short mode here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_short_mode(tmp_path, one_thread):
    ablation = load("ablation")
    out = tmp_path / "ablation.json"
    assert ablation.main(["--short", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"full", "global_only", "no_kl", "sentence_transformer"}
    for variant, runs in report["runs"].items():
        assert len(runs) == 1 and 0 < runs[0]["rsum"] <= 600, variant
        assert 0.0 <= runs[0]["role_swap_acc"] <= 1.0
    assert "| full |" in report["table"]


def test_extract_benchmark_quick_mode(tmp_path, one_thread):
    extract = load("extract")
    out = tmp_path / "extract.json"
    assert extract.main(["--quick", "--max-frames", "2", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["end_to_end"]["frames"] == report["model"]["before"]["frames"] == 4 * 2
    assert report["end_to_end_over_model"] > 0 and report["goal"] == 0.7
    assert "--quick" in report["command"]


def test_fusion_weights_study(tiny_prepared, tmp_path, one_thread):
    from mcsan.config import Config, apply_overrides
    from mcsan.train import train

    root, prepared = tiny_prepared
    config = apply_overrides(Config(), ["train.epochs=1", "train.batch_size=32",
                                        "model.embed_dim=16", "model.hidden_dim=16",
                                        "model.word_dim=16", "data.max_frames=8"])
    config.data.root, config.data.prepared = str(root), str(prepared)
    config.train.out_dir = str(tmp_path / "run")
    result = train(config, progress=False)

    fusion = load("fusion_weights")
    out = tmp_path / "fusion.json"
    assert fusion.main([str(result.best_dir), "--grid", "0", "1", "--no-progress",
                        "--out", str(out)]) == 0
    study = json.loads(out.read_text())["studies"][0]
    # the trained weights (all 1) score what validation scored during training
    assert study["trained"]["val"] == result.best_rsum
    all_ones = [row for row in study["grid"] if set(row["weights"].values()) == {1.0}]
    assert all_ones[0]["val"] == study["trained"]["val"]
    assert study["best_on_val"]["val"] >= study["trained"]["val"]
    assert len(study["grid"]) == 2**3  # global fixed at 1, three levels on the grid {0, 1}
    assert set(study["drop_level"]) == {"global", "entity", "action", "relationship"}


def ablation_report(path: Path, runs: dict[str, list[int]], synth_settings: list[str]) -> Path:
    """A result file as ablation.py writes it, with made-up figures per (variant, seed)."""
    rows = {
        variant: [
            {"seed": seed, "rsum": 500.0 + 10 * seed, "t2v_r1": 70.0, "t2v_r5": 95.0,
             "v2t_r1": 80.0, "role_swap_acc": 0.7, "val_rsum": 510.0 + seed}
            for seed in seeds
        ]
        for variant, seeds in runs.items()
    }
    report = {"command": "x", "preset": "default", "synth_settings": synth_settings,
              "epochs": 10, "seconds": 1.0, "runs": rows}
    path.write_text(json.dumps(report))
    return path


def test_ablation_merge_combines_files_and_refuses_a_run_twice(tmp_path):
    ablation = load("ablation")
    first = ablation_report(tmp_path / "a.json", {"full": [0, 1]}, [])
    second = ablation_report(tmp_path / "b.json", {"full": [2], "no_kl": [0]}, [])
    out = tmp_path / "merged.json"
    assert ablation.main(["--merge", str(first), str(second), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["summary"]["full"]["seeds"] == [0, 1, 2]
    assert merged["summary"]["full"]["rsum"] == [510.0, 10.0]
    assert merged["summary"]["no_kl"]["seeds"] == [0]

    with pytest.raises(SystemExit, match=r"a.json: full seed 0 is already in .*merged.json"):
        ablation.main(["--merge", str(out), str(first), "--out", str(tmp_path / "again.json")])
    harder = ablation_report(tmp_path / "c.json", {"full": [5]}, ["role_swap_fraction=0.6"])
    with pytest.raises(SystemExit, match="synth settings"):
        ablation.main(["--merge", str(first), str(harder), "--out", str(tmp_path / "x.json")])
