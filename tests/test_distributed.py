"""Training in several processes and in micro-batches gives what one process gives on the whole
batch: real gloo processes started by torchrun, compared with this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mcsan.distributed import Processes, ShardedBatches, process_share
from mcsan.model import LossTargets, MCSANLoss
from mcsan.model.outputs import concat_rows
from mcsan.train import _cached_backward, train

sys.path.insert(0, str(Path(__file__).parent))
import distributed_step as worker  # noqa: E402
from distributed_step import step_gradients  # noqa: E402
from test_train import TINY, tiny_config  # noqa: E402

WORKER = Path(__file__).parent / "distributed_step.py"


def two_processes(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``arguments`` run in 2 processes under torchrun on this machine, one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         *arguments], capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def assert_same_step(got: dict, expected: dict) -> None:
    assert got["values"].keys() == expected["values"].keys()
    for name, value in expected["values"].items():
        assert got["values"][name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    for name, grad in expected["grads"].items():
        torch.testing.assert_close(got["grads"][name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_two_processes_give_the_loss_and_gradient_of_one_process(tmp_path, one_thread):
    """Every loss term (hardest and level-aware negatives, both swap negatives, attribute and
    KL terms) on the global batch of 8 split over 2 gloo processes, also with 2 micro-batches
    in each, equals one process's on all 8, in float64."""
    expected = step_gradients()
    assert set(expected["values"]) >= {"rank/fused", "rank/role_swap", "rank/order_swap",
                                       "attr/video/entity", "kl/relationship"}
    two_processes(str(WORKER), str(tmp_path / "out.pt"), "1", "2")
    results = torch.load(tmp_path / "out.pt")
    for steps in (1, 2):
        assert_same_step(results[steps], expected)
    # the comparison can fail: half the batch alone has another loss and gradient
    half = step_gradients(pairs=4)
    assert half["values"]["loss"] != pytest.approx(expected["values"]["loss"], rel=1e-6)


def test_accumulated_micro_batches_give_the_whole_batch_gradient(one_thread):
    expected = step_gradients()
    for steps in (2, 3):  # 3: micro-batches of 3, 3 and 2 pairs
        assert_same_step(step_gradients(accumulate_steps=steps), expected)


def test_micro_batches_run_again_with_their_own_dropout():
    """With dropout the gradient cache's second pass must draw the first pass's masks: the
    result equals backpropagating through the micro-batches' outputs directly."""
    torch.set_default_dtype(torch.float64)
    try:
        batch = worker.global_batch()
        model = worker.build_model(dropout=0.3)
        loss = MCSANLoss(worker.LOSS, model.level_weights)
        torch.manual_seed(5)
        parts = [batch.rows(0, 4), batch.rows(4, 8)]
        outputs = [model(part, **loss.swapped_readings) for part in parts]
        direct, _ = loss(concat_rows(outputs), LossTargets.of(batch))
        direct.backward()
        expected = {name: p.grad.clone() for name, p in model.named_parameters()}

        model.zero_grad()
        torch.manual_seed(5)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        values = _cached_backward(model, loss, batch, scaler, 2, True, (0, 0),
                                  Processes())
        assert values["loss"] == pytest.approx(direct.item(), rel=1e-6)  # logged as float32
        for name, grad in expected.items():
            torch.testing.assert_close(model.get_parameter(name).grad, grad, msg=name)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_short_run_in_two_processes_matches_one_process(tiny_prepared, tmp_path, one_thread):
    """``mcsan train --processes 2`` (torchrun, gloo) and one process train the same weights:
    the same batches, the same global loss; only the main process writes."""
    extra = ["train.epochs=2", "train.batch_size=16", "model.dropout=0.0",
             "loss.role_swap_negatives=true"]
    single = train(tiny_config(tiny_prepared, tmp_path / "one", extra), progress=False)
    config = tiny_config(tiny_prepared, tmp_path / "two", extra)
    overrides = [f"data.root={config.data.root}", f"data.prepared={config.data.prepared}",
                 f"train.out_dir={config.train.out_dir}", *TINY, *extra]
    result = subprocess.run(
        [sys.executable, "-m", "mcsan", "train", "--processes", "2", *overrides],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best validation rsum") == 1  # printed by the main process only
    for name in ("last", "best"):
        one = load_file(single.run_dir / name / "model.safetensors")
        two = load_file(Path(config.train.out_dir) / name / "model.safetensors")
        assert one.keys() == two.keys()
        for key in one:
            torch.testing.assert_close(comparable(two, key), comparable(one, key), rtol=1e-4,
                                       atol=1e-5, msg=key)
    info = (Path(config.train.out_dir) / "run_info.json").read_text()
    assert '"processes": 2' in info and '"batch_per_process": 8' in info


def comparable(weights: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """The weights that a float32 run determines: attention's key bias has a gradient of zero
    in exact arithmetic (softmax ignores a shift shared by all keys), so AdamW turns float
    rounding noise into full-size steps there, differently in every summation order."""
    if key.endswith("self_attn.in_proj_bias"):
        query, _, value = weights[key].chunk(3)
        return torch.cat([query, value])
    return weights[key]


def test_each_process_takes_its_share_of_every_batch():
    batches = [list(range(0, 8)), list(range(8, 16))]
    shares = [list(ShardedBatches(batches, Processes(rank, 2))) for rank in (0, 1)]
    assert shares == [[[0, 1, 2, 3], [8, 9, 10, 11]], [[4, 5, 6, 7], [12, 13, 14, 15]]]
    with pytest.raises(ValueError, match="multiple of 2"):
        list(ShardedBatches([[0, 1, 2]], Processes(0, 2)))
    assert process_share(128, Processes(0, 4), accumulate_steps=2) == 16
    with pytest.raises(ValueError, match=r"train.batch_size=10 does not divide .* multiple of 4"):
        process_share(10, Processes(0, 2), accumulate_steps=2)
