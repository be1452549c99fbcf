import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from mcsan import checkpoint as checkpoint_module
from mcsan.checkpoint import (
    capture_rng_state,
    check_compatible,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from mcsan.config import Config

VOCAB = {"entity": ["dog", "cat", "ball"], "action": ["run", "chase"], "words": {"dog": 2}}


def make_model():
    return nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 3))


def make_training(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return optimizer, scheduler


def train_steps(model, optimizer, scheduler, steps):
    # the batch and the dropout masks come from the global torch RNG
    for _ in range(steps):
        inputs = torch.randn(5, 6)
        loss = model(inputs).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_resume_continues_exactly(tmp_path):
    torch.manual_seed(0)
    model = make_model()
    optimizer, scheduler = make_training(model)
    train_steps(model, optimizer, scheduler, 2)
    save_checkpoint(
        tmp_path / "ckpt",
        config=Config(),
        model_state=model.state_dict(),
        vocab=VOCAB,
        optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(),
        trainer_state={"epoch": 0, "step": 2, "best_rsum": 12.5, "rng": capture_rng_state()},
        metrics={"rsum": 12.5},
    )
    train_steps(model, optimizer, scheduler, 3)  # the uninterrupted run
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(123)  # a fresh process would start elsewhere
    loaded = load_checkpoint(tmp_path / "ckpt")
    resumed = make_model()
    resumed.load_state_dict(loaded.model_state)
    resumed_optimizer, resumed_scheduler = make_training(resumed)
    resumed_optimizer.load_state_dict(loaded.optimizer_state)
    resumed_scheduler.load_state_dict(loaded.scheduler_state)
    assert loaded.trainer_state["step"] == 2 and loaded.metrics == {"rsum": 12.5}
    restore_rng_state(loaded.trainer_state["rng"])
    train_steps(resumed, resumed_optimizer, resumed_scheduler, 3)
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, expected[name]), name

    # without the RNG state the continuation differs: the test can tell
    torch.manual_seed(123)
    again = make_model()
    again.load_state_dict(loaded.model_state)
    again_optimizer, again_scheduler = make_training(again)
    again_optimizer.load_state_dict(loaded.optimizer_state)
    again_scheduler.load_state_dict(loaded.scheduler_state)
    train_steps(again, again_optimizer, again_scheduler, 3)
    assert not torch.equal(again[0].weight, expected["0.weight"])


def test_optimizer_state_structure_round_trips(tmp_path):
    model = make_model()
    optimizer, scheduler = make_training(model)
    train_steps(model, optimizer, scheduler, 1)
    state = optimizer.state_dict()
    save_checkpoint(
        tmp_path / "c",
        config=Config(),
        model_state=model.state_dict(),
        vocab=VOCAB,
        optimizer_state=state,
    )
    loaded = load_checkpoint(tmp_path / "c").optimizer_state
    assert set(loaded["state"]) == set(state["state"])  # integer parameter ids stay integers
    assert all(isinstance(k, int) for k in loaded["state"])
    assert loaded["param_groups"][0]["betas"] == state["param_groups"][0]["betas"]
    assert isinstance(loaded["param_groups"][0]["betas"], tuple)
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            assert torch.equal(loaded["state"][pid][key], value)
    on_disk = json.loads((tmp_path / "c" / "optimizer.json").read_text())
    assert on_disk["format"] == "mcsan-state-v1"
    assert not list(tmp_path.glob("c.tmp-*"))


def test_shared_and_strided_tensors_are_saved(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": base, "tied": base, "column": base[:, 1], "transposed": base.T}
    save_checkpoint(tmp_path / "c", config=Config(), model_state=state, vocab={})
    loaded = load_checkpoint(tmp_path / "c").model_state
    for name, value in state.items():
        assert torch.equal(loaded[name], value)


def test_failed_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    save_checkpoint(target, config=Config(), model_state={"w": torch.ones(3)}, vocab=VOCAB)
    real_save = checkpoint_module.save_file

    def crash_mid_write(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        with open(path, "r+b") as handle:  # a half-written file, then the crash
            handle.truncate(10)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, config=Config(), model_state={"w": torch.zeros(3)}, vocab={})
    loaded = load_checkpoint(target)
    assert torch.equal(loaded.model_state["w"], torch.ones(3)) and loaded.vocab == VOCAB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    monkeypatch.setattr(checkpoint_module, "save_file", real_save)
    save_checkpoint(target, config=Config(), model_state={"w": torch.zeros(3)}, vocab={})
    assert torch.equal(load_checkpoint(target).model_state["w"], torch.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_crash_between_renames_is_explained(tmp_path):
    target = tmp_path / "ckpt"
    save_checkpoint(target, config=Config(), model_state={"w": torch.ones(3)}, vocab={})
    target.rename(tmp_path / "ckpt.old-abc123")
    with pytest.raises(FileNotFoundError, match="ckpt.old-abc123"):
        load_checkpoint(target)


def test_missing_files_and_foreign_directories_are_named(tmp_path):
    target = tmp_path / "ckpt"
    save_checkpoint(target, config=Config(), model_state={"w": torch.ones(3)}, vocab={})
    (target / "vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        load_checkpoint(target)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    foreign = tmp_path / "my_videos"
    foreign.mkdir()
    (foreign / "precious.mp4").write_bytes(b"\x00")
    with pytest.raises(FileExistsError, match="not an MCSAN checkpoint"):
        save_checkpoint(foreign, config=Config(), model_state={}, vocab={})
    assert (foreign / "precious.mp4").exists()
    with pytest.raises(TypeError, match="set"):
        save_checkpoint(
            tmp_path / "x", config=Config(), model_state={}, vocab={}, trainer_state={"s": {1, 2}}
        )


def test_check_compatible_names_every_mismatch(tmp_path):
    config = Config()
    config.model.embed_dim = 32
    model = make_model()
    save_checkpoint(tmp_path / "c", config=config, model_state=model.state_dict(), vocab=VOCAB)
    loaded = load_checkpoint(tmp_path / "c")
    check_compatible(loaded, config=config, vocab=VOCAB, model_state=make_model().state_dict())
    other = Config()
    other.model.embed_dim = 64
    other.train.lr = 1.0  # not an architecture field: fine
    changed_vocab = {**VOCAB, "entity": ["dog", "horse", "ball"]}
    wider = nn.Sequential(
        nn.Linear(6, 9), nn.Dropout(0.3), nn.ReLU(), nn.Linear(9, 3), nn.Linear(3, 1)
    )
    with pytest.raises(ValueError) as error:
        check_compatible(loaded, config=other, vocab=changed_vocab, model_state=wider.state_dict())
    message = str(error.value)
    assert "model.embed_dim is 32 in the checkpoint but 64" in message
    assert "vocab 'entity' differs" in message and "index 1" in message
    assert "0.weight" in message and "(8, 6)" in message
    assert "lacks 2 parameter(s)" in message
    assert "train.lr" not in message


def test_rng_state_round_trips_through_json():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in the Python state
    state = json.loads(json.dumps(capture_rng_state()))
    first = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(4))
    restore_rng_state(state)
    second = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(4))
    assert first[:3] == second[:3] and torch.equal(first[3], second[3])


def test_truncated_weights_name_the_file_and_say_the_checkpoint_is_damaged(tmp_path):
    import os

    target = save_checkpoint(tmp_path / "c", config=Config(),
                             model_state={"w": torch.ones(1000)}, vocab={})
    weights = target / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    with pytest.raises(ValueError, match=r"model.safetensors cannot be read .* the checkpoint "
                       "is damaged"):
        load_checkpoint(target)
