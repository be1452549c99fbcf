"""Training: AdamW, warm-up + cosine/step schedule, gradient clipping, AMP on CUDA.

Every run directory holds the resolved ``config.json``, ``run_info.json`` (seed, device count,
effective batch), ``log.csv`` (per epoch: the mean of each loss term, the gradient norm
before clipping and the share of steps clipped, validation rsum), TensorBoard events,
``curves.png``, and two checkpoints: ``best`` (by validation rsum) and ``last`` (for
``--resume``). With ``train.calibrate_fusion`` the ``best`` checkpoint's fusion weights are
then chosen on the validation split (``mcsan.calibrate``); resuming a finished run with it on
calibrates that run's ``best`` without training further.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import statistics
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

# not tqdm.auto: its bar calls iter() on a DataLoader when built, and the loop iterates again,
# so workers started twice and the shuffle order depended on train.num_workers (tqdm#1598)
from tqdm import tqdm

from mcsan import __version__
from mcsan.calibrate import FusionCalibration, calibrate_checkpoint
from mcsan.checkpoint import (
    capture_rng_state,
    check_compatible,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from mcsan.config import Config
from mcsan.data.batches import Batch, CaptionPairs, NeighbourBatches, collate_pairs
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared
from mcsan.data.recipes import FEATURES_NOTE, features_record
from mcsan.evaluate import encode_split, evaluate_encoded
from mcsan.factory import build_model
from mcsan.model.mcsan import MCSAN
from mcsan.model.text import glove_dim, load_glove
from mcsan.runtime import configure_threads, loader_workers, resolve_device, seed_everything


class NonFiniteLossError(RuntimeError):
    """Raised when a loss term becomes NaN or Inf; names the step and the term."""


@dataclass
class TrainResult:
    run_dir: Path
    best_dir: Path
    last_dir: Path
    best_rsum: float  # validation rsum of ``best`` with the trained fusion weights
    history: list[dict]
    calibration: FusionCalibration | None = None  # with train.calibrate_fusion


def parameter_groups(model: MCSAN, config: Config) -> list[dict]:
    """The optimizer's groups: a pretrained text backbone at ``train.backbone_lr`` (frozen at
    0, see ``TextEncoder.freeze_backbone``), everything else at ``train.lr``."""
    backbone = getattr(model.text, "backbone", None)
    if backbone is None:
        return [{"params": list(model.parameters())}]
    if config.train.backbone_lr < 0:
        raise ValueError(f"train.backbone_lr={config.train.backbone_lr} must be >= 0")
    backbone_ids = {id(p) for p in backbone.parameters()}
    rest = [p for p in model.parameters() if id(p) not in backbone_ids]
    if config.train.backbone_lr == 0:
        model.text.freeze_backbone()
        return [{"params": rest}]
    return [
        {"params": rest},
        {"params": list(backbone.parameters()), "lr": config.train.backbone_lr},
    ]


def lr_factor(step: int, total_steps: int, config: Config) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then the schedule."""
    warmup = config.train.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if config.train.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if config.train.schedule == "step":
        return 0.1 ** int(progress * 3)  # drops by 10x at 1/3 and 2/3 of training
    if config.train.schedule == "constant":
        return 1.0
    raise ValueError(f"train.schedule={config.train.schedule!r}; choose cosine, step or constant")


def training_loader(
    pairs: CaptionPairs,
    config: Config,
    attribute_sizes: dict[str, int],
    generator: torch.Generator,
    device: torch.device,
) -> DataLoader:
    """Batches of ``train.batch_size`` (video, caption) pairs in an order drawn from
    ``generator``: shuffled, or neighbour-aware with ``train.neighbour_batches``; collated in
    ``train.num_workers`` worker processes for a run on ``device`` (``loader_workers``; 0: in
    this process); for a GPU in page-locked memory, so that ``Batch.to`` copies asynchronously."""
    collate = partial(
        collate_pairs,
        attribute_sizes=attribute_sizes,
        role_swaps=config.loss.role_swap_negatives,
    )
    common = {"collate_fn": collate, "pin_memory": device.type == "cuda",
              "num_workers": loader_workers(config.train.num_workers, device)}
    if config.train.neighbour_batches:
        sampler = NeighbourBatches(pairs, config.train.batch_size, generator)
        return DataLoader(pairs, batch_sampler=sampler, **common)
    return DataLoader(pairs, batch_size=config.train.batch_size, shuffle=True,
                      drop_last=len(pairs) > config.train.batch_size, generator=generator,
                      **common)


def train(config: Config, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train MCSAN on ``config.data`` and return where the checkpoints are."""
    config.validate()
    for key in ("root", "prepared"):
        if not getattr(config.data, key):
            raise ValueError(f"data.{key} is not set; pass data.{key}=DIR (the dataset "
                             "directory, and the one `mcsan prepare` wrote)")
    # stored absolute, so that evaluate and calibrate find them from any directory
    config.data.root = str(Path(config.data.root).resolve()) if config.data.root else ""
    config.data.prepared = str(Path(config.data.prepared).resolve()) if config.data.prepared else ""
    run_dir = Path(config.train.out_dir)
    last_dir, best_dir = run_dir / "last", run_dir / "best"
    if not resume and last_dir.exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another "
            "train.out_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.train.device)
    configure_threads(config.train.threads)
    seed_everything(config.train.seed)

    dataset = read_dataset(
        config.data.root,
        config.data.layout,
        features=config.data.features or None,
        skip_invalid=config.data.skip_invalid,
        check_values=config.data.check_values,
    )
    prepared = load_prepared(Path(config.data.prepared), dataset, splits=("train", "val"))
    train_split, val_split = dataset["train"], dataset["val"]
    video_dim = config.model.video_dim or train_split.feature_dim
    config.model.video_dim = video_dim
    glove = None
    if config.model.glove:  # word vectors set the word size; loaded only for a fresh run
        config.model.word_dim = glove_dim(config.model.glove)
        glove = None if resume else load_glove(config.model.glove, prepared.words.words)
    model = build_model(config, prepared, video_dim)
    if glove is not None:
        model.text.load_word_vectors(glove)
        print(glove.report(prepared.words.words))
    model = model.to(device)
    attribute_sizes = {lv: len(v) for lv, v in prepared.vocabs.items()}

    pairs = CaptionPairs(train_split, prepared, config.data.max_frames, config.data.max_words)
    generator = torch.Generator()  # batch order: reseeded per epoch, so a resume repeats it
    loader = training_loader(pairs, config, attribute_sizes, generator, device)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * config.train.epochs
    if config.train.warmup_steps > total_steps:
        warnings.warn(
            f"train.warmup_steps={config.train.warmup_steps} is more than the run's "
            f"{total_steps} steps ({config.train.epochs} epochs of {steps_per_epoch}): the "
            "learning rate never reaches train.lr; lower train.warmup_steps",
            stacklevel=2,
        )
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total_steps, config=config)
    )
    use_amp = config.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, step, best_rsum, history = 0, 0, -math.inf, []
    if resume:
        state = load_checkpoint(last_dir)
        check_compatible(state, config=config)  # the settings that differ, when they do
        check_compatible(state, model_state=model.state_dict())
        model.load_state_dict(state.model_state)
        optimizer.load_state_dict(state.optimizer_state)
        scheduler.load_state_dict(state.scheduler_state)
        trainer = state.trainer_state
        start_epoch, step = trainer["epoch"] + 1, trainer["step"]
        best_rsum, history = trainer["best_rsum"], trainer["history"]
        restore_rng_state(trainer["rng"])
        if use_amp and trainer.get("grad_scaler"):  # empty when saved without AMP
            scaler.load_state_dict(trainer["grad_scaler"])

    config.save(run_dir / "config.json")
    _write_run_info(run_dir, config, device, steps_per_epoch)
    vocabularies = prepared.vocabularies().to_json()
    notes = {FEATURES_NOTE: features_record(train_split.features)}
    csv_path = run_dir / "log.csv"
    writer = _tensorboard_writer(run_dir)

    for epoch in range(start_epoch, config.train.epochs):
        model.train()
        generator.manual_seed(config.train.seed * 1000 + epoch)
        sums: dict[str, float] = {}
        grad_norms: list[float] = []  # finite ones; AMP overflows skip their step
        hardest = config.loss.max_violation and epoch >= config.loss.sum_violation_epochs
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.train.epochs}", disable=not progress)
        for batch in bar:
            values, grad_norm = training_step(model, batch.to(device), optimizer, scheduler,
                                              scaler, config, hardest, where=(step, epoch))
            step += 1
            values["clipped"] = float(grad_norm > config.train.grad_clip)
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
                writer.add_scalar(f"train/{key}", value, step)
            if math.isfinite(grad_norm):
                grad_norms.append(grad_norm)
                writer.add_scalar("train/grad_norm", grad_norm, step)
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        n_batches = max(1, len(loader))
        record = {"epoch": epoch + 1, "step": step, "lr": scheduler.get_last_lr()[0],
                  "hardest_negatives": int(hardest)}
        record.update({k: v / n_batches for k, v in sums.items()})
        record["grad_norm"] = statistics.fmean(grad_norms) if grad_norms else math.nan

        is_eval_epoch = (epoch + 1) % config.train.eval_every == 0 or epoch + 1 == config.train.epochs
        if is_eval_epoch:
            encoded = encode_split(model, val_split, prepared, config, device, progress=progress)
            results = evaluate_encoded(encoded, model, config, "val")
            record["val_rsum"] = results["fused"]["rsum"]
            writer.add_scalar("val/rsum", record["val_rsum"], step)
            if record["val_rsum"] > best_rsum:
                best_rsum = record["val_rsum"]
                _save(best_dir, config, model, vocabularies, notes, None, None, scaler, epoch,
                      step, best_rsum, history + [record], results)
        history.append(record)
        _append_csv(csv_path, record)
        _save(last_dir, config, model, vocabularies, notes, optimizer, scheduler, scaler, epoch,
              step, best_rsum, history, None)
        if progress:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float))
            tqdm.write(f"epoch {epoch + 1}: {shown}")
    writer.close()
    plot_curves(history, run_dir / "curves.png")
    calibration = None
    if config.train.calibrate_fusion:
        calibration = calibrate_checkpoint(best_dir, dataset=dataset, prepared=prepared,
                                           device=config.train.device, progress=progress)
        if progress:
            tqdm.write(calibration.describe())
    return TrainResult(run_dir, best_dir, last_dir, best_rsum, history, calibration)


def training_step(
    model: MCSAN,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    config: Config,
    hardest_negatives: bool,
    where: tuple[int, int] = (0, 0),
) -> tuple[dict[str, float], float]:
    """One optimisation step on a batch already on the model's device: forward and loss (under
    float16 autocast where the scaler is enabled), backward, gradient clipping, AdamW, the LR
    schedule. Returns the loss terms as floats and the gradient norm before clipping (inf where
    AMP overflowed and skipped the step). ``where`` (step, epoch) names the step in the error
    raised on a non-finite loss."""
    with torch.autocast(batch.video.device.type, enabled=scaler.is_enabled()):
        loss, terms = model.compute_loss(batch, hardest_negatives=hardest_negatives)
    values = _loss_values(loss, terms)
    _check_finite(values, *where)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip))
    scaler.step(optimizer)
    scaler.update()
    with warnings.catch_warnings():  # AMP skipped an overflowing step: torch warns that the
        # schedule ran ahead of the optimizer; it follows the step count on purpose
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
        scheduler.step()
    return values, grad_norm


def _loss_values(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{"loss": total, term: value, ...}`` as Python floats, read from the device at once
    (one synchronisation per step instead of one per term on CUDA)."""
    numbers = torch.stack([loss.detach().float(), *(t.float() for t in terms.values())]).tolist()
    return dict(zip(["loss", *terms], numbers, strict=True))


def _check_finite(values: dict[str, float], step: int, epoch: int) -> None:
    if math.isfinite(values["loss"]):
        return
    bad = [name for name, value in values.items() if name != "loss" and not math.isfinite(value)]
    raise NonFiniteLossError(
        f"loss became {values['loss']} at step {step + 1} (epoch {epoch + 1}); non-finite term(s): "
        f"{bad or ['total']}. Lower train.lr or train.grad_clip, or check the features "
        "for extreme values (mcsan info validates them)"
    )


def _save(directory, config, model, vocabularies, notes, optimizer, scheduler, scaler, epoch,
          step, best_rsum, history, metrics) -> None:
    """Write a checkpoint; ``optimizer`` and ``scheduler`` None for ``best/``, which serves
    evaluation and search and is never resumed (``last/`` is): without the optimizer's moments it
    is a third of the size (twice the parameters' bytes less)."""
    save_checkpoint(
        directory,
        config=config,
        model_state=model.state_dict(),
        vocab=vocabularies,
        optimizer_state=None if optimizer is None else optimizer.state_dict(),
        scheduler_state=None if scheduler is None else scheduler.state_dict(),
        trainer_state={
            "epoch": epoch,
            "step": step,
            "best_rsum": best_rsum,
            "history": history,
            "rng": capture_rng_state(),
            "grad_scaler": scaler.state_dict(),  # AMP's loss scale ({} without AMP)
        },
        metrics=metrics,
        notes=notes,
    )


def _write_run_info(run_dir: Path, config: Config, device: torch.device, steps: int) -> None:
    info = {
        "mcsan_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_count": torch.cuda.device_count() if device.type == "cuda" else 1,
        "seed": config.train.seed,
        "effective_batch": config.train.batch_size,
        "cpu_threads": torch.get_num_threads(),
        "loader_workers": loader_workers(config.train.num_workers, device),
        "steps_per_epoch": steps,
    }
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")


def _append_csv(path: Path, record: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(record))
        if new:
            writer.writeheader()
        writer.writerow(record)


def _tensorboard_writer(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and validation rsum per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_rsum) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["loss"] for r in history], marker="o")
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    evals = [(r["epoch"], r["val_rsum"]) for r in history if "val_rsum" in r]
    if evals:
        ax_rsum.plot(*zip(*evals, strict=True), marker="o", color="tab:green")
    ax_rsum.set(title="validation rsum", xlabel="epoch", ylabel="rsum")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
