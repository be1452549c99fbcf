"""Evaluation: encode a split once, then score every caption against every video in chunks.

Results hold text→video and video→text R@1/5/10, MedR, MnR and rsum for the fused score and for
each level alone, plus attribute-prediction mAP per level, and name the protocol they follow.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

# not tqdm.auto: its bar calls iter() on a DataLoader when built, and the loop iterates again,
# so workers started twice and the shuffle order depended on train.num_workers (tqdm#1598)
from tqdm import tqdm

from mcsan.checkpoint import Checkpoint, load_checkpoint
from mcsan.config import Config
from mcsan.data.batches import (
    CaptionItems,
    VideoItems,
    collate_captions,
    collate_videos,
    multi_hot,
)
from mcsan.data.dataset import Dataset, Split
from mcsan.data.layouts import MSRVTT_1K_SPLIT, read_dataset
from mcsan.data.prepare import PreparedData, load_prepared
from mcsan.factory import model_from_checkpoint
from mcsan.metrics import attribute_map, format_table, per_level_metrics, retrieval_metrics
from mcsan.model.mcsan import MCSAN
from mcsan.runtime import loader_workers, resolve_device


def load_trained(
    checkpoint: Path | Checkpoint, prepared: PreparedData, device: torch.device | str = "cpu"
) -> tuple[MCSAN, Config]:
    """Rebuild a saved model (from its directory or a loaded :class:`Checkpoint`);
    ``prepared`` must hold the vocabularies it was trained with."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    model, vocabularies = model_from_checkpoint(checkpoint)
    if not vocabularies.same_labels(prepared.vocabularies()):
        raise ValueError(
            f"the checkpoint's vocabularies differ from those of the prepared data at "
            f"{prepared.out_dir}; evaluate with the prepared directory the model was trained "
            "with (--prepared)"
        )
    return model.to(device), checkpoint.config


def load_checkpoint_with_data(
    checkpoint: Path | Checkpoint,
    *,
    data_root: Path | None = None,
    prepared_dir: Path | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    splits: Collection[str] | None = None,
) -> tuple[MCSAN, Config, Dataset, PreparedData]:
    """A saved model with the dataset and prepared data it is evaluated on (by default the ones
    it was trained on, as named in its config); ``splits`` limits the parses loaded."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    config = checkpoint.config
    root = data_root or config.data.root
    if not root or not Path(root).is_dir():
        raise FileNotFoundError(
            f"the dataset of {checkpoint.directory} ({root or 'not recorded'}) is not there; "
            "name it with --data DIR, and its prepared captions with --prepared DIR"
        )
    dataset = read_dataset(
        root,
        config.data.layout,
        features=config.data.features or None,
        skip_invalid=config.data.skip_invalid,
        check_values=config.data.check_values,
        progress=progress,
    )
    prepared = load_prepared(Path(prepared_dir or config.data.prepared), dataset, splits)
    model, config = load_trained(checkpoint, prepared, device)
    return model, config, dataset, prepared


def evaluate_checkpoint(
    checkpoint_dir: Path,
    *,
    split: str | None = None,
    data_root: Path | None = None,
    prepared_dir: Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Evaluate a checkpoint directory on one split of its dataset (or of ``data_root``)."""
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(checkpoint_dir)
    split_name = split or checkpoint.config.eval.split
    model, config, dataset, prepared = load_checkpoint_with_data(
        checkpoint,
        data_root=data_root,
        prepared_dir=prepared_dir,
        device=torch_device,
        progress=progress,
        splits=[split_name],
    )
    encoded = encode_split(model, dataset[split_name], prepared, config, torch_device, progress)
    results = evaluate_encoded(encoded, model, config, split_name)
    results["checkpoint"] = str(checkpoint_dir)
    return results


# MSR-VTT's 1k-A test: 1,000 videos of the official test split, one caption each (JSFusion's list)
ONE_K_A_PROTOCOL = "msrvtt-1k-A (1,000 test videos, one caption each)"


@dataclass
class EncodedSplit:
    video_ids: list[str]
    caption_ids: list[str]
    caption_to_video: torch.Tensor  # (M,) index of each caption's video in video_ids
    video_emb: dict[str, torch.Tensor]  # level -> (N, E), L2-normalised
    text_emb: dict[str, torch.Tensor]  # level -> (M, E), L2-normalised
    video_attr_logits: dict[str, torch.Tensor]  # level -> (N, V)
    text_attr_logits: dict[str, torch.Tensor]  # level -> (M, V)
    video_targets: dict[str, torch.Tensor]  # level -> (N, V) bool, union over captions
    text_targets: dict[str, torch.Tensor]  # level -> (M, V) bool


@torch.no_grad()
def encode_split(
    model: MCSAN,
    split: Split,
    prepared: PreparedData,
    config: Config,
    device: torch.device,
    progress: bool = True,
) -> EncodedSplit:
    """Encode every video and every caption of ``split`` once (no pairwise work here).

    Each output is allocated once at its full size and filled batch by batch: no list of
    chunks to concatenate, which would hold every output twice (MSR-VTT's full test split:
    59,800 captions, about 1 GB of logits and embeddings at 256-d)."""
    model.eval()
    attribute_sizes = {lv: len(v) for lv, v in prepared.vocabs.items()}
    batch_size = config.eval.batch_size
    workers = loader_workers(config.train.num_workers, device)

    videos = VideoItems(split, config.data.max_frames)
    video_emb, video_logits = _Rows(len(videos)), _Rows(len(videos))
    loader = DataLoader(videos, batch_size=batch_size, collate_fn=collate_videos, num_workers=workers)
    for batch in tqdm(loader, desc=f"encode {split.name} videos", disable=not progress, leave=False):
        emb = model.encode_video(batch["video"].to(device), batch["video_mask"].to(device))
        video_emb.add(emb)
        video_logits.add(model.predict_attributes(emb, modality="video"))

    captions = CaptionItems(split, prepared, config.data.max_words)
    text_emb, text_logits = _Rows(len(captions)), _Rows(len(captions))
    text_targets = _Rows(len(captions), torch.bool)
    loader = DataLoader(
        captions,
        batch_size=batch_size,
        collate_fn=partial(collate_captions, attribute_sizes=attribute_sizes),
        num_workers=workers,
    )
    for batch in tqdm(loader, desc=f"encode {split.name} captions", disable=not progress, leave=False):
        level_masks = {lv: m.to(device) for lv, m in batch["level_masks"].items()}
        emb = model.encode_text(
            batch["words"].to(device),
            batch["word_mask"].to(device),
            level_masks,
            batch["role_masks"].to(device),
            batch["tokens"],
            batch["relation_orders"].to(device),
        )
        text_emb.add(emb)
        text_logits.add(model.predict_attributes(emb, modality="text"))
        text_targets.add(batch["text_targets"])

    video_index = {vid: i for i, vid in enumerate(split.video_ids)}
    caption_to_video = torch.tensor([video_index[c.video_id] for c in split.captions])
    video_labels = captions.video_labels()  # a video without captions has none
    video_targets = {  # level -> (N, V)
        level: multi_hot([video_labels.get(vid, {}).get(level, []) for vid in split.video_ids],
                         n, torch.bool)
        for level, n in attribute_sizes.items()
    }
    return EncodedSplit(
        video_ids=list(split.video_ids),
        caption_ids=[c.caption_id for c in split.captions],
        caption_to_video=caption_to_video,
        video_emb=video_emb.filled(),
        text_emb=text_emb.filled(),
        video_attr_logits=video_logits.filled(),
        text_attr_logits=text_logits.filled(),
        video_targets=video_targets,
        text_targets=text_targets.filled(),
    )


def evaluate_encoded(encoded: EncodedSplit, model: MCSAN, config: Config, split_name: str) -> dict:
    """Fused and per-level retrieval metrics plus attribute mAP, as a JSON-ready dict."""
    weights = model.level_weights
    results = {
        "protocol": ONE_K_A_PROTOCOL if split_name == MSRVTT_1K_SPLIT else config.eval.protocol,
        "split": split_name,
        "videos": len(encoded.video_ids),
        "captions": len(encoded.caption_ids),
        "fused": retrieval_metrics(
            encoded.text_emb,
            encoded.video_emb,
            encoded.caption_to_video,
            level_weights=weights,
            chunk_size=config.eval.chunk_size,
        ),
        "levels": per_level_metrics(
            encoded.text_emb,
            encoded.video_emb,
            encoded.caption_to_video,
            chunk_size=config.eval.chunk_size,
        ),
        "attributes": {},
    }
    for level, logits in encoded.video_attr_logits.items():
        results["attributes"][level] = {
            "video_map": attribute_map(logits, encoded.video_targets[level]),
            "text_map": attribute_map(encoded.text_attr_logits[level], encoded.text_targets[level]),
        }
    return results


def write_results(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def results_table(results: dict) -> str:
    """The fused row and one row per level, then attribute mAP per level."""
    lines = [
        f"{results['split']} split, protocol {results['protocol']}: "
        f"{results['captions']} captions x {results['videos']} videos",
        format_table({"fused": results["fused"], **results["levels"]}),
    ]
    for level, maps in results.get("attributes", {}).items():
        shown = {side: "undefined (no positive label in this split)" if maps[side] is None
                 else f"{maps[side]:5.1f}" for side in ("video_map", "text_map")}
        lines.append(
            f"attribute mAP {level:<12} video {shown['video_map']}   text {shown['text_map']}"
        )
    return "\n".join(lines)


class _Rows:
    """``key -> (rows, ...)`` CPU tensors of ``dtype``, each allocated at its full size on the
    first batch and filled in batch order."""

    def __init__(self, rows: int, dtype: torch.dtype = torch.float32) -> None:
        self.rows, self.dtype = rows, dtype
        self.count = 0  # rows filled so far
        self.tensors: dict[str, torch.Tensor] = {}

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Append one batch: ``key -> (b, ...)``, the same ``b`` for every key."""
        size = 0
        for key, value in batch.items():
            if key not in self.tensors:
                self.tensors[key] = torch.empty(self.rows, *value.shape[1:], dtype=self.dtype)
            size = value.shape[0]
            self.tensors[key][self.count : self.count + size] = value.detach()
        self.count += size

    def filled(self) -> dict[str, torch.Tensor]:
        """The tensors ({} when every batch was empty: a model without attribute heads)."""
        if self.tensors and self.count != self.rows:
            raise RuntimeError(f"expected {self.rows} rows, the loader gave {self.count}")
        return self.tensors
