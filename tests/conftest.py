"""Shared fixtures: a tiny synthetic dataset written to disk and prepared once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root, prepared dir) of the 'tiny' synthetic benchmark, seed 0."""
    from mcsan.config import VocabConfig
    from mcsan.data.layouts import read_dataset
    from mcsan.data.prepare import prepare
    from mcsan.data.synth import SynthConfig, write_synth

    base = tmp_path_factory.mktemp("tiny")
    root = write_synth(base / "data", SynthConfig.preset("tiny", seed=0), progress=False)
    prepared = base / "prepared"
    prepare(read_dataset(root, progress=False), prepared, VocabConfig(min_count=1), progress=False)
    return root, prepared


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_prepared, tmp_path_factory):
    """A model trained for one epoch on the tiny synthetic benchmark (its TrainResult)."""
    from mcsan.config import Config, apply_overrides
    from mcsan.train import train

    root, prepared = tiny_prepared
    config = apply_overrides(
        Config(),
        [
            "train.epochs=1",
            "train.batch_size=32",
            "train.warmup_steps=5",
            "model.embed_dim=16",
            "model.hidden_dim=16",
            "model.word_dim=16",
            "data.max_frames=8",
        ],
    )
    config.data.root, config.data.prepared = str(root), str(prepared)
    config.train.out_dir = str(tmp_path_factory.mktemp("tiny_run") / "run")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    result = train(config, progress=False)
    torch.set_num_threads(before)
    return result


@pytest.fixture
def one_thread():
    """Run a test on one CPU thread: on a shared 2-core machine this is faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
