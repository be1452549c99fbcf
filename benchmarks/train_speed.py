"""Training throughput at MSR-VTT dimensions: the full model against the global-only one.

Batch 128, 20 frames of 2,048-d features, the default model size (512-d embeddings and hidden
size, 300-d words; ``--embed 1024`` for the larger size measured before), 20 words from a
10,000-word vocabulary, the default attribute vocabularies (1,000 / 500 / 2,000). One step =
forward, loss, backward and an AdamW update. The two configurations are timed interleaved (global, full,
global, full, ...) so machine load hits both alike; the figure that matters is their ratio
(goal: full costs at most 2.5x global-only per sample).

    .venv/bin/python benchmarks/train_speed.py [--steps 6] [--threads N] [--device cpu|cuda] [--amp]
    .venv/bin/python benchmarks/train_speed.py --profile     # where the full model's step goes

Beside the times, the arithmetic: the floating-point operations of one step of each
configuration (``torch.utils.flop_counter``: matrix products and convolutions, forward and
backward) and this machine's matrix-product rate measured in the same run, which bound the
samples/s any implementation of the same model can reach here.

``--amp`` runs the forward pass under float16 autocast with a gradient scaler, as ``mcsan train``
does on CUDA. Writes benchmarks/results/train_speed[-cuda][-amp].json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mcsan import LEVELS
from mcsan.config import Config, LossConfig, ModelConfig, VocabConfig
from mcsan.data.batches import SPAN_LEVELS, Batch
from mcsan.model import MCSAN, LossTargets, MCSANLoss
from mcsan.train import build_optimizer

BATCH, FRAMES, VIDEO_DIM, WORDS, VOCAB = 128, 20, 2048, 20, 10_000
EMBED = ModelConfig().embed_dim  # --embed changes it (embedding and hidden size)
ATTRIBUTES = dict(VocabConfig().top_k)


def random_batch(device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(6, WORDS + 1, (BATCH,), generator=g)
    word_mask = torch.arange(WORDS)[None] < lengths[:, None]  # (B, L)
    return Batch(
        video=torch.randn(BATCH, FRAMES, VIDEO_DIM, generator=g),
        video_mask=torch.ones(BATCH, FRAMES, dtype=torch.bool),
        words=torch.randint(2, VOCAB, (BATCH, WORDS), generator=g) * word_mask,
        word_mask=word_mask,
        level_masks={k: (torch.rand(BATCH, WORDS, generator=g) < 0.3) & word_mask
                     for k in SPAN_LEVELS},
        # three relationships per caption (MSR-VTT captions have 1-3)
        role_masks=(torch.rand(BATCH, 3, 3, WORDS, generator=g) < 0.1) & word_mask[:, None, None],
        relation_orders=torch.randint(0, 3, (BATCH, 3), generator=g),
        video_targets={k: (torch.rand(BATCH, n, generator=g) < 0.005).float()
                       for k, n in ATTRIBUTES.items()},
        text_targets={k: (torch.rand(BATCH, n, generator=g) < 0.003).float()
                      for k, n in ATTRIBUTES.items()},
        tokens=[["w"] * int(n) for n in lengths],
        video_ids=[f"v{i}" for i in range(BATCH)],
        caption_ids=[str(i) for i in range(BATCH)],
    ).to(device)


def build(levels: list[str], device: torch.device):
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=EMBED, hidden_dim=EMBED, word_dim=300, levels=levels)
    model = MCSAN(config, VIDEO_DIM, VOCAB, ATTRIBUTES).to(device)
    return model, build_optimizer(model, Config())


def step(model, optimizer, scaler, batch: Batch, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.autocast(device.type, enabled=scaler.is_enabled()):
        loss, _ = MCSANLoss(LossConfig(), model.level_weights)(model(batch), LossTargets.of(batch))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **kwargs) -> int:
    """torch's count for a convolution's backward pass, but with the weight gradient of a
    grouped convolution counted per group: torch counts the motion branch's depthwise
    convolution as if it were dense (16 GFLOP a step where it does 0.03)."""
    from torch.utils.flop_counter import conv_backward_flop

    flops = conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding,
                               _dilation, transposed, _output_padding, _groups,
                               [output_mask[0], False], out_val=out_shape)  # input gradient
    if output_mask[1]:  # each weight meets every output position of every sample once
        positions = math.prod((x_shape if transposed else grad_out_shape)[2:])
        flops += 2 * math.prod(w_shape) * grad_out_shape[0] * positions
    return flops


def step_flops(model, optimizer, scaler, batch: Batch, device: torch.device) -> int:
    """Floating-point operations of one training step (forward and backward products)."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        step(model, optimizer, scaler, batch, device)
    return counter.get_total_flops()


def matmul_gflops(device: torch.device, repeats: int = 20) -> float:
    """This machine's rate on a product of the model's commonest shape (frames x features
    into the hidden size), in GFLOP/s."""
    a = torch.randn(BATCH * FRAMES, VIDEO_DIM, device=device)
    b = torch.randn(VIDEO_DIM, EMBED, device=device)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * BATCH * FRAMES * VIDEO_DIM * EMBED * repeats / (time.perf_counter() - started) / 1e9


def profile(model, optimizer, scaler, batch: Batch, device: torch.device) -> list[dict]:
    """The 25 ops with the most self CPU time over 2 steps of ``model``, printed and returned."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step(model, optimizer, scaler, batch, device)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [{"op": e.key, "self_s": e.self_cpu_time_total / 2e6, "share": e.self_cpu_time_total / total,
             "calls_per_step": e.count / 2} for e in events[:25]]
    for row in rows:
        print(f"{row['op'][:48]:<48} {row['self_s']:7.3f} s/step {row['share']:6.1%} "
              f"{row['calls_per_step']:6.0f} calls")
    return rows


def main(argv: list[str] | None = None) -> int:
    global EMBED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    parser.add_argument("--embed", type=int, default=ModelConfig().embed_dim,
                        help="embedding and hidden size")
    parser.add_argument("--profile", action="store_true",
                        help="also profile 2 steps of the full model: the 25 costliest ops")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.amp and args.device == "cpu":
        parser.error("--amp is for CUDA (mcsan train uses it there only)")
    if args.threads:
        torch.set_num_threads(args.threads)
    EMBED = args.embed
    device = torch.device(args.device)
    batch = random_batch(device)
    models = {"global_only": build(["global"], device), "full": build(list(LEVELS), device)}
    scalers = {name: torch.amp.GradScaler(device.type, enabled=args.amp) for name in models}
    for name, (model, optimizer) in models.items():
        step(model, optimizer, scalers[name], batch, device)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.steps):
        for name, (model, optimizer) in models.items():
            times[name].append(step(model, optimizer, scalers[name], batch, device))
    options = [f"--steps {args.steps}", f"--threads {args.threads}", f"--device {args.device}",
               f"--embed {args.embed}"]
    result = {"command": "python benchmarks/train_speed.py " + " ".join(
        options + (["--amp"] if args.amp else [])),
        "device": str(device), "amp": args.amp,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "batch": BATCH, "embed": EMBED,
        "attributes": ATTRIBUTES, "configs": {}}
    rate = matmul_gflops(device)
    result["matmul_gflops"] = rate
    for name, samples in times.items():
        median = statistics.median(samples)
        params = sum(p.numel() for p in models[name][0].parameters())
        flops = step_flops(*models[name], scalers[name], batch, device)
        result["configs"][name] = {"median_step_s": median, "min_step_s": min(samples),
                                   "samples_per_s": BATCH / median, "parameters": params,
                                   "gflop_per_step": flops / 1e9,
                                   "bound_samples_per_s": BATCH * rate * 1e9 / flops}
        print(f"{name:<12} {params / 1e6:6.1f}M params  median step {median:.3f} s  "
              f"{BATCH / median:7.1f} samples/s  {flops / 1e9:6.1f} GFLOP/step  "
              f"bound {BATCH * rate * 1e9 / flops:6.1f} samples/s at {rate:.0f} GFLOP/s")
    ratio = result["configs"]["full"]["median_step_s"] / result["configs"]["global_only"][
        "median_step_s"]
    result["full_over_global_cost"] = ratio
    print(f"full / global-only cost per sample: {ratio:.2f}x (goal <= 2.5x)")
    if args.profile:
        result["profile"] = profile(*models["full"], scalers["full"], batch, device)
    suffix = ("" if device.type == "cpu" else f"-{device.type}") + ("-amp" if args.amp else "")
    out = args.out or Path(__file__).parent / "results" / f"train_speed{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
