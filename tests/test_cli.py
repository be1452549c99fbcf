"""The command line end to end on tiny data: synth → info → prepare → train → evaluate → demo."""

from __future__ import annotations

import json

import torch

from mcsan.cli import main


def test_pipeline_through_the_command_line(tmp_path, capsys, one_thread):
    data, prepared, run = tmp_path / "data", tmp_path / "prepared", tmp_path / "run"
    assert main(["synth", str(data), "--size", "tiny", "--set", "num_videos=60"]) == 0
    assert main(["info", str(data)]) == 0
    assert "hgr layout" in capsys.readouterr().out
    assert main(["prepare", str(data), "--out", str(prepared), "--set", "vocab.top_k.entity=5"]) == 0
    vocab = json.loads((prepared / "vocab.json").read_text())
    assert len(vocab["attributes"]["entity"]["labels"]) == 5
    overrides = [f"data.root={data}", f"data.prepared={prepared}", f"train.out_dir={run}",
                 "train.epochs=1", "train.batch_size=16", "model.embed_dim=16",
                 "model.hidden_dim=16", "model.word_dim=8"]
    assert main(["train", *overrides]) == 0
    out = tmp_path / "results.json"
    torch.set_num_threads(2)  # the fixture restores its own count afterwards
    assert main(["evaluate", str(run / "best"), "--split", "test", "--out", str(out),
                 "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    printed = capsys.readouterr().out
    assert "fused" in printed and "rsum" in printed and "attribute mAP" in printed
    results = json.loads(out.read_text())
    assert results["split"] == "test" and results["protocol"] == "all-captions"
    assert set(results["levels"]) == {"global", "entity", "action", "relationship"}
    assert set(results["attributes"]) == {"entity", "action", "relationship"}
    fused = results["fused"]
    assert fused["num_videos"] == results["videos"] and 0 <= fused["t2v_r1"] <= fused["t2v_r5"]
    assert abs(fused["rsum"] - sum(fused[f"{d}_r{k}"] for d in ("t2v", "v2t")
                                   for k in (1, 5, 10))) < 1e-6

    # The trained model on another dataset: its captions parsed with the model's vocabularies.
    other, other_prepared = tmp_path / "other", tmp_path / "other_prepared"
    assert main(["synth", str(other), "--size", "tiny", "--seed", "7"]) == 0
    assert main(["evaluate", str(run / "best"), "--data", str(other),
                 "--prepared", str(other_prepared)]) == 1
    assert "other_prepared" in capsys.readouterr().err  # not prepared yet: says so
    assert main(["prepare", str(other), "--out", str(other_prepared),
                 "--vocab-from", str(run / "best")]) == 0
    assert json.loads((other_prepared / "vocab.json").read_text())["attributes"] == json.loads(
        (run / "best" / "vocab.json").read_text())["attributes"]
    out_other = tmp_path / "other.json"
    assert main(["evaluate", str(run / "best"), "--data", str(other), "--prepared",
                 str(other_prepared), "--split", "test", "--out", str(out_other)]) == 0
    assert json.loads(out_other.read_text())["videos"] == 24  # tiny: 30 % of 80 videos
    assert main(["prepare", str(other), "--out", str(tmp_path / "x"), "--vocab-from",
                 str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("mcsan info: error:") and "nowhere" in error
    assert main(["train", "train.epochz=3"]) == 1
    assert "epochz" in capsys.readouterr().err


def test_demo_runs_on_the_tiny_preset(tmp_path, capsys, one_thread):
    from mcsan.demo import run_demo

    results = run_demo(tmp_path / "demo", size="tiny", epochs=2)
    printed = capsys.readouterr().out
    # an event, its role-swapped reading and an intransitive action, each with ranked videos
    assert printed.count('query: "') == 3 and printed.count("why: query attributes") == 3
    swapped = [line for line in printed.splitlines() if line.startswith('query: "the ')][:2]
    first, second = (line.split('"')[1].split(" ") for line in swapped)
    assert (first[1], first[-1]) == (second[-1], second[1])  # subject and object exchanged
    assert (tmp_path / "demo" / "test_results.json").is_file()
    assert (tmp_path / "demo" / "index" / "index.json").is_file()
    assert results["split"] == "test" and results["fused"]["rsum"] > 0


def test_demo_never_replaces_what_it_did_not_write(tmp_path, capsys):
    users = tmp_path / "project"
    (users / "data").mkdir(parents=True)
    (users / "data" / "my_videos.txt").write_text("mine")
    (users / "run").mkdir()
    assert main(["demo", "--out", str(users), "--size", "tiny"]) == 1
    error = capsys.readouterr().err
    assert "did not write" in error and str(users) in error
    assert (users / "data" / "my_videos.txt").read_text() == "mine"
    assert sorted(p.name for p in users.iterdir()) == ["data", "run"]


def test_train_print_config_gives_a_file_train_reads_back(tmp_path, capsys, monkeypatch):
    from mcsan.config import Config

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--print-config", "loss.sum_violation_epochs=2", "model.levels=[global]"]) == 0
    written = tmp_path / "config.yaml"
    written.write_text(capsys.readouterr().out)
    config = Config.load(written)
    assert config.loss.sum_violation_epochs == 2 and config.model.levels == ["global"]
    assert config.to_dict() == Config.load(written, ["train.lr=0.0002"]).to_dict()  # the default
    assert not (tmp_path / "runs").exists()  # printing trains nothing (out_dir is runs/mcsan)


def test_ctrl_c_ends_with_one_line_that_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    import mcsan.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mcsan.train, "train", interrupted)
    assert main(["train", f"train.out_dir={tmp_path / 'run'}"]) == 130
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert error.startswith("mcsan train: interrupted;") and "--resume" in error
    assert f"{tmp_path / 'run'}/last" in error

    import mcsan.data.prepare

    monkeypatch.setattr(mcsan.data.prepare, "prepare", interrupted)
    data = tmp_path / "data"
    assert main(["synth", str(data), "--size", "tiny"]) == 0
    assert main(["prepare", str(data), "--out", str(tmp_path / "p")]) == 130
    assert "run the same command again" in capsys.readouterr().err


def test_bad_npy_features_are_named_by_file_and_skipped_items_listed(tmp_path, capsys,
                                                                     one_thread):
    import numpy as np

    root = tmp_path / "vatex"
    features = root / "features" / "i3d"
    features.mkdir(parents=True)
    videos = [f"v{i}" for i in range(8)]
    captions = [{"videoID": v, "enCap": ["a dog runs in a park", "a man walks"]} for v in videos]
    (root / "vatex_training_v1.0.json").write_text(json.dumps(captions[:6]))
    (root / "vatex_validation_v1.0.json").write_text(json.dumps(captions[6:]))
    rng = np.random.default_rng(0)
    for video in videos:
        np.save(features / f"{video}.npy", rng.random((4, 16), dtype=np.float32))
    with_nan = rng.random((4, 16), dtype=np.float32)
    with_nan[0, 0] = np.nan
    np.save(features / "v2.npy", with_nan)
    np.save(features / "v3.npy", rng.random((4, 8), dtype=np.float32))

    assert main(["info", str(root)]) == 1
    error = capsys.readouterr().err
    assert f"{features / 'v3.npy'}: video v3 has i3d features of dimension 8" in error
    assert "--skip-invalid" in error and "skip_invalid=True" not in error

    out = tmp_path / "prepared"
    assert main(["prepare", str(root), "--out", str(out), "--skip-invalid"]) == 0
    printed = capsys.readouterr()
    assert f"every one is listed in {out / 'skipped.json'}" in printed.out
    assert "features but no captions" not in printed.out + printed.err
    skipped = json.loads((out / "skipped.json").read_text())
    videos_skipped = {item["item_id"] for item in skipped if item["item_id"].startswith("video")}
    assert videos_skipped == {"video v2", "video v3"}
    assert {item["file"] for item in skipped if item["item_id"] == "video v2"} == {
        str(features / "v2.npy")}
    from mcsan.data.layouts import read_dataset_with_report

    _, report = read_dataset_with_report(root, skip_invalid=True, progress=False)
    assert not [w for w in report.warnings if "features but no captions" in w]
