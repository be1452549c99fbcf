"""Video side of MCSAN: the spatial-temporal semantic learning structure.

One shared trunk turns frame features into contextualised frame states; each semantic level then
reads them its own way and ends in one embedding per video:

    frames (B, T, D) --norm, project, + time encoding--> x (B, T, H)
                     --1-layer temporal transformer-----> context (B, T, H)
    global       attention pooling over context
    entity       learned entity queries attend over context (or over region features) -> slots;
                 with ``model.entity_order_blind`` over the projected frames as a set instead
    action       frame differences + temporal convolution -> motion; action queries attend -> slots
    relationship K triple queries, each a (subject, predicate, object) trio of queries: subject
                 and object attend like entity queries, the predicate over the motion; each trio
                 is concatenated in role order and mapped to one triple state; pooled

The relationship level keeps roles apart by position, not by content: the subject query of a
trio is a different parameter from its object query, and concatenation keeps which is which,
so "a dog chases a cat" and "a cat chases a dog" give different triples even though their
entities, action and frame average are the same. The text side builds its triples the same way
from the parse's subject / predicate / object spans (:class:`TripleEncoder` on both sides).
Every subject and object slot carries the attention-weighted time encoding of the frames it
looked at, so who appears first or leads is visible to the triple. Levels are separate
embeddings, so scoring stays one dot product per level (no pairwise video-text
cross-attention). Only the levels in ``config.levels`` get modules.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mcsan.config import ModelConfig
from mcsan.model.blocks import AttentionPool, Dropout, TripleEncoder


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Transformer time encoding of positions 0..length-1.  Returns (length, dim)."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]  # (T, 1)
    frequency = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )  # (ceil(dim/2),)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


def attention_heads(dim: int) -> int:
    """The largest of 8, 4, 2, 1 heads that divides ``dim``."""
    return next(h for h in (8, 4, 2, 1) if dim % h == 0)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the frames, batch first, with a key padding mask.

    The parameters, their names and their initialisation are those of ``nn.MultiheadAttention``
    (checkpoints of either load into the other); the layout stays (B, heads, T, d) from the
    input projection to the output, where torch's module works sequence first and copies.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))  # query, key, value
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)
        self.dropout = Dropout(dropout)
        self.scale = (dim // heads) ** -0.5

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, T, H), mask (B, T) bool, True at real frames -> (B, T, H)
        batch, length, dim = x.shape
        qkv = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3H)
        qkv = qkv.view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # (B, heads, T, d) each
        scores = (query * self.scale) @ key.transpose(-1, -2)  # (B, heads, T, T)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        weights = self.dropout(scores.softmax(dim=-1))  # (B, heads, T, T)
        attended = (weights @ value).transpose(1, 2).reshape(batch, length, dim)  # (B, T, H)
        return self.out_proj(attended)


class TemporalLayer(nn.Module):
    """A pre-norm transformer encoder layer (GELU feed-forward of twice the width).

    The function, parameter names and initialisation of ``nn.TransformerEncoderLayer(dim,
    heads, 2 * dim, dropout, "gelu", batch_first=True, norm_first=True)``, built from
    :class:`SelfAttention` and the CPU-cheap :class:`Dropout` (checkpoints load unchanged).
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, 2 * dim)
        self.linear2 = nn.Linear(2 * dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)  # inside the feed-forward
        self.dropout1 = Dropout(dropout)  # on the attention's output
        self.dropout2 = Dropout(dropout)  # on the feed-forward's output

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, T, H), mask (B, T) bool, True at real frames -> (B, T, H)
        x = x + self.dropout1(self.self_attn(self.norm1(x), mask))
        hidden = self.dropout(nn.functional.gelu(self.linear1(self.norm2(x))))  # (B, T, 2H)
        return x + self.dropout2(self.linear2(hidden))


class SlotAttention(nn.Module):
    """K learned queries attend over a token sequence; each returns a slot and its soft time.

    Keys and values are linear maps of the tokens, but applied where they are cheap: the key map
    moves to the query side (q . Wk x = (q Wk) . x) and the value map is applied after pooling
    (sum_n a_n (Wv x_n + b) = Wv (sum_n a_n x_n) + b, the weights summing to one). The function
    is the usual single-head cross-attention; the cost per video is O(K * H^2), not O(T * H^2).
    """

    def __init__(self, num_slots: int, token_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        if num_slots < 1:
            raise ValueError(f"need at least one query per slot branch, got {num_slots}")
        self.queries = nn.Parameter(torch.randn(num_slots, dim))  # (K, H)
        self.key = nn.Linear(token_dim, dim, bias=False)  # a key bias cancels in the softmax
        self.value = nn.Linear(token_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.out_norm = nn.LayerNorm(dim)
        self.scale = dim**-0.5

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, times: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # tokens (B, N, Din), mask (B, N) bool, times (1, N, H) time encoding of each token
        # -> slots (B, K, H), slot_times (B, K, H)
        query_keys = self.queries @ self.key.weight  # (K, Din)
        scores = torch.matmul(query_keys, tokens.transpose(1, 2)) * self.scale  # (B, K, N)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, K, N)
        slots = self.value(weights @ tokens)  # (B, K, H)
        slots = self.out_norm(slots + self.mlp(self.norm(slots)))  # (B, K, H)
        slot_times = weights @ times.expand(tokens.shape[0], -1, -1)  # (B, K, H)
        return slots, slot_times


class MotionEncoder(nn.Module):
    """The temporal branch: frame differences beside the context, a depthwise temporal conv."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.temporal_conv = nn.Conv1d(2 * dim, 2 * dim, kernel_size=3, padding=1, groups=2 * dim)
        self.norm = nn.LayerNorm(2 * dim)
        self.dropout = Dropout(dropout)

    def forward(
        self, frames: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # frames (B, T, H) projected frames, context (B, T, H), mask (B, T) -> motion (B, T, 2H)
        keep = mask[..., None].to(frames.dtype)  # (B, T, 1)
        step = (frames[:, 1:] - frames[:, :-1]) * keep[:, 1:] * keep[:, :-1]  # (B, T-1, H)
        difference = torch.cat([torch.zeros_like(frames[:, :1]), step], dim=1)  # (B, T, H)
        motion = torch.cat([context, difference], dim=-1) * keep  # (B, T, 2H)
        # the (B, T, 2H) layout is (B, 2H, 1, T) in channels-last order: no transposed copy
        as_image = motion.transpose(1, 2).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        conv = self.temporal_conv
        convolved = nn.functional.conv2d(
            as_image, conv.weight.unsqueeze(2), conv.bias, padding=(0, conv.padding[0]),
            groups=conv.groups,
        ).squeeze(2).transpose(1, 2)  # (B, T, 2H)
        return self.norm(motion + self.dropout(nn.functional.gelu(convolved))) * keep


class VideoEncoder(nn.Module):
    """Frame features (and optional region features) -> one embedding per active level."""

    def __init__(self, video_dim: int, config: ModelConfig, region_dim: int = 0) -> None:
        super().__init__()
        if video_dim < 1:
            raise ValueError(f"video_dim must be positive, got {video_dim}")
        hidden, embed = config.hidden_dim, config.embed_dim
        self.levels = config.active_levels
        self.region_dim = region_dim
        self.video_dim = video_dim
        # the relationship level reads entity tokens (context or regions) and the motion too
        self.uses_entity_tokens = "entity" in self.levels or "relationship" in self.levels
        self.uses_motion = "action" in self.levels or "relationship" in self.levels
        self.entity_order_blind = config.entity_order_blind
        self.event_order = config.event_order
        self.input_norm = nn.LayerNorm(video_dim, elementwise_affine=config.input_norm_affine)
        self.frame_proj = nn.Linear(video_dim, hidden)
        self.dropout = Dropout(config.dropout)
        self.temporal = TemporalLayer(hidden, attention_heads(hidden), config.dropout)
        self.context_norm = nn.LayerNorm(hidden)

        if self.uses_entity_tokens and region_dim:
            self.region_norm = nn.LayerNorm(region_dim)
        if "entity" in self.levels:
            self.entity_slots = SlotAttention(
                config.num_entity_queries, region_dim or hidden, hidden, config.dropout
            )
        if self.uses_motion:
            self.motion = MotionEncoder(hidden, config.dropout)
        if "action" in self.levels:
            self.action_slots = SlotAttention(
                config.num_action_queries, 2 * hidden, hidden, config.dropout
            )
        if "relationship" in self.levels:
            triples = config.num_relationship_queries
            # subject and object queries of every triple: slots 2k and 2k + 1
            self.argument_slots = SlotAttention(
                2 * triples, region_dim or hidden, hidden, config.dropout
            )
            self.predicate_slots = SlotAttention(triples, 2 * hidden, hidden, config.dropout)
            self.triples = TripleEncoder(hidden, config.dropout)
        self.pools = nn.ModuleDict({level: AttentionPool(hidden) for level in self.levels})
        # no bias: a constant offset before L2 normalisation only makes all videos look alike
        self.heads = nn.ModuleDict(
            {level: nn.Linear(hidden, embed, bias=False) for level in self.levels}
        )

    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, regions: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        # video (B, T, D), video_mask (B, T) bool, regions (B, T, R, Dr) -> level -> (B, E)
        if not bool(video_mask.any(dim=1).all()):
            empty = (~video_mask.any(dim=1)).nonzero().flatten().tolist()
            raise ValueError(
                f"video rows {empty} of the batch have no real frames (mask all False)"
            )
        if video.shape[-1] != self.video_dim:
            raise ValueError(
                f"video features are {video.shape[-1]}-d but the model was built for "
                f"{self.video_dim}-d; use the feature types the model was trained on"
            )
        frames_count = video.shape[1]
        times = sinusoidal_positions(frames_count, self.frame_proj.out_features, video.device)
        frames = self.dropout(self.frame_proj(self.input_norm(video)))  # (B, T, H)
        context = self.temporal(frames + times, video_mask)
        context = self.context_norm(context)  # (B, T, H)

        states: dict[str, torch.Tensor] = {}
        if "global" in self.levels:
            states["global"] = self.pools["global"](context, video_mask)  # (B, H)
        if self.uses_entity_tokens:
            tokens, mask, token_times = self._entity_tokens(context, video_mask, times, regions)
        if "entity" in self.levels:
            if self.entity_order_blind and regions is None:  # frames as a set: (B, T, H)
                entity_slots, _ = self.entity_slots(frames, video_mask, times[None])
            else:
                entity_slots, _ = self.entity_slots(tokens, mask, token_times)  # (B, Ke, H)
            states["entity"] = self.pools["entity"](entity_slots)  # (B, H)
        if self.uses_motion:
            motion = self.motion(frames, context, video_mask)  # (B, T, 2H)
        if "action" in self.levels:
            action_slots, _ = self.action_slots(motion, video_mask, times[None])  # (B, Ka, H)
            states["action"] = self.pools["action"](action_slots)  # (B, H)
        if "relationship" in self.levels:
            arguments, argument_times = self.argument_slots(tokens, mask, token_times)
            arguments = (arguments + argument_times).unflatten(1, (-1, 2))  # (B, K, 2, H)
            predicates, predicate_times = self.predicate_slots(motion, video_mask, times[None])
            if self.event_order:  # when each predicate happens, as for its arguments
                predicates = predicates + predicate_times  # (B, K, H)
            roles = torch.stack(
                [arguments[:, :, 0], predicates, arguments[:, :, 1]], dim=2
            )  # (B, K, 3, H)
            states["relationship"] = self.pools["relationship"](self.triples(roles))  # (B, H)
        return {level: self.heads[level](self.dropout(states[level])) for level in self.levels}

    def _entity_tokens(
        self,
        context: torch.Tensor,
        video_mask: torch.Tensor,
        times: torch.Tensor,
        regions: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # context (B, T, H), video_mask (B, T), times (T, H), regions (B, T, R, Dr)
        # -> tokens (B, N, H or Dr), mask (B, N), token times (1, N, H); N = T, or T*R with regions
        if regions is None:
            if self.region_dim:
                raise ValueError(
                    f"this model was built for region features (region_dim={self.region_dim}) "
                    "but the batch has none; give the batch its regions or build with region_dim=0"
                )
            return context, video_mask, times[None]
        if not self.region_dim:
            raise ValueError(
                "the batch has region features but the model was built without them; "
                "build MCSAN with region_dim=<region feature size> to use them"
            )
        batch, frames_count, region_count, region_dim = regions.shape
        if region_dim != self.region_dim or frames_count != context.shape[1]:
            raise ValueError(
                f"regions have shape {tuple(regions.shape)}; expected (B, {context.shape[1]}, R, "
                f"{self.region_dim})"
            )
        tokens = self.region_norm(regions)  # (B, T, R, Dr)
        mask = video_mask[:, :, None].expand(-1, -1, region_count)  # (B, T, R)
        token_times = times[:, None, :].expand(-1, region_count, -1)  # (T, R, H)
        hidden = times.shape[-1]
        return (
            tokens.reshape(batch, frames_count * region_count, region_dim),
            mask.reshape(batch, frames_count * region_count),
            token_times.reshape(1, frames_count * region_count, hidden),
        )
