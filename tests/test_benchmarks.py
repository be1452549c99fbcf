"""The benchmark scripts' short modes run (CI runs the ablation's short mode here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
