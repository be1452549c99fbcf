"""Training: AdamW, warm-up + cosine/step schedule, gradient clipping, AMP on CUDA, one process
or several (``torchrun``, see ``mcsan.distributed``), gradient accumulation.

A run is set up (``_set_up``), then trained epoch by epoch (``_train_epoch``), each epoch
followed by validation and saving in the main process (``_validate_and_save``).

Every run directory holds the resolved ``config.json``, ``run_info.json`` (seed, processes,
effective batch and its split, the learning-rate rule), ``log.csv`` (per epoch: the mean of each loss term, the gradient norm
before clipping and the share of steps clipped, validation rsum), TensorBoard events,
``curves.png``, and two checkpoints: ``best`` (by validation rsum) and ``last`` (for
``--resume``). ``train.calibrate_fusion`` is acted on by whoever trains (``mcsan train``,
the ablation): after training they choose ``best``'s fusion weights with ``mcsan.calibrate``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import platform
import statistics
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

# not tqdm.auto: its bar calls iter() on a DataLoader when built, and the loop iterates again,
# so workers started twice and the shuffle order depended on train.num_workers (tqdm#1598)
from tqdm import tqdm

from mcsan import __version__
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
from mcsan.data.prepare import PreparedData, load_prepared
from mcsan.data.recipes import FEATURES_NOTE, features_record
from mcsan.distributed import (
    SINGLE,
    Processes,
    ShardedBatches,
    barrier,
    gather_rows,
    join,
    leave,
    process_share,
    processes_from_environment,
)
from mcsan.evaluate import encode_split, evaluate_encoded
from mcsan.factory import build_loss, build_model
from mcsan.model.losses import MCSANLoss
from mcsan.model.mcsan import MCSAN
from mcsan.model.outputs import LossTargets, ModelOutput, concat_rows, map_rows
from mcsan.model.text import glove_dim, load_glove
from mcsan.runtime import configure_threads, loader_workers, resolve_device, seed_everything

# written into run_info.json; the README's "Several processes" says the same
LR_RULE = ("train.lr applies to the global batch train.batch_size, however many processes and "
           "micro-batches it is split into; when you change train.batch_size, scale train.lr "
           "with it (linearly, as a first guess)")


class NonFiniteLossError(RuntimeError):
    """Raised when a loss term becomes NaN or Inf; names the step and the term."""


@dataclass
class TrainResult:
    run_dir: Path
    best_dir: Path
    last_dir: Path
    best_rsum: float  # validation rsum of ``best`` with the trained fusion weights
    history: list[dict]


def parameter_groups(model: MCSAN, config: Config) -> list[dict]:
    """The optimizer's groups: a pretrained text backbone at ``train.backbone_lr`` (frozen at
    0, see ``TextEncoder.freeze_backbone``), everything else at ``train.lr``."""
    backbone = getattr(model.text, "backbone", None)
    if backbone is None:
        return [{"params": list(model.parameters())}]
    backbone_ids = {id(p) for p in backbone.parameters()}
    rest = [p for p in model.parameters() if id(p) not in backbone_ids]
    if config.train.backbone_lr == 0:
        model.text.freeze_backbone()
        return [{"params": rest}]
    return [
        {"params": rest},
        {"params": list(backbone.parameters()), "lr": config.train.backbone_lr},
    ]


def build_optimizer(model: MCSAN, config: Config) -> torch.optim.AdamW:
    """AdamW over ``parameter_groups``, in torch's fused form: one kernel updates every
    parameter (torch's default loop over parameters took 4-5 % of a default-size step on the
    CPU, the fused update under 2 %)."""
    return torch.optim.AdamW(
        parameter_groups(model, config), lr=config.train.lr,
        weight_decay=config.train.weight_decay, fused=True,
    )


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
    processes: Processes = SINGLE,
) -> DataLoader:
    """Batches of ``train.batch_size`` (video, caption) pairs in an order drawn from
    ``generator``: shuffled, or neighbour-aware with ``train.neighbour_batches``; in several
    processes each takes its share of every batch (``ShardedBatches``). Collated in
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
        batches = NeighbourBatches(pairs, config.train.batch_size, generator)
    else:
        batches = BatchSampler(RandomSampler(pairs, generator=generator),
                               config.train.batch_size, drop_last=len(pairs) > config.train.batch_size)
        common["generator"] = generator  # as DataLoader(shuffle=True) draws from it
    if processes.distributed:
        batches = ShardedBatches(batches, processes)
    return DataLoader(pairs, batch_sampler=batches, **common)


@dataclass
class TrainingState:
    """Where a run stands; saved in every checkpoint, so that ``--resume`` continues from it."""

    epoch: int = 0  # the next epoch to run (0-based)
    step: int = 0  # optimizer steps taken
    best_rsum: float = -math.inf
    history: list[dict] = field(default_factory=list)  # one record per finished epoch


@dataclass
class Run:
    """Everything one training run works with, made by :func:`_set_up`."""

    config: Config
    processes: Processes
    device: torch.device
    run_dir: Path
    dataset: dict
    prepared: PreparedData
    model: MCSAN  # the model itself: validation, checkpoints
    stepped: torch.nn.Module  # what a training step calls: the model, or its DDP wrapper
    loss: MCSANLoss
    loader: DataLoader
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    state: TrainingState
    writer: Any  # TensorBoard's SummaryWriter in the main process, None in the others

    @property
    def best_dir(self) -> Path:
        return self.run_dir / "best"

    @property
    def last_dir(self) -> Path:
        return self.run_dir / "last"


def train(config: Config, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train MCSAN on ``config.data`` and return where the checkpoints are. Started by
    ``torchrun`` (``mcsan.distributed``), each process trains on its share of every batch and
    only the first one logs, validates and writes."""
    processes = processes_from_environment()
    device = join(processes, resolve_device(config.train.device))
    try:
        run = _set_up(config, resume, processes, device)
        progress = progress and processes.is_main
        for epoch in range(run.state.epoch, run.config.train.epochs):
            record = _train_epoch(run, epoch, progress)
            if processes.is_main:
                _validate_and_save(run, record, progress)
            run.state.epoch = epoch + 1
            barrier(processes)  # the others wait while the main process validates and saves
        if processes.is_main:
            run.writer.close()
            plot_curves(run.state.history, run.run_dir / "curves.png")
        return TrainResult(run.run_dir, run.best_dir, run.last_dir, run.state.best_rsum,
                           run.state.history)
    finally:
        leave(processes)


def _set_up(config: Config, resume: bool, processes: Processes, device: torch.device) -> Run:
    """Read the data, build the model, loss, loader and optimizer, and restore a resumed run's
    state; the main process writes the resolved config and ``run_info.json``."""
    config = copy.deepcopy(config).validate()  # the caller's config is left as it is
    for key in ("root", "prepared"):
        if not getattr(config.data, key):
            raise ValueError(f"data.{key} is not set; pass data.{key}=DIR (the dataset "
                             "directory, and the one `mcsan prepare` wrote)")
    process_share(config.train.batch_size, processes, config.train.accumulate_steps)
    # stored absolute, so that evaluate and calibrate find them from any directory
    config.data.root = str(Path(config.data.root).resolve())
    config.data.prepared = str(Path(config.data.prepared).resolve())
    run_dir = Path(config.train.out_dir)
    if not resume and (run_dir / "last").exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another "
            "train.out_dir"
        )
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
    train_split = dataset["train"]
    config.model.video_dim = config.model.video_dim or train_split.feature_dim
    glove = None
    if config.model.glove:  # word vectors set the word size; loaded only for a fresh run
        config.model.word_dim = glove_dim(config.model.glove)
        glove = None if resume else load_glove(config.model.glove, prepared.words.words)
    model = build_model(config, prepared, config.model.video_dim)
    if glove is not None:
        model.text.load_word_vectors(glove)
        if processes.is_main:
            print(glove.report(prepared.words.words))
    model = model.to(device)
    if processes.distributed:  # dropout draws differ between processes (the weights do not)
        torch.manual_seed(config.train.seed * 1000 + processes.rank)
    attribute_sizes = {lv: len(v) for lv, v in prepared.vocabs.items()}

    pairs = CaptionPairs(train_split, prepared, config.data.max_frames, config.data.max_words)
    generator = torch.Generator()  # batch order: reseeded per epoch, so a resume repeats it
    loader = training_loader(pairs, config, attribute_sizes, generator, device, processes)
    total_steps = len(loader) * config.train.epochs
    if config.train.warmup_steps > total_steps and processes.is_main:
        warnings.warn(
            f"train.warmup_steps={config.train.warmup_steps} is more than the run's "
            f"{total_steps} steps ({config.train.epochs} epochs of {len(loader)}): the "
            "learning rate never reaches train.lr; lower train.warmup_steps",
            stacklevel=3,
        )
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total_steps, config=config)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=config.train.amp and device.type == "cuda")
    state = TrainingState()
    if resume:
        state = _restore(run_dir / "last", config, model, optimizer, scheduler, scaler)
    stepped = model
    if processes.distributed:
        stepped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    writer = None
    if processes.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
        _write_run_info(run_dir, config, device, len(loader), processes)
        writer = _tensorboard_writer(run_dir)
    return Run(config, processes, device, run_dir, dataset, prepared, model, stepped,
               build_loss(config, model), loader, generator, optimizer, scheduler, scaler,
               state, writer)


def _restore(directory: Path, config: Config, model: MCSAN, optimizer, scheduler, scaler
             ) -> TrainingState:
    """Load the ``last`` checkpoint of a run into the model, optimizer, schedule and random
    generators; its training state."""
    saved = load_checkpoint(directory)
    check_compatible(saved, config=config)  # the settings that differ, when they do
    check_compatible(saved, model_state=model.state_dict())
    model.load_state_dict(saved.model_state)
    optimizer.load_state_dict(saved.optimizer_state)
    scheduler.load_state_dict(saved.scheduler_state)
    trainer = saved.trainer_state
    restore_rng_state(trainer["rng"])
    if scaler.is_enabled() and trainer.get("grad_scaler"):  # empty when saved without AMP
        scaler.load_state_dict(trainer["grad_scaler"])
    return TrainingState(trainer["epoch"] + 1, trainer["step"], trainer["best_rsum"],
                         trainer["history"])


def _train_epoch(run: Run, epoch: int, progress: bool) -> dict:
    """One pass over the training pairs; the epoch's record (mean of each loss term, gradient
    norm, share of clipped steps)."""
    config, state = run.config, run.state
    run.stepped.train()
    run.generator.manual_seed(config.train.seed * 1000 + epoch)
    sums: dict[str, float] = {}
    grad_norms: list[float] = []  # finite ones; AMP overflows skip their step
    hardest = config.loss.max_violation and epoch >= config.loss.sum_violation_epochs
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}/{config.train.epochs}", disable=not progress)
    for batch in bar:
        values, grad_norm = training_step(
            run.stepped, run.loss, batch.to(run.device), run.optimizer, run.scheduler,
            run.scaler, config, hardest, where=(state.step, epoch), processes=run.processes,
        )
        state.step += 1
        values["clipped"] = float(grad_norm > config.train.grad_clip)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
            if run.writer is not None:
                run.writer.add_scalar(f"train/{key}", value, state.step)
        if math.isfinite(grad_norm):
            grad_norms.append(grad_norm)
            if run.writer is not None:
                run.writer.add_scalar("train/grad_norm", grad_norm, state.step)
        bar.set_postfix(loss=f"{values['loss']:.3f}")
    record = {"epoch": epoch + 1, "step": state.step, "lr": run.scheduler.get_last_lr()[0],
              "hardest_negatives": int(hardest)}
    record.update({k: v / max(1, len(run.loader)) for k, v in sums.items()})
    record["grad_norm"] = statistics.fmean(grad_norms) if grad_norms else math.nan
    return record


def _validate_and_save(run: Run, record: dict, progress: bool) -> None:
    """Validate where ``train.eval_every`` says (and after the last epoch), keep the best
    checkpoint, log the epoch and save ``last``."""
    config, state = run.config, run.state
    epoch = record["epoch"]
    results = None
    if epoch % config.train.eval_every == 0 or epoch == config.train.epochs:
        encoded = encode_split(run.model, run.dataset["val"], run.prepared, config, run.device,
                               progress=progress)
        results = evaluate_encoded(encoded, run.model, config, "val")
        record["val_rsum"] = results["fused"]["rsum"]
        run.writer.add_scalar("val/rsum", record["val_rsum"], state.step)
    state.history.append(record)
    if results is not None and record["val_rsum"] > state.best_rsum:
        state.best_rsum = record["val_rsum"]
        _save(run, run.best_dir, epoch - 1, results)
    _append_csv(run.run_dir / "log.csv", record)
    _save(run, run.last_dir, epoch - 1, None)
    if progress:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float))
        tqdm.write(f"epoch {epoch}: {shown}")


def training_step(
    model: torch.nn.Module,
    loss_fn: MCSANLoss,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    config: Config,
    hardest_negatives: bool,
    where: tuple[int, int] = (0, 0),
    processes: Processes = SINGLE,
) -> tuple[dict[str, float], float]:
    """One optimisation step on this process's share of a batch, already on the model's device:
    forward and loss of the whole global batch (under float16 autocast where the scaler is
    enabled), backward (in ``train.accumulate_steps`` micro-batches when more than one),
    gradient clipping, AdamW, the LR schedule. ``model`` is the MCSAN or its DDP wrapper.
    Returns the loss terms as floats and the gradient norm before clipping (inf where AMP
    overflowed and skipped the step). ``where`` (step, epoch) names the step in the error raised
    on a non-finite loss."""
    optimizer.zero_grad(set_to_none=True)
    if config.train.accumulate_steps == 1:
        with torch.autocast(batch.video.device.type, enabled=scaler.is_enabled()):
            output = model(batch, **loss_fn.swapped_readings)
            loss, terms = loss_fn(gather_rows(output, processes),
                                  gather_rows(LossTargets.of(batch), processes), hardest_negatives)
        values = _loss_values(loss, terms)
        _check_finite(values, *where)
        scaler.scale(loss).backward()
    else:
        values = _cached_backward(model, loss_fn, batch, scaler, config.train.accumulate_steps,
                                  hardest_negatives, where, processes)
    scaler.unscale_(optimizer)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip))
    scaler.step(optimizer)
    scaler.update()
    with warnings.catch_warnings():  # AMP skipped an overflowing step: torch warns that the
        # schedule ran ahead of the optimizer; it follows the step count on purpose
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
        scheduler.step()
    return values, grad_norm


def _cached_backward(
    model: torch.nn.Module,
    loss_fn: MCSANLoss,
    batch: Batch,
    scaler: torch.amp.GradScaler,
    parts: int,
    hardest_negatives: bool,
    where: tuple[int, int],
    processes: Processes,
) -> dict[str, float]:
    """The gradient of the whole batch's loss, in ``parts`` micro-batches (the gradient cache of
    Gao et al., 2021): every micro-batch's rows are computed without a graph, the loss of all
    rows gives the gradient of each row, and each micro-batch runs again, with the random state
    of its first run (the same dropout), to send its rows' gradients into the weights. Exactly
    the full batch's gradient, for a second forward pass; memory for one micro-batch."""
    device = batch.video.device
    size = len(batch.caption_ids)
    bounds = [round(size * i / parts) for i in range(parts + 1)]
    micro_batches = [batch.rows(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    random_states, outputs = [], []
    with torch.no_grad(), torch.autocast(device.type, enabled=scaler.is_enabled()):
        for part in micro_batches:
            random_states.append(_random_state(device))
            outputs.append(model(part, **loss_fn.swapped_readings))
    rows = map_rows(lambda t: t.detach().requires_grad_(t.is_floating_point()),
                    concat_rows(outputs))
    targets = LossTargets.of(batch)  # the micro-batches' rows, in order
    with torch.autocast(device.type, enabled=scaler.is_enabled()):
        loss, terms = loss_fn(gather_rows(rows, processes), gather_rows(targets, processes),
                              hardest_negatives)
    values = _loss_values(loss, terms)
    _check_finite(values, *where)
    scaler.scale(loss).backward()  # -> the gradient of every row
    after = _random_state(device)
    for index, (part, start, stop) in enumerate(zip(micro_batches, bounds, bounds[1:],
                                                    strict=False)):
        last = index == parts - 1  # DDP averages the gradients across processes once, here
        with _no_sync(model, not last):
            _set_random_state(random_states[index], device)
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                output = model(part, **loss_fn.swapped_readings)
            torch.autograd.backward(*_with_row_gradients(output, rows, start, stop))
    _set_random_state(after, device)
    return values


def _with_row_gradients(output: ModelOutput, rows: ModelOutput, start: int, stop: int
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A micro-batch's output tensors and the cached gradients of their rows ``start:stop``
    in the whole batch, for the tensors the loss reached that depend on the weights (a
    micro-batch without swapped readings has constant zero swap scores)."""
    tensors, grads = [], []

    def pair(out: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        if row.grad is not None and out.requires_grad:
            tensors.append(out)
            grads.append(row.grad[start:stop])
        return out

    map_rows(pair, output, rows)
    return tensors, grads


def _no_sync(model: torch.nn.Module, skip: bool):
    return model.no_sync() if skip and isinstance(model, DistributedDataParallel) else nullcontext()


def _random_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_random_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


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


def _save(run: Run, directory: Path, epoch: int, metrics: dict | None) -> None:
    """Write a checkpoint of the run after ``epoch`` (0-based). ``best/`` (``metrics`` given)
    serves evaluation and search and is never resumed (``last/`` is): it is written without the
    optimizer's moments, a third of the size (twice the parameters' bytes less)."""
    best = metrics is not None
    state = run.state
    save_checkpoint(
        directory,
        config=run.config,
        model_state=run.model.state_dict(),
        vocab=run.prepared.vocabularies().to_json(),
        optimizer_state=None if best else run.optimizer.state_dict(),
        scheduler_state=None if best else run.scheduler.state_dict(),
        trainer_state={
            "epoch": epoch,
            "step": state.step,
            "best_rsum": state.best_rsum,
            "history": state.history,
            "rng": capture_rng_state(),
            "grad_scaler": run.scaler.state_dict(),  # AMP's loss scale ({} without AMP)
        },
        metrics=metrics,
        notes={FEATURES_NOTE: features_record(run.dataset["train"].features)},
    )


def _write_run_info(run_dir: Path, config: Config, device: torch.device, steps: int,
                    processes: Processes) -> None:
    info = {
        "mcsan_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "processes": processes.world_size,
        "seed": config.train.seed,
        "effective_batch": config.train.batch_size,
        "batch_per_process": config.train.batch_size // processes.world_size,
        "accumulate_steps": config.train.accumulate_steps,
        "micro_batch": process_share(config.train.batch_size, processes,
                                     config.train.accumulate_steps),
        "lr": config.train.lr,
        "lr_rule": LR_RULE,
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
