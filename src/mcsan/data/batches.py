"""Batches of tensors: the contract between the data layer and the model.

A :class:`Batch` holds B matched (video, caption) pairs, padded, with masks and attribute
targets. Word ids follow :mod:`mcsan.data.vocab` (``WORD_PAD`` pads, ``WORD_UNK`` is unknown).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from mcsan.data.dataset import Split, uniform_indices
from mcsan.data.vocab import WORD_PAD

if TYPE_CHECKING:  # the prepared data is only passed through; importing it pulls in spaCy
    from mcsan.data.caption_parse import CaptionParse
    from mcsan.data.prepare import PreparedData
    from mcsan.data.vocab import AttributeVocab, WordVocab

# Levels the text encoder pools over token spans (``Batch.level_masks``); the relationship
# level reads each relationship's role spans instead (``Batch.role_masks``).
SPAN_LEVELS: tuple[str, ...] = ("entity", "action")



@dataclass
class RoleSwaps:
    """S captions of a batch with subject and object exchanged ("a dog chases a cat" -> "a cat
    chases a dog"): same length, spans and masks as the caption, other words."""

    rows: torch.Tensor  # (S,) int64, the caption's row in the batch
    words: torch.Tensor  # (S, L) int64 word ids of the swapped captions
    tokens: list[list[str]]  # S token lists


@dataclass
class Batch:
    video: torch.Tensor  # (B, T, D) float32 frame features
    video_mask: torch.Tensor  # (B, T) bool, True = real frame
    words: torch.Tensor  # (B, L) int64 word ids, WORD_PAD = padding
    word_mask: torch.Tensor  # (B, L) bool, True = real token
    # token membership in the spans of each of SPAN_LEVELS, level -> (B, L) bool
    # ("entity", "action"); all False when a caption has none of that level
    level_masks: dict[str, torch.Tensor]
    # each relationship's (subject, predicate, object) tokens, (B, R, 3, L) bool; R = the most
    # relationships of one caption in the batch (at least 1), all-False rows are padding
    role_masks: torch.Tensor
    # each relationship's event order in the caption (0: not stated, and padding), (B, R) int64
    relation_orders: torch.Tensor
    # attribute targets per level, level -> (B, V_level) float32 multi-hot
    video_targets: dict[str, torch.Tensor]  # union over all captions of the video
    text_targets: dict[str, torch.Tensor]  # this caption's own attributes
    tokens: list[list[str]]  # the caption tokens (spaCy tokenisation, lower-cased), B lists
    video_ids: list[str]  # B video ids (a video may repeat; see video_keys)
    caption_ids: list[str]  # B caption ids
    regions: torch.Tensor | None = None  # (B, T, R, D_r) optional region features
    # the captions that have a role-swapped reading (see ``role_swap``), for
    # loss.role_swap_negatives; None when no caption of the batch has one
    role_swaps: RoleSwaps | None = None
    # (B,) int64 the video's index in its split (``collate_pairs``): equal rows show one video,
    # and the numbers mean the same in every process of a distributed run
    video_keys: torch.Tensor | None = None

    def rows(self, start: int, stop: int) -> Batch:
        """The pairs ``start:stop`` as a batch of their own (a micro-batch, or one process's
        share of a global batch); padding stays as wide as in the whole batch."""
        swaps = self.role_swaps
        if swaps is not None:
            keep = (swaps.rows >= start) & (swaps.rows < stop)  # (S,)
            kept = keep.nonzero().flatten().tolist()
            swaps = None if not kept else RoleSwaps(
                swaps.rows[keep] - start, swaps.words[keep], [swaps.tokens[i] for i in kept]
            )
        part = self._map(lambda t: t[start:stop], role_swaps=False)
        part.role_swaps = swaps
        part.tokens = self.tokens[start:stop]
        part.video_ids = self.video_ids[start:stop]
        part.caption_ids = self.caption_ids[start:stop]
        return part

    def to(self, device: torch.device | str) -> Batch:
        """A copy on ``device``; from pinned memory (``pin_memory``) the copies to a GPU run
        asynchronously."""
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory; a DataLoader with ``pin_memory=True`` calls this."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, apply: Callable[[torch.Tensor], torch.Tensor], role_swaps: bool = True
             ) -> Batch:
        """Every tensor through ``apply``; the token lists and ids as they are (with
        ``role_swaps`` False the readings are left out)."""

        def each(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else apply(t)

        swaps = self.role_swaps
        return Batch(
            video=each(self.video),
            video_mask=each(self.video_mask),
            words=each(self.words),
            word_mask=each(self.word_mask),
            level_masks={k: each(v) for k, v in self.level_masks.items()},
            role_masks=each(self.role_masks),
            relation_orders=each(self.relation_orders),
            video_targets={k: each(v) for k, v in self.video_targets.items()},
            text_targets={k: each(v) for k, v in self.text_targets.items()},
            tokens=self.tokens,
            video_ids=self.video_ids,
            caption_ids=self.caption_ids,
            regions=each(self.regions),
            role_swaps=None if swaps is None or not role_swaps else RoleSwaps(
                each(swaps.rows), each(swaps.words), swaps.tokens
            ),
            video_keys=each(self.video_keys),
        )


# ----- items: one video, one caption, or a matched pair ---------------------------------------


def clip_frames(frames: np.ndarray, max_frames: int) -> np.ndarray:
    """(frames, dim) -> (min(frames, max_frames), dim) by uniform frame selection."""
    if frames.shape[0] > max_frames:
        frames = frames[uniform_indices(frames.shape[0], max_frames)]
    return frames


class VideoItems(torch.utils.data.Dataset):
    """One item per video of a split: ``{"video": (frames, dim), "video_id"}``."""

    def __init__(self, split: Split, max_frames: int):
        self.split = split
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.split.video_ids)

    def __getitem__(self, index: int) -> dict:
        video_id = self.split.video_ids[index]
        return {
            "video": clip_frames(self.split.video_features(video_id), self.max_frames),
            "video_id": video_id,
        }


class CaptionItems(torch.utils.data.Dataset):
    """One item per caption of a split: tokens, word ids, level token positions, labels."""

    def __init__(self, split: Split, prepared: PreparedData, max_words: int):
        self.split = split
        self.prepared = prepared
        self.max_words = max_words
        self.levels = tuple(prepared.vocabs)
        missing = [c.caption_id for c in split.captions if c.caption_id not in prepared.parses]
        if missing:
            raise KeyError(
                f"{len(missing)} caption(s) of split {split.name!r} have no parse in the prepared "
                f"data (first: {missing[:3]}); run `mcsan prepare` again on this dataset"
            )

    def video_labels(self) -> dict[str, dict[str, list[int]]]:
        """Per video, the union of its captions' attribute ids per level."""
        union: dict[str, dict[str, set[int]]] = {}
        for caption in self.split.captions:
            labels = union.setdefault(caption.video_id, {lv: set() for lv in self.levels})
            for level, ids in self.prepared.targets(caption.caption_id).items():
                labels[level].update(ids)
        return {vid: {lv: sorted(ids) for lv, ids in per.items()} for vid, per in union.items()}

    def __len__(self) -> int:
        return len(self.split.captions)

    def __getitem__(self, index: int) -> dict:
        caption = self.split.captions[index]
        parse = self.prepared.parses[caption.caption_id]
        item = caption_item(parse, self.prepared.vocabs, self.prepared.words, self.max_words)
        item.update(video_id=caption.video_id, caption_id=caption.caption_id)
        return item


def caption_item(
    parse: CaptionParse, vocabs: dict[str, AttributeVocab], words: WordVocab, max_words: int
) -> dict:
    """What ``collate_captions`` needs of one parsed caption, cut to ``max_words`` tokens:
    tokens, word ids, the token positions of each span level and of each relationship's
    roles, and the attribute ids per level (``text_labels``); the caller adds ``video_id`` and
    ``caption_id``."""
    tokens = parse.tokens[:max_words]
    return {
        "tokens": tokens,
        "words": words.encode(tokens),
        "level_tokens": {
            level: sorted({
                i for a in vocabs[level].span_attributes(parse) for i in a.tokens if i < len(tokens)
            })
            for level in SPAN_LEVELS
        },
        "roles": [
            [[i for i in part if i < len(tokens)] for part in relation.roles]
            for relation in parse.relationship
        ],
        "orders": [relation.order for relation in parse.relationship],
        "text_labels": {level: vocab.encode_caption(parse) for level, vocab in vocabs.items()},
    }


class CaptionPairs(torch.utils.data.Dataset):
    """One training item per caption: the caption plus its video's frames and video labels."""

    def __init__(self, split: Split, prepared: PreparedData, max_frames: int, max_words: int):
        self.captions = CaptionItems(split, prepared, max_words)
        self.videos = VideoItems(split, max_frames)
        self.video_index = {vid: i for i, vid in enumerate(split.video_ids)}
        self.video_labels = self.captions.video_labels()

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        item = self.captions[index]
        item["video_index"] = self.video_index[item["video_id"]]
        item.update(self.videos[item["video_index"]])
        item["video_labels"] = self.video_labels[item["video_id"]]
        return item


class NeighbourBatches(torch.utils.data.Sampler):
    """Batches of caption indices in which every random anchor caption meets a caption of its
    video's nearest neighbour: the other video whose entity and action labels (union over its
    captions) are most alike by cosine similarity.

    Videos that share entities and actions but differ in who does what to whom ("a dog chases
    a cat" / "a cat chases a dog") seldom meet in a random batch, so the ranking loss hardly
    sees them as negatives; here they meet in every epoch. Half of each batch are anchors, so
    an epoch (every caption once as an anchor) takes twice the steps of a random one.
    """

    def __init__(
        self,
        pairs: CaptionPairs,
        batch_size: int,
        generator: torch.Generator,
        levels: tuple[str, ...] = ("entity", "action"),
    ):
        if batch_size < 2:
            raise ValueError("neighbour batches need a batch size of at least 2")
        self.anchors_per_batch = batch_size // 2
        self.generator = generator
        video_ids = pairs.captions.split.video_ids
        self.caption_video = [
            pairs.video_index[c.video_id] for c in pairs.captions.split.captions
        ]  # caption index -> video index
        self.video_captions: list[list[int]] = [[] for _ in video_ids]
        for caption_index, video_index in enumerate(self.caption_video):
            self.video_captions[video_index].append(caption_index)
        labels = torch.cat(  # (N, V_entity + V_action)
            [
                multi_hot(
                    [pairs.video_labels.get(vid, {}).get(level, []) for vid in video_ids],
                    len(pairs.captions.prepared.vocabs[level]),
                )
                for level in levels
            ],
            dim=1,
        )
        self.neighbour = nearest_other(labels, has_captions=[bool(c) for c in self.video_captions])

    def __len__(self) -> int:
        return len(self.caption_video) // self.anchors_per_batch

    def __iter__(self):
        order = torch.randperm(len(self.caption_video), generator=self.generator).tolist()
        for batch in range(len(self)):
            anchors = order[batch * self.anchors_per_batch : (batch + 1) * self.anchors_per_batch]
            partners = []
            for anchor in anchors:
                captions = self.video_captions[self.neighbour[self.caption_video[anchor]]]
                pick = int(torch.randint(len(captions), (1,), generator=self.generator))
                partners.append(captions[pick])
            yield anchors + partners


def nearest_other(labels: torch.Tensor, has_captions: list[bool], chunk: int = 1024) -> list[int]:
    """For each row of ``labels`` (N, V) the most cosine-similar other row with captions."""
    unit = torch.nn.functional.normalize(labels, dim=1)  # (N, V)
    allowed = torch.tensor(has_captions)  # (N,)
    if int(allowed.sum()) < 2:
        raise ValueError("neighbour batches need at least two videos with captions")
    neighbours = []
    for start in range(0, unit.shape[0], chunk):
        similarity = unit[start : start + chunk] @ unit.T  # (chunk, N)
        similarity[:, ~allowed] = -math.inf
        rows = torch.arange(similarity.shape[0])
        similarity[rows, rows + start] = -math.inf  # never the video itself
        neighbours.extend(similarity.argmax(dim=1).tolist())
    return neighbours


# ----- role swaps ------------------------------------------------------------------------


def role_swap(item: dict) -> list[int] | None:
    """The caption's token positions with its event's subject and object exchanged, or None.

    The event is the first relationship whose predicate is a verb (its tokens are action
    tokens) and whose subject and object are both named, as many tokens each, apart, and in
    other words ("a creature bites a creature" has no swapped reading). Exchanging the words in
    place keeps every span: in "a cat is chased by a dog" (dog|chase|cat) the swap gives "a dog
    is chased by a cat". Returns the new order of positions: ``words[order]``."""
    actions = set(item["level_tokens"]["action"])
    for subject, predicate, obj in item["roles"]:
        if not (subject and obj and predicate) or not set(predicate) <= actions:
            continue
        if len(subject) != len(obj) or set(subject) & set(obj):
            continue
        if [item["words"][i] for i in subject] == [item["words"][i] for i in obj]:
            continue
        order = list(range(len(item["words"])))
        for a, b in zip(subject, obj, strict=True):
            order[a], order[b] = b, a
        return order
    return None


# ----- collation ---------------------------------------------------------------------------


def collate_videos(items: list[dict]) -> dict:
    """Pad videos: ``video`` (B, T, D) float32, ``video_mask`` (B, T) bool, ``video_ids``."""
    lengths = [item["video"].shape[0] for item in items]
    frames = max(lengths)
    if min(lengths) == frames:  # the usual case: one copy, no zero-filled padding to overwrite
        video = torch.from_numpy(np.stack([item["video"] for item in items]).astype(
            np.float32, copy=False))  # (B, T, D)
        video_mask = torch.ones(len(items), frames, dtype=torch.bool)  # (B, T)
        return {"video": video, "video_mask": video_mask,
                "video_ids": [it["video_id"] for it in items]}
    dim = items[0]["video"].shape[1]
    video = torch.zeros(len(items), frames, dim)  # (B, T, D)
    video_mask = torch.zeros(len(items), frames, dtype=torch.bool)  # (B, T)
    for i, item in enumerate(items):
        n_frames = item["video"].shape[0]
        video[i, :n_frames] = torch.from_numpy(np.ascontiguousarray(item["video"]))
        video_mask[i, :n_frames] = True
    return {"video": video, "video_mask": video_mask, "video_ids": [it["video_id"] for it in items]}


def collate_captions(items: list[dict], attribute_sizes: dict[str, int]) -> dict:
    """Pad captions: ``words``/``word_mask`` (B, L), ``level_masks`` level -> (B, L) bool,
    ``role_masks`` (B, R, 3, L) bool, ``relation_orders`` (B, R) int64, ``text_targets``
    level -> (B, V) multi-hot, plus
    ``tokens``, ``video_ids``, ``caption_ids``.

    Each tensor is filled by one indexed write from flat index lists, not one small write per
    caption: that was most of the collation time."""
    size = len(items)
    lengths = torch.tensor([len(item["words"]) for item in items])  # (B,)
    length = max(1, int(lengths.max()))
    word_mask = torch.arange(length)[None, :] < lengths[:, None]  # (B, L)
    words = torch.full((size, length), WORD_PAD, dtype=torch.long)  # (B, L)
    words[word_mask] = torch.tensor([w for item in items for w in item["words"]], dtype=torch.long)
    level_masks = {
        level: multi_hot([item["level_tokens"][level] for item in items], length, torch.bool)
        for level in SPAN_LEVELS
    }
    relations = max(1, max(len(item["roles"]) for item in items))
    role_masks = torch.zeros(size, relations, 3, length, dtype=torch.bool)  # (B, R, 3, L)
    where = [
        (i, r, role, position)
        for i, item in enumerate(items)
        for r, parts in enumerate(item["roles"])
        for role, positions in enumerate(parts)
        for position in positions
    ]
    if where:
        role_masks[tuple(torch.tensor(where).T)] = True
    relation_orders = torch.zeros(size, relations, dtype=torch.long)  # (B, R)
    ordered = [  # parses of parser 5 have no "orders"; 0 (none stated) needs no write
        (i, r, order)
        for i, item in enumerate(items)
        for r, order in enumerate(item.get("orders", ()))
        if order
    ]
    if ordered:
        i, r, order = torch.tensor(ordered).T
        relation_orders[i, r] = order
    text_targets = {
        level: multi_hot([item["text_labels"][level] for item in items], n)
        for level, n in attribute_sizes.items()
    }
    return {
        "words": words,
        "word_mask": word_mask,
        "level_masks": level_masks,
        "role_masks": role_masks,
        "relation_orders": relation_orders,
        "text_targets": text_targets,
        "tokens": [item["tokens"] for item in items],
        "video_ids": [item["video_id"] for item in items],
        "caption_ids": [item["caption_id"] for item in items],
    }


def multi_hot(
    positions: list[list[int]], width: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(len(positions), width): row i is 1 (True) at each of ``positions[i]``, else 0."""
    out = torch.zeros(len(positions), width, dtype=dtype)  # (N, width)
    rows = [i for i, row in enumerate(positions) for _ in row]
    if rows:
        out[rows, [p for row in positions for p in row]] = 1
    return out


def collate_role_swaps(items: list[dict], length: int) -> RoleSwaps | None:
    """The role-swapped readings of the captions that have one, padded to ``length`` words."""
    rows, words, tokens = [], [], []
    for i, item in enumerate(items):
        if (order := role_swap(item)) is None:
            continue
        swapped = torch.full((length,), WORD_PAD, dtype=torch.long)  # (L,)
        swapped[: len(order)] = torch.tensor([item["words"][j] for j in order], dtype=torch.long)
        rows.append(i)
        words.append(swapped)
        tokens.append([item["tokens"][j] for j in order])
    if not rows:
        return None
    return RoleSwaps(torch.tensor(rows, dtype=torch.long), torch.stack(words), tokens)


def collate_pairs(
    items: list[dict], attribute_sizes: dict[str, int], role_swaps: bool = False
) -> Batch:
    """Pad a list of :class:`CaptionPairs` items into one :class:`Batch`; with ``role_swaps``
    (loss.role_swap_negatives) it carries the captions' role-swapped readings too."""
    videos = collate_videos(items)
    captions = collate_captions(items, attribute_sizes)
    video_targets = {  # level -> (B, V)
        level: multi_hot([item["video_labels"][level] for item in items], n)
        for level, n in attribute_sizes.items()
    }
    return Batch(
        video=videos["video"],
        video_mask=videos["video_mask"],
        words=captions["words"],
        word_mask=captions["word_mask"],
        level_masks=captions["level_masks"],
        role_masks=captions["role_masks"],
        relation_orders=captions["relation_orders"],
        video_targets=video_targets,
        text_targets=captions["text_targets"],
        tokens=captions["tokens"],
        video_ids=captions["video_ids"],
        caption_ids=captions["caption_ids"],
        role_swaps=collate_role_swaps(items, captions["words"].shape[1]) if role_swaps else None,
        video_keys=torch.tensor([item["video_index"] for item in items], dtype=torch.long),
    )
