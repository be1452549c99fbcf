import json
import os

import pytest
import torch

from mcsan.config import Config, apply_overrides
from mcsan.runtime import loader_workers


def test_round_trip_json(tmp_path):
    config = Config()
    config.train.lr = 1e-3
    config.model.levels = ["global", "entity"]
    path = tmp_path / "config.json"
    config.save(path)
    loaded = Config.load(path)
    assert loaded == config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\nmodel:\n  embed_dim: 64\n")
    config = Config.load(path, ["train.lr=0.5", "model.levels=[global, action]", "loss.kl=false"])
    assert config.train.epochs == 3 and config.model.embed_dim == 64
    assert config.train.lr == 0.5
    assert config.model.levels == ["global", "action"]
    assert config.loss.kl is False


def test_unknown_field_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochz": 3}}))
    with pytest.raises(KeyError, match="epochz"):
        Config.load(path)
    with pytest.raises(KeyError, match="train.nope"):
        apply_overrides(Config(), ["train.nope=1"])


def test_bad_level_rejected():
    with pytest.raises(ValueError, match="unknown level"):
        apply_overrides(Config(), ["model.levels=[global, scene]"])


def test_scalars_are_coerced_or_rejected():
    config = apply_overrides(Config(), ["train.lr=1e-3", "loss.margin=1"])
    assert config.train.lr == 1e-3 and isinstance(config.loss.margin, float)
    with pytest.raises(ValueError, match="train.epochs"):
        apply_overrides(Config(), ["train.epochs=many"])
    with pytest.raises(ValueError, match="train.lr"):
        apply_overrides(Config(), ["train.lr=fast"])


def test_booleans_are_no_numbers_and_integers_are_decimal():
    with pytest.raises(ValueError, match="train.epochs=True is not an integer"):
        apply_overrides(Config(), ["train.epochs=true"])
    with pytest.raises(ValueError, match="loss.margin=False is not a number"):
        apply_overrides(Config(), ["loss.margin=false"])
    assert apply_overrides(Config(), ["train.epochs=010"]).train.epochs == 10  # no octal


def test_loader_workers_are_automatic_by_default(monkeypatch):
    config = Config()
    assert config.train.num_workers == -1 and config.train.amp is False
    assert loader_workers(-1, torch.device("cpu")) == 0  # workers compete for the cores
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert loader_workers(-1, cuda) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert loader_workers(-1, cuda) == 2  # one core stays with training
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert loader_workers(-1, cuda) == 0
    assert loader_workers(0, cuda) == 0 and loader_workers(6, torch.device("cpu")) == 6
    with pytest.raises(ValueError, match=r"train.num_workers=-2; use -1 \(automatic\)"):
        apply_overrides(Config(), ["train.num_workers=-2"])


def test_a_list_of_names_takes_one_name_or_a_comma_list():
    assert apply_overrides(Config(), ["model.levels=global"]).model.levels == ["global"]
    assert apply_overrides(Config(), ["model.levels=global, entity"]).model.levels == [
        "global", "entity"]
    assert apply_overrides(Config(), ["model.levels=[global,action]"]).model.levels == [
        "global", "action"]
    with pytest.raises(ValueError, match="unknown level"):
        apply_overrides(Config(), ["model.levels=globl"])
    with pytest.raises(ValueError, match="is not a list of names"):
        apply_overrides(Config(), ["model.levels=3"])


@pytest.mark.parametrize(("override", "message"), [
    ("model.embed_dim=-3", "model.embed_dim=-3; it must be at least 1"),
    ("vocab.min_count=0", "vocab.min_count=0; it must be at least 1"),
    ("vocab.top_k.entity=abc", "vocab.top_k.entity='abc' is not an integer"),
    ("vocab.top_k.entity=0", "vocab.top_k.entity=0; it must be at least 1"),
    ("train.batch_size=1", "train.batch_size=1; it must be at least 2"),
    ("train.lr=-1e-3", "train.lr=-0.001; it must be >= 0"),
    ("model.dropout=1.5", "model.dropout=1.5; choose a value in [0, 1)"),
    ("model.hidden_dim=33", "model.hidden_dim=33 must be even for the BiGRU"),
    ("model.level_weights.global=-1", "model.level_weights.global=-1.0; weights must be >= 0"),
    ("train.schedule=linear", "train.schedule='linear'; choose cosine, step or constant"),
    ("train.backbone_lr=-1", "train.backbone_lr=-1.0; it must be >= 0"),
    ("train.accumulate_steps=0", "train.accumulate_steps=0; it must be at least 1"),
    ("eval.split=''", "eval.split is empty"),
    ("train.epochz=3", "did you mean train.epochs?"),
])
def test_overrides_are_checked_with_the_key_named(override, message):
    with pytest.raises((ValueError, KeyError)) as error:
        apply_overrides(Config(), [override])
    assert message in (error.value.args[0] if error.value.args else str(error.value))


def test_config_errors_on_the_command_line_are_plain_lines(capsys):
    from mcsan.cli import main

    assert main(["train", "train.epochz=3"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("mcsan train: error: override 'train.epochz=3'")  # no stray quote


def test_threads_default_to_the_idle_cores(monkeypatch):
    from mcsan import runtime

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        monkeypatch.setattr(runtime.os, "cpu_count", lambda: 4)
        monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
        assert runtime.idle_cores() == 3 and runtime.configure_threads(0) == 3
        assert torch.get_num_threads() == 3
        monkeypatch.setattr(runtime.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
        assert runtime.configure_threads(0) == 1  # never fewer than one
        assert runtime.configure_threads(2) == 2  # a given count is kept
        with pytest.raises(ValueError, match="train.threads=-1"):
            runtime.configure_threads(-1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as ablation.py --jobs sets it
        torch.set_num_threads(1)
        assert runtime.configure_threads(0) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
