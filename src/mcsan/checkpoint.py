"""Checkpoints as directories of safetensors and JSON, written atomically, never pickled.

A checkpoint directory holds::

    config.json              the resolved Config (Config.save)
    model.safetensors        the model's state dict
    vocab.json               the vocabularies, as the caller gives them (a JSON dict)
    optimizer.json           optional: the optimizer's state dict with every tensor replaced by
    optimizer.safetensors      a reference into the .safetensors file beside it
    scheduler.json           optional: the LR scheduler's state dict, stored the same way
    trainer_state.json       optional: epoch, step, best metric, RNG states (capture_rng_state),
                             AMP's gradient-scaler state
    metrics.json             optional: the metrics at this point
    <note>.json              optional: notes, written with the checkpoint (features.json: the
                             input features' size and extraction recipes) or added later by
                             ``update_checkpoint`` (calibration.json, with the fusion weights
                             it chose)

Everything is written into a sibling ``<name>.tmp-XXXX`` directory, each file flushed to disk,
then moved into place by renames, so a crash leaves either the previous checkpoint or the new
one, never a mixture. Replacing an existing checkpoint takes two renames (old -> ``<name>.old-
XXXX``, new -> ``<name>``); ``load_checkpoint`` explains how to recover should a crash fall
between them.

Non-tensor structure (param groups, integer parameter ids, tuples such as Adam's betas) is
kept exactly: dicts with non-string keys become ``{"__items__": [[key, value], ...]}``, tuples
``{"__tuple__": [...]}`` and tensors ``{"__tensor__": name}``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mcsan.atomic import fsync_directory, fsync_file, replace_json
from mcsan.config import Config, apply_overrides

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"
METRICS_FILE = "metrics.json"
STATE_FORMAT = "mcsan-state-v1"
# the ModelConfig fields that decide parameter shapes; the others can change between runs
ARCHITECTURE_FIELDS = (
    "video_dim",
    "embed_dim",
    "hidden_dim",
    "word_dim",
    "levels",
    "num_entity_queries",
    "num_action_queries",
    "text_encoder",
    "shared_attribute_projection",
)


@dataclass
class Checkpoint:
    directory: Path
    config: Config
    model_state: dict[str, torch.Tensor]
    vocab: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


# ----- saving ------------------------------------------------------------------------------
def save_checkpoint(
    directory: str | Path,
    *,
    config: Config,
    model_state: Mapping[str, torch.Tensor],
    vocab: Mapping[str, Any],
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    notes: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint directory atomically (module docstring); returns its path.
    ``notes`` maps file names (``features.json``) to the JSON data they hold."""
    directory = Path(directory)
    _refuse_foreign_directory(directory)
    for name in notes or {}:
        _check_note_name(name)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{directory.name}.tmp-", dir=directory.parent))
    try:
        os.chmod(staging, 0o755)
        config.save(staging / CONFIG_FILE)  # flushed to disk by Config.save
        _write_tensors(staging / MODEL_FILE, _model_tensors(model_state))
        replace_json(staging / VOCAB_FILE, dict(vocab))
        for name, state in (
            ("optimizer", optimizer_state),
            ("scheduler", scheduler_state),
            ("trainer_state", trainer_state),
        ):
            if state is not None:
                _write_structured(staging, name, state)
        if metrics is not None:
            replace_json(staging / METRICS_FILE, dict(metrics))
        for name, data in (notes or {}).items():
            replace_json(staging / name, data)
        fsync_directory(staging)
        _move_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def update_checkpoint(
    directory: str | Path, *, config: Config | None = None, notes: Mapping[str, Any] | None = None
) -> Path:
    """Replace a saved checkpoint's ``config.json`` and add or replace JSON notes beside it
    (``name -> data``), each file written whole, flushed and renamed into place: a crash leaves
    every file either as it was or as it is meant to be. Notes go first, then the config."""
    directory = _checked_directory(directory)
    for name, data in (notes or {}).items():
        _check_note_name(name)
        replace_json(directory / name, data)
    if config is not None:
        config.save(directory / CONFIG_FILE)  # written beside it, flushed, renamed into place
    fsync_directory(directory)
    return directory


def _check_note_name(name: str) -> None:
    reserved = {CONFIG_FILE, MODEL_FILE, VOCAB_FILE, METRICS_FILE}
    if name in reserved or Path(name).name != name or not name.endswith(".json"):
        raise ValueError(f"{name!r} cannot be a checkpoint note; name a new .json file")


def _refuse_foreign_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory; choose another path")
    is_checkpoint = (directory / CONFIG_FILE).is_file() and (directory / MODEL_FILE).is_file()
    if directory.is_dir() and any(directory.iterdir()) and not is_checkpoint:
        raise FileExistsError(
            f"{directory} is a non-empty directory that is not an MCSAN checkpoint (no "
            f"{CONFIG_FILE} / {MODEL_FILE}); refusing to replace it, choose another path"
        )


def _move_into_place(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.rename(staging, directory)
        fsync_directory(directory.parent)
        return
    suffix = staging.name.rsplit(".tmp-", 1)[1]
    previous = directory.with_name(f"{directory.name}.old-{suffix}")
    os.rename(directory, previous)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(previous, directory)
        raise
    fsync_directory(directory.parent)
    shutil.rmtree(previous)


def _model_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise TypeError(f"model_state entries {not_tensors[:5]} are not tensors")
    return dict(state)


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """safetensors needs contiguous CPU tensors that share no memory: copy those that do."""
    seen_storage: set[int] = set()
    ready: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        whole = storage.nbytes() == tensor.numel() * tensor.element_size()
        if not tensor.is_contiguous() or not whole or storage.data_ptr() in seen_storage:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen_storage.add(tensor.untyped_storage().data_ptr())
        ready[name] = tensor
    save_file(ready, str(path), metadata={"format": "pt"})
    fsync_file(path)


def _write_structured(directory: Path, name: str, state: Mapping[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(dict(state), name, tensors)
    replace_json(directory / f"{name}.json", {"format": STATE_FORMAT, "state": encoded})
    if tensors:
        _write_tensors(directory / f"{name}.safetensors", tensors)


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        if path in tensors:
            raise ValueError(f"two tensors would be stored under the name {path!r}; rename a key")
        tensors[path] = value
        return {"__tensor__": path}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        plain_keys = all(isinstance(k, str) and not k.startswith("__") for k in value)
        if plain_keys:
            return {k: _encode(v, f"{path}/{k}", tensors) for k, v in value.items()}
        bad = [k for k in value if not isinstance(k, (str, int, float, bool))]
        if bad:
            raise TypeError(
                f"{path}: cannot store dict key {bad[0]!r} of type {type(bad[0]).__name__}"
            )
        return {"__items__": [[k, _encode(v, f"{path}/{k}", tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"{path}: cannot store a {type(value).__name__} in a checkpoint; use tensors, numbers, "
        "strings, lists, tuples and dicts"
    )


# ----- loading -----------------------------------------------------------------------------
# Model settings added since the first checkpoints, with the value that reproduces a model
# saved before they existed (a newer default may build another network).
LEGACY_MODEL_SETTINGS = {"event_order": False, "input_norm_affine": True}


def _saved_config(path: Path) -> Config:
    """The run's config; settings it predates take their legacy values, not today's defaults."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the checkpoint is incomplete")
    saved = _read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds no config object; the checkpoint is damaged")
    legacy = [
        f"model.{key}={str(value).lower()}"
        for key, value in LEGACY_MODEL_SETTINGS.items() if key not in saved.get("model", {})
    ]  # fmt: skip
    return apply_overrides(Config.from_dict(saved), legacy)


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Read a checkpoint directory written by ``save_checkpoint`` (tensors on the CPU)."""
    directory = _checked_directory(directory)
    metrics_path = directory / METRICS_FILE
    return Checkpoint(
        directory=directory,
        config=_saved_config(directory / CONFIG_FILE),
        model_state=_read_tensors(directory / MODEL_FILE),
        vocab=_read_json(directory / VOCAB_FILE),
        optimizer_state=_read_structured(directory, "optimizer"),
        scheduler_state=_read_structured(directory, "scheduler"),
        trainer_state=_read_structured(directory, "trainer_state"),
        metrics=_read_json(metrics_path) if metrics_path.is_file() else None,
    )


def load_checkpoint_vocab(directory: str | Path) -> dict[str, Any]:
    """Only the vocabularies of a checkpoint directory (its weights are not read)."""
    return _read_json(_checked_directory(directory) / VOCAB_FILE)


def read_checkpoint_note(directory: str | Path, name: str) -> Any | None:
    """A JSON note written by ``update_checkpoint``, or None when the checkpoint has none."""
    path = _checked_directory(directory) / name
    return _read_json(path) if path.is_file() else None


def _checked_directory(directory: str | Path) -> Path:
    """``directory`` as a Path, or an error saying why it is not a complete checkpoint."""
    directory = Path(directory)
    if not directory.is_dir():
        leftovers = sorted(directory.parent.glob(f"{directory.name}.old-*"))
        if leftovers:
            raise FileNotFoundError(
                f"checkpoint {directory} does not exist, but {leftovers[-1]} does: a save was "
                f"interrupted while replacing it; rename {leftovers[-1].name} to "
                f"{directory.name} to recover the previous checkpoint"
            )
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    for required in (CONFIG_FILE, MODEL_FILE, VOCAB_FILE):
        if not (directory / required).is_file():
            raise FileNotFoundError(
                f"checkpoint {directory} has no {required}; it is incomplete or not written by "
                "mcsan (save_checkpoint writes config.json, model.safetensors and vocab.json)"
            )
    return directory


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own error type for a damaged file
        raise ValueError(
            f"{path} cannot be read ({str(error).splitlines()[0] if str(error) else error!r}); "
            "the checkpoint is damaged (truncated or overwritten): use another checkpoint, or "
            "the run's last/ or best/ if this is the other one"
        ) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); the checkpoint is damaged"
        ) from error


def _read_structured(directory: Path, name: str) -> dict[str, Any] | None:
    json_path = directory / f"{name}.json"
    if not json_path.is_file():
        return None
    document = _read_json(json_path)
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise ValueError(f"{json_path} is not an mcsan state file (format {STATE_FORMAT})")
    tensor_path = directory / f"{name}.safetensors"
    tensors = _read_tensors(tensor_path) if tensor_path.is_file() else {}
    return _decode(document["state"], tensors, tensor_path)


def _decode(value: Any, tensors: dict[str, torch.Tensor], tensor_path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, tensor_path) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        name = value["__tensor__"]
        if name not in tensors:
            raise FileNotFoundError(
                f"{tensor_path} lacks tensor {name!r} (or the file is missing); the checkpoint "
                "is incomplete"
            )
        return tensors[name]
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, tensor_path) for v in value["__tuple__"])
    if "__items__" in value:
        return {k: _decode(v, tensors, tensor_path) for k, v in value["__items__"]}
    return {k: _decode(v, tensors, tensor_path) for k, v in value.items()}


# ----- compatibility -----------------------------------------------------------------------
def check_compatible(
    checkpoint: Checkpoint,
    *,
    config: Config | None = None,
    vocab: Mapping[str, Any] | None = None,
    model_state: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Raise ValueError listing every way the checkpoint does not fit this config / vocab / model.

    config: compared on the architecture fields of ``model`` (ARCHITECTURE_FIELDS);
    vocab: must equal the checkpoint's vocabularies; model_state: a freshly built model's
    state dict, compared key by key on names and shapes.
    """
    problems: list[str] = []
    if config is not None:
        saved, wanted = checkpoint.config.model, config.model
        for name in ARCHITECTURE_FIELDS:
            old, new = getattr(saved, name), getattr(wanted, name)
            if name == "video_dim" and 0 in (old, new):  # 0 = read from the data
                continue
            if old != new:
                problems.append(f"model.{name} is {old!r} in the checkpoint but {new!r} now")
    if vocab is not None:
        problems += _vocab_differences(checkpoint.vocab, vocab)
    if model_state is not None:
        problems += _state_differences(checkpoint.model_state, model_state)
    if problems:
        listed = "\n  ".join(problems)
        raise ValueError(
            f"checkpoint {checkpoint.directory} does not fit:\n  {listed}\n"
            "use the config and prepared data the checkpoint was trained with"
        )


def _vocab_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in sorted(set(saved) | set(current)):
        if key not in current:
            problems.append(f"vocab {key!r} is in the checkpoint but not in the current data")
        elif key not in saved:
            problems.append(f"vocab {key!r} is in the current data but not in the checkpoint")
        elif saved[key] != current[key]:
            old, new = saved[key], current[key]
            if isinstance(old, list) and isinstance(new, list):
                first = next(
                    (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None
                )
                where = f"first difference at index {first}" if first is not None else "a prefix"
                problems.append(
                    f"vocab {key!r} differs: {len(old)} entries in the checkpoint, "
                    f"{len(new)} now ({where})"
                )
            else:
                problems.append(
                    f"vocab {key!r} differs between the checkpoint and the current data"
                )
    return problems


def _state_differences(
    saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]
) -> list[str]:
    missing = sorted(set(current) - set(saved))
    unexpected = sorted(set(saved) - set(current))
    problems = []
    if missing:
        problems.append(f"the checkpoint lacks {len(missing)} parameter(s): {missing[:5]}")
    if unexpected:
        problems.append(
            f"the checkpoint has {len(unexpected)} unknown parameter(s): {unexpected[:5]}"
        )
    for name in sorted(set(saved) & set(current)):
        if saved[name].shape != current[name].shape:
            problems.append(
                f"parameter {name} has shape {tuple(saved[name].shape)} in the checkpoint but "
                f"{tuple(current[name].shape)} in the model"
            )
    return problems


# ----- RNG state ---------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as JSON-ready lists and base64."""
    version, internal, gauss_next = random.getstate()
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "algorithm": algorithm,
            "keys": keys.tolist(),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": _bytes_to_text(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_bytes_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo ``capture_rng_state``: every generator continues where it was captured."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["algorithm"],
            np.array(numpy["keys"], dtype=np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(_text_to_bytes(state["torch"]))
    cuda_states = state.get("cuda")
    if cuda_states:
        if not torch.cuda.is_available() or torch.cuda.device_count() != len(cuda_states):
            available = torch.cuda.device_count() if torch.cuda.is_available() else 0
            warnings.warn(
                f"the checkpoint holds RNG states of {len(cuda_states)} CUDA device(s), this "
                f"machine has {available}; CUDA randomness will not continue exactly",
                stacklevel=2,
            )
        else:
            torch.cuda.set_rng_state_all([_text_to_bytes(s) for s in cuda_states])


def _bytes_to_text(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
