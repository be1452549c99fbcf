"""Fusion weights chosen on validation: the grid search, the checkpoint it rewrites, the
training switch and the command line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mcsan.calibrate import (
    CALIBRATION_FILE,
    DEFAULT_GRID,
    calibrate_checkpoint,
    calibrate_fusion,
    check_grid,
    weight_candidates,
)
from mcsan.checkpoint import load_checkpoint, read_checkpoint_note, update_checkpoint
from mcsan.cli import main
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared
from mcsan.evaluate import EncodedSplit, evaluate_checkpoint, load_trained
from mcsan.metrics import retrieval_metrics


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def encoded_split(levels: dict[str, torch.Tensor], text: dict[str, torch.Tensor],
                  caption_to_video: torch.Tensor) -> EncodedSplit:
    """An EncodedSplit with only what retrieval needs."""
    return EncodedSplit(
        video_ids=[f"v{i}" for i in range(len(next(iter(levels.values()))))],
        caption_ids=[f"c{i}" for i in range(len(caption_to_video))],
        caption_to_video=caption_to_video, video_emb=levels, text_emb=text,
        video_attr_logits={}, text_attr_logits={}, video_targets={}, text_targets={},
    )


@pytest.fixture
def noisy_entity_split() -> EncodedSplit:
    """100 videos, 2 captions each: relationship matches well, global a little, entity is noise."""
    generator = torch.Generator().manual_seed(0)
    videos, dim = 100, 16
    caption_to_video = torch.arange(videos).repeat_interleave(2)  # (60,)

    def level(noise: float) -> tuple[torch.Tensor, torch.Tensor]:
        video = torch.randn(videos, dim, generator=generator)
        text = video[caption_to_video] + noise * torch.randn(len(caption_to_video), dim,
                                                             generator=generator)
        return unit(video), unit(text)

    pairs = {"global": level(2.0), "relationship": level(0.7)}
    pairs["entity"] = (unit(torch.randn(videos, dim, generator=generator)),
                       unit(torch.randn(len(caption_to_video), dim, generator=generator)))
    return encoded_split({k: v for k, (v, _) in pairs.items()},
                         {k: t for k, (_, t) in pairs.items()}, caption_to_video)


def test_candidates_fix_the_anchor_level_and_cover_the_grid():
    levels = ["global", "entity", "action", "relationship"]
    candidates = weight_candidates(levels, DEFAULT_GRID)
    assert len(candidates) == len(DEFAULT_GRID) ** 3
    assert all(c["global"] == 1.0 and list(c) == levels for c in candidates)
    assert len({tuple(c.values()) for c in candidates}) == len(candidates)
    # without the global level the first active level is the anchor
    assert all(c["entity"] == 1.0 for c in weight_candidates(["entity", "action"], [0, 2]))
    assert weight_candidates(["global"], DEFAULT_GRID) == [{"global": 1.0}]


@pytest.mark.parametrize("grid", [[], [-1.0, 1.0], [float("nan")], [float("inf")]])
def test_a_bad_grid_is_refused(grid):
    with pytest.raises(ValueError, match="grid|weights"):
        check_grid(grid)


def test_calibration_drops_a_noise_level_and_finds_the_grid_maximum(noisy_entity_split):
    trained = {"global": 1.0, "entity": 1.0, "relationship": 1.0}
    calibration = calibrate_fusion(noisy_entity_split, trained, progress=False)
    assert calibration.weights["entity"] == 0.0
    assert calibration.rsum > calibration.trained_rsum
    # the chosen rsum is the best of every combination, each scored independently here
    e = noisy_entity_split
    best = max(retrieval_metrics(e.text_emb, e.video_emb, e.caption_to_video, w)["rsum"]
               for w in weight_candidates(list(trained), DEFAULT_GRID))
    assert calibration.rsum == pytest.approx(best)
    assert len(calibration.candidates) == len(DEFAULT_GRID) ** 2
    assert "chosen" in calibration.describe()


def test_trained_weights_win_ties():
    """Every level the same embeddings: every combination ranks alike, so nothing changes."""
    generator = torch.Generator().manual_seed(1)
    video = unit(torch.randn(12, 8, generator=generator))
    caption_to_video = torch.arange(12)
    text = unit(video + 0.8 * torch.randn(12, 8, generator=generator))
    split = encoded_split({lv: video for lv in ("global", "entity")},
                          {lv: text for lv in ("global", "entity")}, caption_to_video)
    trained = {"global": 1.0, "entity": 1.0}
    calibration = calibrate_fusion(split, trained, grid=[0.5, 1, 2], progress=False)
    assert calibration.weights == trained and not calibration.changed
    assert "stay" in calibration.describe()


@pytest.fixture
def checkpoint_copy(tiny_checkpoint, tmp_path):
    """A copy of the tiny run's best checkpoint that a test may rewrite."""
    return shutil.copytree(tiny_checkpoint.best_dir, tmp_path / "best")


def test_calibrating_a_checkpoint_writes_weights_that_evaluation_uses(checkpoint_copy, one_thread):
    trained = load_checkpoint(checkpoint_copy).config.model.level_weights
    calibration = calibrate_checkpoint(checkpoint_copy, grid=[0, 1, 3], progress=False)
    saved = load_checkpoint(checkpoint_copy).config
    assert saved.model.level_weights == {**trained, **calibration.weights}
    note = read_checkpoint_note(checkpoint_copy, CALIBRATION_FILE)
    assert note["trained"] == calibration.trained and note["weights"] == calibration.weights
    assert len(note["candidates"]) == 27
    # evaluation of the checkpoint now scores with the chosen weights
    results = evaluate_checkpoint(checkpoint_copy, split="val", device="cpu", progress=False)
    assert results["fused"]["rsum"] == pytest.approx(calibration.rsum)
    assert not list(checkpoint_copy.glob("*.tmp-*"))  # no temporary file left behind

    # calibrating again starts from the trained weights, not from the chosen ones
    again = calibrate_checkpoint(checkpoint_copy, grid=[1, 2], progress=False)
    assert again.trained == calibration.trained
    assert again.trained_rsum == pytest.approx(calibration.trained_rsum)


def test_dry_run_and_test_split_leave_the_checkpoint_alone(checkpoint_copy, one_thread):
    before = (checkpoint_copy / "config.json").read_text()
    calibrate_checkpoint(checkpoint_copy, grid=[0, 2], write=False, progress=False)
    for test_split in ("test", "test_1k"):
        with pytest.raises(ValueError, match="never on the test split"):
            calibrate_checkpoint(checkpoint_copy, split=test_split, progress=False)
    assert (checkpoint_copy / "config.json").read_text() == before
    assert not (checkpoint_copy / CALIBRATION_FILE).exists()


def test_calibration_takes_data_already_read(checkpoint_copy, tiny_prepared, one_thread):
    root, prepared_dir = tiny_prepared
    dataset = read_dataset(root, progress=False)
    prepared = load_prepared(prepared_dir, dataset)
    from_disk = calibrate_checkpoint(checkpoint_copy, grid=[0, 2], write=False, progress=False)
    given = calibrate_checkpoint(checkpoint_copy, grid=[0, 2], write=False, progress=False,
                                 dataset=dataset, prepared=prepared)
    assert given.candidates == from_disk.candidates
    model, _ = load_trained(checkpoint_copy, prepared)
    assert model.level_weights == from_disk.trained


def test_update_checkpoint_refuses_to_overwrite_its_own_files(checkpoint_copy):
    for name in ("model.safetensors", "config.json", "vocab.json", "../x.json", "notes.txt"):
        with pytest.raises(ValueError, match="cannot be a checkpoint note"):
            update_checkpoint(checkpoint_copy, notes={name: {}})
    update_checkpoint(checkpoint_copy, notes={"extra.json": {"a": 1}})
    assert read_checkpoint_note(checkpoint_copy, "extra.json") == {"a": 1}
    assert read_checkpoint_note(checkpoint_copy, "absent.json") is None


def test_resuming_a_finished_run_with_calibration_calibrates_its_best(tiny_checkpoint, tmp_path,
                                                                     one_thread, capsys):
    run_dir = shutil.copytree(tiny_checkpoint.run_dir, tmp_path / "run")
    before = load_checkpoint(run_dir / "last").model_state
    assert read_checkpoint_note(run_dir / "best", CALIBRATION_FILE) is None
    code = main(["train", "--config", str(run_dir / "config.json"), "--resume",
                 f"train.out_dir={run_dir}", "train.calibrate_fusion=true"])
    assert code == 0
    note = read_checkpoint_note(run_dir / "best", CALIBRATION_FILE)
    assert note is not None and str(round(note["rsum"], 2)) in capsys.readouterr().out
    assert load_checkpoint(run_dir / "best").config.model.level_weights == note["weights"]
    after = load_checkpoint(run_dir / "last").model_state
    assert all(torch.equal(before[k], after[k]) for k in before)  # no epoch trained again


def test_command_line(checkpoint_copy, tmp_path, capsys, one_thread):
    before = (checkpoint_copy / "config.json").read_text()
    out = tmp_path / "calibration.json"
    code = main(["calibrate", str(checkpoint_copy), "--grid", "0", "2", "--dry-run", "--out",
                 str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "fusion weights on the val split" in printed and "dry run" in printed
    assert json.loads(out.read_text())["grid"] == [0.0, 2.0]
    assert (checkpoint_copy / "config.json").read_text() == before

    assert main(["calibrate", str(checkpoint_copy), "--grid", "-1"]) == 1
    assert "mcsan calibrate: error:" in capsys.readouterr().err
