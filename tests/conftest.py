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


@pytest.fixture
def one_thread():
    """Run a test on one CPU thread: on a shared 2-core machine this is faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
