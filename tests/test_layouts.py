"""Layout readers, writers and detection, on small generated datasets and real MSR-VTT captions."""

from __future__ import annotations

import csv
import json
import multiprocessing
import pickle
import re
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from mcsan.data.dataset import Dataset
from mcsan.data.layouts import (
    HDF5FeatureStore,
    detect_layout,
    read_dataset,
    read_dataset_with_report,
    write_bigfile,
    write_hgr,
)
from mcsan.data.validate import DataValidationError

MSRVTT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "msrvtt"

SPLITS = {"train": ["v0", "v1", "v2", "v3"], "val": ["v4", "v5"], "test": ["v6", "v7"]}
DIMS = {"appearance": 6, "motion": 4}


def make_captions(split_video_ids: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        video_id: [f"a person does thing {i} in way {k}" for k in range(2 + i % 2)]
        for video_ids in split_video_ids.values()
        for i, video_id in enumerate(video_ids)
    }


def make_features(
    split_video_ids: dict[str, list[str]], dims: dict[str, int], seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """feature type -> video -> (frames, dim) float32 with 2..5 frames per video."""
    rng = np.random.default_rng(seed)
    videos = [video_id for ids in split_video_ids.values() for video_id in ids]
    return {
        name: {
            video_id: rng.standard_normal((2 + i % 4, dim)).astype(np.float32)
            for i, video_id in enumerate(videos)
        }
        for name, dim in dims.items()
    }


def assert_matches(
    dataset: Dataset,
    split_video_ids: dict[str, list[str]],
    captions: dict[str, list[str]],
    features: dict[str, dict[str, np.ndarray]],
) -> None:
    """The dataset holds exactly the given ids, captions (in order) and feature arrays."""
    assert sorted(dataset.splits) == sorted(split_video_ids)
    for name, video_ids in split_video_ids.items():
        split = dataset[name]
        assert split.video_ids == video_ids
        assert [c.text for c in split.captions] == [t for v in video_ids for t in captions[v]]
        assert [c.video_id for c in split.captions] == [v for v in video_ids for _ in captions[v]]
        assert split.feature_names == sorted(features)
        for store in split.features:
            assert store.dim == next(iter(features[store.name].values())).shape[1]
            for video_id in video_ids:
                read = store.get(video_id)
                assert read.dtype == np.float32
                np.testing.assert_array_equal(read, features[store.name][video_id])
        concatenated = split.video_features(video_ids[0])
        expected = np.concatenate([features[n][video_ids[0]] for n in sorted(features)], axis=1)
        np.testing.assert_array_equal(concatenated, expected)
    all_ids = [c.caption_id for c in dataset.all_captions()]
    assert len(all_ids) == len(set(all_ids))


@pytest.fixture(scope="module")
def layout_hgr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("hgr") / "dataset"
    captions = make_captions(SPLITS)
    features = make_features(SPLITS, DIMS)
    write_hgr(root, SPLITS, captions, features, progress=False)
    return root, captions, features


@pytest.fixture(scope="module")
def layout_bigfile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("bigfile") / "VisualSearch"
    captions = make_captions(SPLITS)
    features = make_features(SPLITS, DIMS, seed=1)
    write_bigfile(root, "tiny", SPLITS, captions, features, progress=False)
    return root, captions, features


def write_msrvtt(root: Path, with_features: bool = True) -> dict[str, list[str]]:
    """Official-format JSON (train/val zipped, test plain), a 1k-A CSV and features."""
    split_of = {"v0": "train", "v1": "train", "v2": "validate", "v3": "test", "v4": "test"}
    videos = [{"video_id": v, "split": s, "id": i} for i, (v, s) in enumerate(split_of.items())]
    captions = {v: [f"caption {k} of {v}" for k in range(3)] for v in split_of}

    def annotation(keep: set[str]) -> dict:
        sentences = [
            {"sen_id": n, "video_id": v, "caption": text}
            for n, (v, texts) in enumerate(captions.items())
            for text in texts
            if v in keep
        ]
        return {"videos": [v for v in videos if v["video_id"] in keep], "sentences": sentences}

    root.mkdir(parents=True)
    with zipfile.ZipFile(root / "train_val_annotation.zip", "w") as archive:
        train_val = annotation({"v0", "v1", "v2"})
        archive.writestr("train_val_videodatainfo.json", json.dumps(train_val))
    (root / "test_videodatainfo.json").write_text(json.dumps(annotation({"v3", "v4"})))
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        writer.writerow(["ret0", "msr4", "v4", "a sentence, with a comma"])
        writer.writerow(["ret1", "msr3", "v3", "another one"])
    if with_features:
        rng = np.random.default_rng(2)
        (root / "features" / "resnet").mkdir(parents=True)
        with h5py.File(root / "features" / "clip.hdf5", "w") as file:
            for v in split_of:
                np.save(root / "features" / "resnet" / f"{v}.npy", rng.random((3, 5)))
                file.create_dataset(v, data=rng.random((4, 2), dtype=np.float32))
    return captions


def write_vatex(root: Path) -> None:
    root.mkdir(parents=True)
    train = [
        {
            "videoID": f"t{i}_000001_000011",
            "enCap": [f"en {i} {k}" for k in range(10)],
            "chCap": ["中文"] * 10,
        }
        for i in range(3)
    ]
    val = [{"videoID": "va_000002_000012", "enCap": [f"val {k}" for k in range(10)], "chCap": []}]
    test = [{"videoID": "te_000003_000013", "chCap": []}]
    for name, items in (
        ("vatex_training_v1.0.json", train),
        ("vatex_validation_v1.0.json", val),
        ("vatex_public_test_english_v1.1.json", test),
    ):
        (root / name).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    directory = root / "features" / "i3d"
    directory.mkdir(parents=True)
    for item in train + val + test:
        # the official I3D files carry a leading axis of 1: (1, frames, 1024); here dim 8
        np.save(directory / f"{item['videoID']}.npy", np.ones((1, 6, 8), np.float32))


# --------------------------------------------------------------------------- round trips


def test_hgr_round_trip(layout_hgr: tuple[Path, dict, dict]) -> None:
    root, captions, features = layout_hgr
    dataset = read_dataset(root, progress=False)
    assert dataset.layout == "hgr"
    assert_matches(dataset, SPLITS, captions, features)
    assert dataset["train"].captions[1].caption_id == "v0#1"
    # mean-pooled rows are written in split-file order
    pooled = np.load(root / "ordered_feature" / "MP" / "motion" / "val_ft.npy")
    np.testing.assert_allclose(pooled[1], features["motion"]["v5"].mean(axis=0), rtol=1e-6)


def test_bigfile_round_trip(layout_bigfile: tuple[Path, dict, dict]) -> None:
    root, captions, features = layout_bigfile
    assert sorted(p.name for p in root.iterdir()) == ["tinytest", "tinytrain", "tinyval"]
    dataset = read_dataset(root, progress=False)
    assert dataset.layout == "bigfile"
    assert_matches(dataset, SPLITS, captions, features)
    first_line = (root / "tinyval" / "TextData" / "tinyval.caption.txt").read_text().split("\n")[0]
    assert first_line == f"v4#enc#0 {captions['v4'][0]}"
    assert dataset["val"].captions[0].caption_id == "v4#0"


def test_bigfile_reads_python_literal_video2frames_and_single_collection(
    layout_bigfile: tuple[Path, dict, dict], tmp_path: Path
) -> None:
    source, captions, features = layout_bigfile
    collection = tmp_path / "tinyval"
    shutil.copytree(source / "tinyval", collection)
    mapping_path = collection / "FeatureData" / "motion" / "video2frames.txt"
    mapping = json.loads(mapping_path.read_text())
    mapping_path.write_text(repr(mapping))  # the original code wrote str(dict): single quotes
    assert "'" in mapping_path.read_text()
    dataset = read_dataset(collection, features=["motion"], progress=False)
    assert list(dataset.splits) == ["val"]
    np.testing.assert_array_equal(dataset["val"].video_features("v5"), features["motion"]["v5"])


def test_hgr_uses_mean_pooled_rows_when_a_type_has_no_frame_features(tmp_path: Path) -> None:
    root = tmp_path / "hgr"
    captions = make_captions(SPLITS)
    features = make_features(SPLITS, DIMS)
    write_hgr(root, SPLITS, captions, features, progress=False)
    shutil.rmtree(root / "ordered_feature" / "SA" / "motion")
    dataset = read_dataset(root, features=["appearance", "motion"], progress=False)
    split = dataset["test"]
    assert split.feature_names == ["appearance", "motion"]
    motion = split.features[1].get("v7")
    assert motion.shape == (1, 4)
    np.testing.assert_allclose(motion[0], features["motion"]["v7"].mean(axis=0), rtol=1e-6)
    # the one pooled frame is repeated to the appearance frame count when concatenated
    combined = split.video_features("v7")
    appearance = features["appearance"]["v7"]
    assert combined.shape == (appearance.shape[0], 10)
    np.testing.assert_array_equal(combined[:, :6], appearance)
    np.testing.assert_array_equal(combined[:, 6:], np.repeat(motion, appearance.shape[0], axis=0))


def test_msrvtt_layout_with_features(tmp_path: Path) -> None:
    root = tmp_path / "msrvtt"
    captions = write_msrvtt(root)
    assert detect_layout(root) == "msrvtt"
    dataset = read_dataset(root, progress=False)
    assert {name: s.video_ids for name, s in dataset.splits.items()} == {
        "train": ["v0", "v1"],
        "val": ["v2"],
        "test": ["v3", "v4"],
        "test_1k": ["v4", "v3"],
    }
    assert [c.text for c in dataset["val"].captions] == captions["v2"]
    assert dataset["val"].captions[2].caption_id == "v2#2"
    one_k = dataset["test_1k"].captions
    assert [(c.caption_id, c.text) for c in one_k] == [
        ("v4#ret0", "a sentence, with a comma"),
        ("v3#ret1", "another one"),
    ]
    assert dataset["train"].feature_names == ["clip", "resnet"]
    assert dataset["train"].feature_dim == 7
    chosen = read_dataset(root, features=["resnet", "clip"], progress=False)
    values = chosen["test"].video_features("v3")
    assert values.shape == (3, 7) and values.dtype == np.float32
    np.testing.assert_allclose(values[:, :5], np.load(root / "features" / "resnet" / "v3.npy"))


def test_msrvtt_without_features_is_text_only(tmp_path: Path) -> None:
    root = tmp_path / "msrvtt"
    write_msrvtt(root, with_features=False)
    dataset = read_dataset(root, progress=False)
    assert all(not split.features for split in dataset)
    assert len(dataset.all_captions()) == 5 * 3 + 2
    with pytest.raises(DataValidationError, match="features.*not found.*requested"):
        read_dataset(root, features=["resnet"], progress=False)


def test_vatex_layout(tmp_path: Path) -> None:
    root = tmp_path / "vatex"
    write_vatex(root)
    assert detect_layout(root) == "vatex"
    dataset, report = read_dataset_with_report(root, progress=False)
    assert sorted(dataset.splits) == ["test", "train", "val"]
    assert len(dataset["train"].captions) == 30
    assert dataset["train"].captions[10].caption_id == "t1_000001_000011#0"
    assert dataset["test"].video_ids == ["te_000003_000013"]
    assert dataset["test"].captions == []
    assert any("'test'" in w and "no captions" in w for w in report.warnings)
    assert dataset["val"].video_features("va_000002_000012").shape == (6, 8)


@pytest.mark.parametrize("layout", ["hgr", "bigfile", "msrvtt", "vatex"])
def test_detect_layout(
    layout: str,
    layout_hgr: tuple[Path, dict, dict],
    layout_bigfile: tuple[Path, dict, dict],
    tmp_path: Path,
) -> None:
    roots = {"hgr": layout_hgr[0], "bigfile": layout_bigfile[0]}
    if layout == "msrvtt":
        write_msrvtt(tmp_path / "m", with_features=False)
        roots["msrvtt"] = tmp_path / "m"
    if layout == "vatex":
        write_vatex(tmp_path / "x")
        roots["vatex"] = tmp_path / "x"
    assert detect_layout(roots[layout]) == layout
    assert read_dataset(roots[layout], progress=False).layout == layout


def test_detect_layout_names_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataValidationError) as error:
        detect_layout(tmp_path)
    message = str(error.value)
    for expected in ("ref_captions.json", "FeatureData", "videodatainfo", "vatex_", "notes.txt"):
        assert expected in message
    with pytest.raises(DataValidationError, match="not found"):
        detect_layout(tmp_path / "missing")


def test_detect_layout_refuses_ambiguous_roots(tmp_path: Path) -> None:
    write_vatex(tmp_path / "both")
    (tmp_path / "both" / "test_videodatainfo.json").write_text('{"videos": [], "sentences": []}')
    with pytest.raises(DataValidationError, match="several dataset layouts.*msrvtt.*vatex"):
        detect_layout(tmp_path / "both")


def test_unknown_feature_type_lists_available(layout_hgr: tuple[Path, dict, dict]) -> None:
    with pytest.raises(DataValidationError, match=r"\['flow'\] not found.*appearance.*motion"):
        read_dataset(layout_hgr[0], features=["flow"], progress=False)


# --------------------------------------------------------------------------- laziness, pickling


def _read_in_child(payload: bytes) -> np.ndarray:
    store = pickle.loads(payload)
    return store.get("v2")


def test_hdf5_store_pickles_after_use_and_reads_in_a_forked_worker(
    layout_hgr: tuple[Path, dict, dict],
) -> None:
    root, _, features = layout_hgr
    dataset = read_dataset(root, progress=False)
    store = dataset["train"].features[0]
    assert isinstance(store, HDF5FeatureStore)
    expected = features[store.name]["v2"]
    np.testing.assert_array_equal(store.get("v2"), expected)  # opens the file in this process
    payload = pickle.dumps(store)
    assert len(payload) < 10_000  # ids and shapes only, no features, no open handle
    np.testing.assert_array_equal(pickle.loads(payload).get("v2"), expected)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        from_child = pool.map(_read_in_child, [payload])[0]
    np.testing.assert_array_equal(from_child, expected)


def test_every_store_pickles_and_reads(layout_bigfile: tuple[Path, dict, dict], tmp_path) -> None:
    write_msrvtt(tmp_path / "m")
    for root in (layout_bigfile[0], tmp_path / "m"):
        dataset = read_dataset(root, progress=False)
        split = next(iter(dataset))
        for store in split.features:
            video_id = split.video_ids[0]
            copy = pickle.loads(pickle.dumps(store))
            np.testing.assert_array_equal(copy.get(video_id), store.get(video_id))


def test_bigfile_features_are_memory_mapped_not_loaded(
    layout_bigfile: tuple[Path, dict, dict],
) -> None:
    dataset = read_dataset(layout_bigfile[0], check_values=False, progress=False)
    store = dataset["train"].features[0]
    assert store._matrix._handle is None  # nothing opened until a video is requested
    store.get("v1")
    assert isinstance(store._matrix._handle, np.memmap)


def segment_features(path: Path, segments: int) -> dict[str, np.ndarray]:
    """Rewrite an HDF5 feature file as ``mcsan extract`` leaves it after adding videos: the
    videos spread over ``.<name>.segments/<n>.hdf5`` and ``path`` one external link per video."""
    with h5py.File(path, "r") as file:
        values = {key: file[key][()] for key in file}
    directory = path.with_name(f".{path.stem}.segments")
    directory.mkdir()
    where = {video_id: f"{i % segments}.hdf5" for i, video_id in enumerate(values)}
    for video_id, name in where.items():
        with h5py.File(directory / name, "a") as segment:
            segment.create_dataset(video_id, data=values[video_id])
    with h5py.File(path, "w") as file:
        for video_id, name in where.items():
            file[video_id] = h5py.ExternalLink(f"{directory.name}/{name}", f"/{video_id}")
    return values


def test_hdf5_store_reads_external_links_to_segment_files(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "msrvtt"
    write_msrvtt(root)
    expected = segment_features(root / "features" / "clip.hdf5", segments=2)
    elsewhere = tmp_path / "elsewhere"  # segments are found beside the file, not in the cwd
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = read_dataset(root, features=["clip"], progress=False)["train"].features[0]
    assert isinstance(store, HDF5FeatureStore)
    assert store.dim == 2
    for video_id, values in expected.items():
        assert store.shape(video_id) == values.shape
        np.testing.assert_array_equal(store.get(video_id), values)
    payload = pickle.dumps(store)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        from_child = pool.map(_read_in_child, [payload])[0]
    np.testing.assert_array_equal(from_child, expected["v2"])


def test_a_missing_segment_file_is_named(tmp_path: Path) -> None:
    root = tmp_path / "msrvtt"
    write_msrvtt(root)
    expected = segment_features(root / "features" / "clip.hdf5", segments=2)
    segment = root / "features" / ".clip.segments" / "1.hdf5"  # v1 and v3
    segment.unlink()
    missing = f"v1 links to {re.escape(str(segment))}, which cannot be opened"
    with pytest.raises(DataValidationError, match=missing):
        read_dataset(root, features=["clip"], progress=False)
    dataset, report = read_dataset_with_report(
        root, features=["clip"], skip_invalid=True, progress=False
    )
    assert dataset["train"].video_ids == ["v0"]
    assert any(f"v3 links to {segment}, which" in item.reason for item in report.skipped)
    store = dataset["train"].features[0]
    np.testing.assert_array_equal(store.get("v0"), expected["v0"])
    with pytest.raises(OSError, match=missing):
        store.get("v1")


# --------------------------------------------------------------------------- writers


def test_writers_stream_one_video_at_a_time(tmp_path: Path) -> None:
    videos = {"train": [f"v{i}" for i in range(60)], "test": [f"w{i}" for i in range(20)]}
    frames, dim = 16, 512  # 32 KiB per video, 2.5 MiB in all
    calls: list[str] = []

    def extract(video_id: str) -> np.ndarray:
        calls.append(video_id)
        seed = int(video_id[1:]) + (1000 if video_id[0] == "w" else 0)
        return np.random.default_rng(seed).standard_normal((frames, dim)).astype(np.float32)

    tracemalloc.start()
    write_hgr(tmp_path / "hgr", videos, {}, {"cnn": extract}, progress=False)
    write_bigfile(tmp_path / "vs", "big", videos, {}, {"cnn": extract}, progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000, f"peak {peak} bytes: features are being accumulated"
    assert calls == (videos["train"] + videos["test"]) * 2
    hgr = read_dataset(tmp_path / "hgr", progress=False)
    np.testing.assert_array_equal(hgr["test"].features[0].get("w3"), extract("w3"))


def test_interrupted_write_leaves_no_dataset(tmp_path: Path) -> None:
    def failing(video_id: str) -> np.ndarray:
        if video_id == "v5":
            raise RuntimeError("decoder crashed")
        return np.ones((2, 3), np.float32)

    for write in (
        lambda: write_hgr(tmp_path / "hgr", SPLITS, {}, {"cnn": failing}, progress=False),
        lambda: write_bigfile(tmp_path / "vs", "c", SPLITS, {}, {"cnn": failing}, progress=False),
    ):
        with pytest.raises(RuntimeError, match="decoder crashed"):
            write()
    assert list(tmp_path.rglob("*")) == [tmp_path / "vs"]  # the BigFile root, empty


def test_hgr_extra_files_arrive_with_the_dataset(tmp_path: Path) -> None:
    captions, features = make_captions(SPLITS), make_features(SPLITS, {"cnn": 3})
    root = write_hgr(
        tmp_path / "hgr", SPLITS, captions, features, progress=False,
        extra_files={"notes.json": '{"a": 1}\n'},
    )  # fmt: skip
    assert (root / "notes.json").read_text() == '{"a": 1}\n'
    with pytest.raises(ValueError, match="plain file name"):
        write_hgr(
            tmp_path / "other", SPLITS, captions, features, progress=False,
            extra_files={"../escape.json": "{}"},
        )  # fmt: skip
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "other").exists()


def test_writers_refuse_to_overwrite_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "hgr"
    captions = make_captions(SPLITS)
    features = make_features(SPLITS, {"cnn": 3})
    write_hgr(root, SPLITS, captions, features, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_hgr(root, SPLITS, captions, features, progress=False)
    new_captions = {video_id: ["a new caption"] for video_id in captions}
    write_hgr(root, SPLITS, new_captions, features, progress=False, overwrite=True)
    assert read_dataset(root, progress=False)["val"].captions[0].text == "a new caption"
    assert [p.name for p in tmp_path.iterdir()] == ["hgr"]

    write_bigfile(tmp_path / "vs", "c", SPLITS, captions, features, progress=False)
    with pytest.raises(FileExistsError, match="ctrain"):
        write_bigfile(tmp_path / "vs", "c", SPLITS, captions, features, progress=False)


def test_writers_reject_bad_input(tmp_path: Path) -> None:
    captions = make_captions(SPLITS)
    good = make_features(SPLITS, {"cnn": 3})
    bad_shape = {**good["cnn"], "v2": np.ones((0, 3))}
    bad_dim = {**good["cnn"], "v2": np.ones((2, 4))}
    cases = [
        ({"training": ["v0"]}, captions, good, "splits must be among"),
        (SPLITS, {**captions, "stray": ["x"]}, good, "in no split"),
        (SPLITS, captions, {"cnn": {"v0": np.ones((2, 3))}}, "no entry for video 'v1'"),
        (SPLITS, captions, {"cnn": bad_shape}, "shape \\(0, 3\\)"),
        (SPLITS, captions, {"cnn": bad_dim}, "dimension 4, earlier videos 3"),
        (SPLITS, {**captions, "v1": ["two\nlines"]}, good, "one line"),
    ]
    for splits, texts, features, message in cases:
        with pytest.raises(ValueError, match=message):
            write_hgr(tmp_path / "out", splits, texts, features, progress=False)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- real MSR-VTT


@pytest.fixture(scope="module")
def real_msrvtt() -> Dataset:
    return read_dataset(MSRVTT_DIR, progress=False)


def test_real_msrvtt_annotation(real_msrvtt: Dataset) -> None:
    assert detect_layout(MSRVTT_DIR) == "msrvtt"
    counts = {name: (len(s.video_ids), len(s.captions)) for name, s in real_msrvtt.splits.items()}
    assert counts == {
        "train": (6513, 130_260),
        "val": (497, 9_940),
        "test": (2990, 59_800),
        "test_1k": (1000, 1000),
    }
    assert len(real_msrvtt["train"].video_ids) + len(real_msrvtt["val"].video_ids) == 7010
    assert real_msrvtt["train"].video_ids[0] == "video0"
    assert real_msrvtt["val"].video_ids[0] == "video6513"
    assert set(real_msrvtt["test_1k"].video_ids) <= set(real_msrvtt["test"].video_ids)
    first = real_msrvtt["test_1k"].captions[0]
    assert (first.caption_id, first.video_id) == ("video9770#ret0", "video9770")
    assert all(not split.features for split in real_msrvtt)

