"""Validation: every bad-input case raises a clear error, or is skipped and reported."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from mcsan.data.dataset import Caption, Dataset, Split
from mcsan.data.layouts import read_dataset, read_dataset_with_report, write_bigfile, write_hgr
from mcsan.data.validate import (
    DataSources,
    DataValidationError,
    ValidationReport,
    validate_dataset,
)

STORE_PATH = Path("memory/appearance.hdf5")
CAPTION_PATH = Path("memory/captions.json")


class DictStore:
    """A feature store over in-memory arrays; offers no ``shape()``, so validation reads."""

    def __init__(self, arrays: dict[str, np.ndarray], dim: int = 4) -> None:
        self.name = "appearance"
        self.path = STORE_PATH
        self.dim = dim
        self._arrays = arrays

    def video_ids(self) -> list[str]:
        return list(self._arrays)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._arrays

    def get(self, video_id: str) -> np.ndarray:
        return self._arrays[video_id]

    def file_of(self, video_id: str):
        return self.path


def make_dataset(
    arrays: dict[str, np.ndarray] | None = None,
    captions: list[Caption] | None = None,
    video_ids: list[str] | None = None,
) -> Dataset:
    """One train split of videos v0..v3 with two captions each and (3, 4) features."""
    video_ids = video_ids if video_ids is not None else ["v0", "v1", "v2", "v3"]
    if arrays is None:
        arrays = {v: np.full((3, 4), i, np.float32) for i, v in enumerate(["v0", "v1", "v2", "v3"])}
    if captions is None:
        captions = [
            Caption(f"{v}#{k}", v, f"a caption {k} of {v}") for v in video_ids for k in (0, 1)
        ]
    split = Split("train", list(video_ids), list(captions), [DictStore(arrays)])
    return Dataset(Path("memory"), "test", {"train": split})


SOURCES = DataSources(
    video_lists={"train": Path("memory/train_names.npy")}, captions={"train": CAPTION_PATH}
)


def check(dataset: Dataset, **kwargs) -> ValidationReport:
    return validate_dataset(dataset, progress=False, sources=SOURCES, **kwargs)


def skipped_ids(report: ValidationReport) -> list[str]:
    return [item.item_id for item in report.skipped]


def test_clean_dataset_passes() -> None:
    dataset = make_dataset()
    report = check(dataset)
    assert report.clean and report.values_checked
    assert report.videos == {"train": 4} and report.captions == {"train": 8}


def test_caption_whose_video_has_no_features() -> None:
    arrays = {v: np.zeros((3, 4), np.float32) for v in ["v0", "v2", "v3"]}
    with pytest.raises(DataValidationError) as error:
        check(make_dataset(arrays))
    message = str(error.value)
    assert str(STORE_PATH) in message and "video v1" in message and "v1#0" in message
    assert "Fix:" in message and "skip_invalid" in message

    dataset = make_dataset(arrays)
    report = check(dataset, skip_invalid=True)
    assert dataset["train"].video_ids == ["v0", "v2", "v3"]
    assert {c.video_id for c in dataset["train"].captions} == {"v0", "v2", "v3"}
    assert skipped_ids(report) == ["video v1", "caption v1#0", "caption v1#1"]
    assert report.skipped[1].file == str(CAPTION_PATH)


def test_features_without_captions_only_warn() -> None:
    captions = [Caption("v0#0", "v0", "a dog runs"), Caption("v1#0", "v1", "a cat sits")]
    dataset = make_dataset(captions=captions, video_ids=["v0", "v1", "v2"])
    report = check(dataset)
    assert dataset["train"].video_ids == ["v0", "v1", "v2"]  # kept as retrieval candidates
    assert any("1 videos (e.g. v2" in w for w in report.warnings)
    # v3 has features but is in no split at all
    assert any(
        str(STORE_PATH) in w and "1 videos have appearance features" in w for w in report.warnings
    )


def test_feature_dimension_mismatch() -> None:
    arrays = {v: np.zeros((3, 4), np.float32) for v in ["v0", "v1", "v2", "v3"]}
    arrays["v2"] = np.zeros((3, 5), np.float32)
    with pytest.raises(
        DataValidationError, match=r"video v2 has appearance features of dimension 5.*have 4"
    ):
        check(make_dataset(arrays))
    dataset = make_dataset(arrays)
    report = check(dataset, skip_invalid=True)
    assert "v2" not in dataset["train"].video_ids
    assert skipped_ids(report)[0] == "video v2"


def test_nan_and_inf_values() -> None:
    arrays = {v: np.zeros((3, 4), np.float32) for v in ["v0", "v1", "v2", "v3"]}
    arrays["v3"][0, 0] = np.nan
    arrays["v3"][1, 2] = np.inf
    with pytest.raises(
        DataValidationError, match=r"memory/appearance.hdf5: video v3 has 1 NaN and 1 Inf"
    ):
        check(make_dataset(arrays))
    unscanned = check(make_dataset(arrays), check_values=False)
    assert not unscanned.values_checked and "not scanned" in unscanned.summary()
    dataset = make_dataset(arrays)
    report = check(dataset, skip_invalid=True)
    assert dataset["train"].video_ids == ["v0", "v1", "v2"]
    assert report.captions == {"train": 6}


def test_zero_length_sequence() -> None:
    arrays = {v: np.zeros((3, 4), np.float32) for v in ["v0", "v1", "v2", "v3"]}
    arrays["v0"] = np.zeros((0, 4), np.float32)
    with pytest.raises(
        DataValidationError, match=r"video v0 has a zero-length appearance sequence"
    ):
        check(make_dataset(arrays))


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_or_whitespace_caption(text: str) -> None:
    captions = [Caption("v0#0", "v0", "fine"), Caption("v1#0", "v1", text)]
    with pytest.raises(
        DataValidationError, match=r"captions.json: caption v1#0 of video v1 is empty"
    ):
        check(make_dataset(captions=captions, video_ids=["v0", "v1"]))
    dataset = make_dataset(captions=captions, video_ids=["v0", "v1"])
    report = check(dataset, skip_invalid=True)
    assert [c.caption_id for c in dataset["train"].captions] == ["v0#0"]
    assert skipped_ids(report) == ["caption v1#0"]


def test_duplicate_video_and_caption_ids() -> None:
    with pytest.raises(DataValidationError, match=r"train_names.npy: video v1 is listed twice"):
        check(make_dataset(video_ids=["v0", "v1", "v1"]))
    captions = [Caption("v0#0", "v0", "one"), Caption("v0#0", "v0", "two")]
    with pytest.raises(DataValidationError, match=r"caption v0#0 is a duplicate caption id"):
        check(make_dataset(captions=captions, video_ids=["v0"]))
    dataset = make_dataset(captions=captions, video_ids=["v0", "v0"])
    report = check(dataset, skip_invalid=True)
    assert dataset["train"].video_ids == ["v0"]
    assert [c.text for c in dataset["train"].captions] == ["one"]
    assert skipped_ids(report) == ["video v0", "caption v0#0"]


def test_split_naming_unknown_video_and_caption_naming_unlisted_video() -> None:
    dataset = make_dataset(video_ids=["v0", "ghost"], captions=[Caption("v0#0", "v0", "a")])
    with pytest.raises(
        DataValidationError, match=r"train_names.npy: video ghost is listed.*unknown video"
    ):
        check(dataset)
    captions = [Caption("v0#0", "v0", "a"), Caption("v9#0", "v9", "b")]
    with pytest.raises(
        DataValidationError, match=r"caption v9#0 names video v9, which split 'train' does not list"
    ):
        check(make_dataset(video_ids=["v0"], captions=captions))


def test_skip_invalid_logs_a_summary_and_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    arrays = {v: np.zeros((3, 4), np.float32) for v in ["v0", "v1", "v2", "v3"]}
    arrays["v1"][0, 0] = np.nan
    dataset = make_dataset(arrays)
    total = len(dataset["train"].captions) + len(dataset["train"].video_ids)
    with caplog.at_level(logging.WARNING, logger="mcsan.data.validate"):
        report = check(dataset, skip_invalid=True)
    kept = report.videos["train"] + report.captions["train"]
    assert kept + len(report.skipped) == total
    assert "skipped 3 invalid items" in caplog.text and "video v1 has 1 NaN" in caplog.text
    assert json.loads(json.dumps(report.to_dict()))["skipped"][0]["item_id"] == "video v1"


# --------------------------------------------------------------------------- checks on raw files

SPLITS = {"train": ["v0", "v1", "v2"], "test": ["v3", "v4"]}


def tiny_features() -> dict[str, dict[str, np.ndarray]]:
    videos = [v for ids in SPLITS.values() for v in ids]
    return {"cnn": {v: np.full((2, 3), i, np.float32) for i, v in enumerate(videos)}}


def tiny_captions() -> dict[str, list[str]]:
    return {v: [f"caption {k} of {v}" for k in range(2)] for ids in SPLITS.values() for v in ids}


@pytest.fixture
def layout_tiny_hgr(tmp_path: Path) -> Path:
    root = tmp_path / "hgr"
    write_hgr(root, SPLITS, tiny_captions(), tiny_features(), progress=False)
    return root


@pytest.fixture
def layout_tiny_bigfile(tmp_path: Path) -> Path:
    root = tmp_path / "vs"
    write_bigfile(root, "t", SPLITS, tiny_captions(), tiny_features(), progress=False)
    return root


def test_non_utf8_caption_line_names_file_offset_and_line(layout_tiny_bigfile: Path) -> None:
    path = layout_tiny_bigfile / "ttrain" / "TextData" / "ttrain.caption.txt"
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    lines[2] = b"v1#enc#0 a caf\xe9 scene"  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines))
    offset = len(b"\n".join(lines[:2])) + 1 + len(b"v1#enc#0 a caf")
    with pytest.raises(DataValidationError) as error:
        read_dataset(layout_tiny_bigfile, progress=False)
    message = str(error.value)
    assert str(path) in message and "caption v1#0" in message
    assert f"byte offset {offset}, line 3" in message
    dataset, report = read_dataset_with_report(
        layout_tiny_bigfile, skip_invalid=True, progress=False
    )
    assert [c.caption_id for c in dataset["train"].captions] == [
        "v0#0",
        "v0#1",
        "v1#1",
        "v2#0",
        "v2#1",
    ]
    assert skipped_ids(report) == ["caption v1#0"]


def test_non_utf8_byte_in_json_names_the_caption(layout_tiny_hgr: Path) -> None:
    path = layout_tiny_hgr / "annotation" / "RET" / "ref_captions.json"
    raw = path.read_bytes().replace(b"caption 1 of v3", b"caption \xff of v3")
    path.write_bytes(raw)
    with pytest.raises(
        DataValidationError,
        match=r"ref_captions.json: caption v3#1 holds bytes that are not UTF-8 \(byte offset \d+, line 1\)",
    ):
        read_dataset(layout_tiny_hgr, progress=False)


def test_hgr_split_file_naming_unknown_video(layout_tiny_hgr: Path) -> None:
    names = layout_tiny_hgr / "public_split" / "tst_names.npy"
    np.save(names, np.array(["v3", "v4", "ghost"]))
    with pytest.raises(DataValidationError) as error:
        read_dataset(layout_tiny_hgr, progress=False)
    assert str(names) in str(error.value) and "video ghost" in str(error.value)
    dataset, report = read_dataset_with_report(layout_tiny_hgr, skip_invalid=True, progress=False)
    assert dataset["test"].video_ids == ["v3", "v4"]
    assert report.skipped[0].file == str(names)


def test_hgr_nan_and_missing_features_name_the_hdf5_file(layout_tiny_hgr: Path) -> None:
    path = layout_tiny_hgr / "ordered_feature" / "SA" / "cnn" / "trn_ft.hdf5"
    with h5py.File(path, "a") as file:
        file["v1"][0, 1] = np.inf
        del file["v2"]
    with pytest.raises(DataValidationError, match=rf"{path}: video v2 has 2 caption\(s\)"):
        read_dataset(layout_tiny_hgr, progress=False)
    dataset, report = read_dataset_with_report(layout_tiny_hgr, skip_invalid=True, progress=False)
    assert dataset["train"].video_ids == ["v0"]
    assert [item.item_id for item in report.skipped if item.item_id.startswith("video")] == [
        "video v2",
        "video v1",
    ]
    assert "1 Inf" in report.skipped[1].reason


def test_bigfile_truncated_binary_and_unknown_frames(layout_tiny_bigfile: Path) -> None:
    directory = layout_tiny_bigfile / "ttest" / "FeatureData" / "cnn"
    mapping = json.loads((directory / "video2frames.txt").read_text())
    mapping["v4"].append("v4_99")
    (directory / "video2frames.txt").write_text(json.dumps(mapping))
    with pytest.raises(
        DataValidationError, match=r"video2frames.txt: video v4 names 1 frame\(s\) absent"
    ):
        read_dataset(layout_tiny_bigfile, progress=False)
    binary = directory / "feature.bin"
    binary.write_bytes(binary.read_bytes()[:-4])
    with pytest.raises(DataValidationError, match=r"feature.bin: has 44 bytes.*needs 48"):
        read_dataset(layout_tiny_bigfile, progress=False)


def test_msrvtt_1k_list_naming_video_outside_test_split(tmp_path: Path) -> None:
    annotation = {
        "videos": [{"video_id": "video9", "split": "test"}],
        "sentences": [{"sen_id": 0, "video_id": "video9", "caption": "a man sings"}],
    }
    (tmp_path / "test_videodatainfo.json").write_text(json.dumps(annotation))
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr9,video9,a man sings\nret1,msr5,video5,x\n"
    )
    with pytest.raises(
        DataValidationError,
        match=r"MSRVTT_JSFUSION_test.csv: video video5 \(row 3\) is not in the official test split",
    ):
        read_dataset(tmp_path, progress=False)
    dataset = read_dataset(tmp_path, skip_invalid=True, progress=False)
    assert dataset["test_1k"].video_ids == ["video9"]


def test_unreadable_per_video_file_is_named(tmp_path: Path) -> None:
    annotation = {
        "videos": [{"video_id": f"video{i}", "split": "train"} for i in range(3)],
        "sentences": [{"video_id": f"video{i}", "caption": f"clip {i}"} for i in range(3)],
    }
    (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps(annotation))
    directory = tmp_path / "features" / "i3d"
    directory.mkdir(parents=True)
    for i in range(3):
        np.save(directory / f"video{i}.npy", np.ones((4, 8), np.float32))
    (directory / "video1.npy").write_bytes(b"not a numpy file")
    with pytest.raises(
        DataValidationError, match=r"i3d/video1.npy: video video1 has i3d features that cannot be read"
    ):
        read_dataset(tmp_path, progress=False)
    dataset = read_dataset(tmp_path, skip_invalid=True, progress=False)
    assert dataset["train"].video_ids == ["video0", "video2"]
    assert dataset["train"].feature_dim == 8


def test_an_msrvtt_caption_error_names_its_sen_id(tmp_path: Path) -> None:
    annotation = {
        "videos": [{"video_id": "video0", "split": "train"}],
        "sentences": [{"video_id": "video0", "caption": "a dog runs", "sen_id": 17},
                      {"video_id": "video0", "caption": 42, "sen_id": 18}],
    }
    (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps(annotation))
    with pytest.raises(DataValidationError, match=r"caption video0#1 \(sen_id 18\) is int"):
        read_dataset(tmp_path, progress=False)
