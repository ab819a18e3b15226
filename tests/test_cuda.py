"""On a CUDA GPU: fp32 training matches the CPU, mixed precision trains, a NaN is caught on the
device, torch.compile trains, runs resume across devices, a saved model moves between them,
evaluation agrees with the CPU, a study's GPU workers agree with one process, and under
torchrun aevae picks NCCL for a GPU and its collectives run over it.

CPU CI skips the module (no GPU). On a GPU machine: ``python -m pytest -m cuda
tests/test_cuda.py`` (each test is meant to take seconds, the module under two minutes).

``AEVAE_TEST_CUDA_DEVICE=cpu`` runs the module on the CPU in place of the GPU: a dry check of
the tests' own logic (the comparisons then compare the CPU with itself, and the claims only a
GPU can make skip themselves), not a test of CUDA. Any other value (``cuda:1``) picks the GPU.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aevae
from aevae.metrics.evaluate import EvaluationSettings, evaluate
from aevae.training import (
    CHECKPOINT_FILE,
    HISTORY_FILE,
    TRAINING_FILE,
    Callback,
    Trainer,
    TrainingConfig,
    TrainingDivergedError,
    fit,
)
from torchrun_environment import torchrun_environment

OVERRIDE = os.environ.get("AEVAE_TEST_CUDA_DEVICE") or None
DEVICE = OVERRIDE or "cuda"
ON_GPU = torch.device(DEVICE).type == "cuda"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (torch.cuda.is_available() or OVERRIDE),
                       reason="needs a CUDA GPU (AEVAE_TEST_CUDA_DEVICE=cpu dry-runs the "
                              "module's logic on the CPU)"),
]

EXAMPLES = 600  # digits training examples: 12 steps of 50 per epoch, no ragged last batch
BATCH = 50


def tiny(digits, model: str = "ae"):
    """A small model, seeded: the same initial weights on every device."""
    return aevae.make(model, input_shape=digits.shape, latent_dim=4, hidden=(32,), seed=0)


def train_x(digits) -> np.ndarray:
    return digits.train.x[:EXAMPLES]


def trained(digits, device: str, model: str = "ae", epochs: int = 2, **options):
    """``tiny`` fitted on ``device`` (the shuffling generator is on the CPU, so every device
    sees the same batches; an AE draws no other randomness)."""
    options = {"compile": False, **options}
    network = tiny(digits, model)
    network.fit(train_x(digits), epochs=epochs, batch_size=BATCH, seed=0, progress=False,
                device=device, **options)
    return network


def final_loss(model) -> float:
    losses = model.history_.column("train_loss")
    assert all(math.isfinite(loss) for loss in losses), losses
    return losses[-1]


def assert_same_weights(model, reference, *, rtol: float = 1e-3, atol: float = 1e-4) -> None:
    expected = reference.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value.detach().cpu(), expected[name].detach().cpu(),
                                   rtol=rtol, atol=atol, msg=lambda text, name=name:
                                   f"{name}: {text}")


def on_device(model) -> str:
    return next(model.parameters()).device.type


@pytest.fixture(autouse=True)
def _release_gpu_memory():
    yield
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # an asynchronous CUDA error fails the test that caused it
        torch.cuda.empty_cache()


def _set_tf32(matmul: bool, cudnn: bool) -> None:
    with warnings.catch_warnings():  # newer torch may prefer its fp32_precision settings
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


@pytest.fixture
def exact_fp32():
    """Plain fp32 matrix products (no TF32; PyTorch's default for matmul, not for cuDNN) for
    comparisons with the CPU; restored after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    _set_tf32(False, False)
    try:
        yield
    finally:
        _set_tf32(*saved)


# ----- training on the device ----------------------------------------------------------------
def test_fp32_training_on_the_gpu_matches_the_cpu(digits, exact_fp32):
    cpu = trained(digits, "cpu")
    gpu = trained(digits, DEVICE)
    assert on_device(gpu) == torch.device(DEVICE).type
    assert final_loss(gpu) == pytest.approx(final_loss(cpu), rel=1e-3)
    assert_same_weights(gpu, cpu)


class _Scaler(Callback):
    """Keeps the loss scaler the training step used."""

    scaler = "not seen"

    def fit_end(self, state):
        self.scaler = state.stepper.precision.scaler


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(digits, precision):
    if precision == "fp16" and not ON_GPU:
        pytest.skip("fp16 with loss scaling (GradScaler) is for CUDA GPUs; on the CPU it is "
                    "refused (tests/test_training_pieces.py)")
    reference = final_loss(trained(digits, DEVICE))
    seen = _Scaler()
    model = tiny(digits)
    config = TrainingConfig(epochs=2, batch_size=BATCH, seed=0, device=DEVICE,
                            precision=precision, compile=False)
    model.history_ = Trainer(config, [seen]).fit(model, train_x(digits))
    assert final_loss(model) == pytest.approx(reference, rel=0.05)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert all(bool(torch.isfinite(value).all()) for value in model.state_dict().values())
    if precision == "fp16":
        assert isinstance(seen.scaler, torch.amp.GradScaler)
        assert math.isfinite(seen.scaler.get_scale()) and seen.scaler.get_scale() > 0
    else:
        assert seen.scaler is None


def test_an_fp16_run_resumes_with_the_loss_scale_it_had(digits, tmp_path):
    if not ON_GPU:
        pytest.skip("fp16 with loss scaling is for CUDA GPUs")
    config = dict(batch_size=BATCH, seed=0, device=DEVICE, precision="fp16", compile=False)
    whole = _Scaler()
    Trainer(TrainingConfig(epochs=3, **config), [whole]).fit(tiny(digits), train_x(digits))
    fit(tiny(digits), train_x(digits), epochs=2, out=tmp_path, progress=False, **config)
    resumed = _Scaler()
    fit(tiny(digits), train_x(digits), epochs=3, out=tmp_path, resume=True, progress=False,
        callbacks=[resumed], **config)
    assert resumed.scaler.state_dict() == whole.scaler.state_dict()


def test_a_nan_on_the_device_stops_training_and_keeps_the_last_good_checkpoint(digits,
                                                                              tmp_path):
    calls = {"count": 0}

    def poison(x):  # every batch from the fourth step of epoch 2 on is NaN
        calls["count"] += 1
        return x * float("nan") if calls["count"] > EXAMPLES // BATCH + 3 else x

    run = tmp_path / "run"
    model = tiny(digits)
    # On a GPU the fused optimizer skips the bad steps and the flag is read at the epoch's end
    # at the latest; on the CPU the first bad loss stops it. Either way: epoch 2.
    with pytest.raises(TrainingDivergedError,
                       match=r"loss is nan at epoch 2.*\(epoch 1\) is kept"):
        model.fit(train_x(digits), epochs=3, batch_size=BATCH, seed=0, progress=False,
                  device=DEVICE, compile=False, out=run, batch_transform=poison)
    assert calls["count"] > EXAMPLES // BATCH + 3
    assert len((run / HISTORY_FILE).read_text().splitlines()) == 2  # header and epoch 1
    saved = aevae.load(run, device="cpu")  # load refuses NaN or infinite weights
    for name, value in saved.state_dict().items():
        assert bool(torch.isfinite(value).all()), name
        torch.testing.assert_close(model.state_dict()[name].cpu(), value, rtol=0, atol=0)
    checkpoint = load_file(run / CHECKPOINT_FILE)
    for name, value in checkpoint.items():
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), name


def test_an_exploding_learning_rate_is_caught_on_the_device(digits):
    # SGD at 1e6 overflows within a few steps (step 3 on the CPU); epoch 1 has no checkpoint.
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written yet"):
        trained(digits, DEVICE, optimizer="sgd", learning_rate=1e6)


def test_compiled_training_on_the_gpu_is_finite_and_close_to_eager(digits):
    if not hasattr(torch, "compile"):
        pytest.skip("this PyTorch has no torch.compile")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled = trained(digits, DEVICE, compile=True)
    finally:
        torch._dynamo.reset()  # drop the compiled graphs (and what they hold on the GPU)
    fell_back = [str(item.message) for item in caught
                 if issubclass(item.category, RuntimeWarning)
                 and "torch.compile failed" in str(item.message)]
    # A compiler failure falls back to eager with a RuntimeWarning: either outcome is a
    # finished run; compiled or not, it takes the eager steps up to fused-kernel rounding.
    eager = trained(digits, DEVICE)
    assert final_loss(compiled) == pytest.approx(final_loss(eager), rel=1e-2), fell_back


# ----- steps replayed from a CUDA graph (cuda_graphs=True) -----------------------------------
class _Graphs(Callback):
    """Keeps the graphed steps of the fit (None when it stepped eagerly)."""

    graphs = None

    def fit_end(self, state):
        self.graphs = state.graphs


def graphed(digits, model: str = "ae", epochs: int = 3, examples: int = EXAMPLES + 10,
            callbacks=(), **options):
    """``tiny`` fitted on DEVICE with validation; the 10 examples past EXAMPLES make a ragged
    last batch, which steps eagerly between replays."""
    network = tiny(digits, model)
    config = TrainingConfig(**{"epochs": epochs, "batch_size": BATCH, "seed": 0,
                               "device": DEVICE, "compile": False, **options})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network.history_ = Trainer(config, callbacks).fit(
            network, digits.train.x[:examples], validation=digits.test.x[:100])
    network.warnings_ = [str(item.message) for item in caught
                         if "cuda_graphs" in str(item.message)]
    return network


def assert_replayed(seen: _Graphs, model, replays: int) -> None:
    """On a GPU: captured, replayed ``replays`` times, no capture failure; in the CPU dry run:
    stepped eagerly, saying that graphs need a CUDA device."""
    if ON_GPU:
        assert seen.graphs is not None, model.warnings_
        assert seen.graphs.failed is None, seen.graphs.failed
        assert seen.graphs.replays == replays
    else:
        assert seen.graphs is None
        assert any("need a CUDA device" in text for text in model.warnings_), model.warnings_


def test_graphed_steps_on_the_gpu_match_eager_steps(digits, exact_fp32):
    # An AE draws no randomness: the replayed step is the eager step's kernels, same order.
    seen = _Graphs()
    replayed = graphed(digits, cuda_graphs=True, callbacks=[seen])
    eager = graphed(digits)
    assert_replayed(seen, replayed, 3 * (EXAMPLES // BATCH) - 3)  # 3 warm-up steps
    assert final_loss(replayed) == pytest.approx(final_loss(eager), rel=1e-5)
    assert replayed.history_.column("validation_loss") == pytest.approx(
        eager.history_.column("validation_loss"), rel=1e-5)
    assert_same_weights(replayed, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [
    {"compile": True, "kl_schedule": "linear:20"}, {"precision": "bf16"},
    {"compile": True, "precision": "bf16"}], ids=["compiled", "bf16", "compiled-bf16"])
def test_a_graphed_vae_trains_close_to_eager(digits, options):
    if options.get("compile") and not hasattr(torch, "compile"):
        pytest.skip("this PyTorch has no torch.compile")
    seen = _Graphs()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            replayed = graphed(digits, "vae", cuda_graphs=True, callbacks=[seen], **options)
    finally:
        torch._dynamo.reset()
    # A recompile inside the capture would fall back to an eager loss: it must not happen.
    assert not [str(item.message) for item in caught
                if "torch.compile failed" in str(item.message)]
    eager = graphed(digits, "vae", kl_schedule=options.get("kl_schedule"),
                    precision=options.get("precision", "fp32"))
    assert_replayed(seen, replayed, 3 * (EXAMPLES // BATCH) - 3)
    # The VAE's noise comes from the graph's own offsets into the generator: close, not equal.
    assert final_loss(replayed) == pytest.approx(final_loss(eager), rel=0.03)


def test_a_step_that_waits_for_the_host_is_not_captured(digits):
    seen = _Graphs()
    model = tiny(digits)
    plain = model.loss

    def reads_the_host(x, **options):
        output = plain(x, **options)
        float(output.loss.sum())  # a host sync: capture would fail on it
        return output

    model.loss = reads_the_host
    config = TrainingConfig(epochs=2, batch_size=BATCH, seed=0, device=DEVICE, compile=False,
                            cuda_graphs=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.history_ = Trainer(config, [seen]).fit(model, train_x(digits))
    messages = [str(item.message) for item in caught if "cuda_graphs" in str(item.message)]
    assert len(model.history_.epochs) == 2 and math.isfinite(final_loss(model))
    if ON_GPU:
        assert seen.graphs.replays == 0 and "waits for the host" in seen.graphs.failed
        assert any("training continues eagerly" in text for text in messages), messages
        assert torch.cuda.current_stream() == torch.cuda.default_stream()
    else:
        assert any("need a CUDA device" in text for text in messages), messages


class _PoisonAfterFirstEpoch(Callback):
    """Sets a weight to NaN in place after epoch 1 (the captured step reads that very tensor)."""

    def epoch_end(self, state, record):
        if record["epoch"] == 1:
            with torch.no_grad():
                next(state.model.parameters()).fill_(float("nan"))


def test_a_graphed_run_that_turns_nan_is_caught(digits, tmp_path):
    model = tiny(digits)
    config = TrainingConfig(epochs=3, batch_size=BATCH, seed=0, device=DEVICE, compile=False,
                            cuda_graphs=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the CPU dry run's "steps eagerly"
        with pytest.raises(TrainingDivergedError, match="loss is nan at epoch 2"):
            Trainer(config, [_PoisonAfterFirstEpoch()]).fit(model, train_x(digits))


# ----- moving between devices ----------------------------------------------------------------
@pytest.mark.parametrize("first, then", [(DEVICE, "cpu"), ("cpu", DEVICE)],
                         ids=["gpu-then-cpu", "cpu-then-gpu"])
def test_a_run_resumes_on_the_other_device(digits, tmp_path, exact_fp32, first, then):
    run = tmp_path / "run"
    options = dict(validation=digits.test.x[:100], batch_size=BATCH, seed=0, progress=False,
                   compile=False, out=run)
    tiny(digits).fit(train_x(digits), epochs=2, device=first, **options)
    resumed = tiny(digits)
    resumed.fit(train_x(digits), epochs=3, device=then, resume=True, **options)
    assert on_device(resumed) == torch.device(then).type
    assert [record["epoch"] for record in resumed.history_.epochs] == [1, 2, 3]
    assert all(math.isfinite(value) for value in resumed.history_.column("validation_loss"))
    assert len((run / HISTORY_FILE).read_text().splitlines()) == 4
    training = json.loads((run / TRAINING_FILE).read_text())
    assert torch.device(training["device"]).type == torch.device(then).type
    # The optimizer state and the shuffling order came along: as if it had never stopped.
    whole = trained(digits, "cpu", epochs=3, validation=digits.test.x[:100])
    assert final_loss(resumed) == pytest.approx(final_loss(whole), rel=1e-3)
    assert_same_weights(resumed, whole)


def test_a_model_trained_on_the_gpu_loads_on_the_cpu(digits, tmp_path, exact_fp32):
    model = trained(digits, DEVICE, model="vae")
    model.save(tmp_path / "saved")
    x = digits.test.x[:200]
    codes = model.encode(x)  # the posterior means
    on_cpu = aevae.load(tmp_path / "saved", device="cpu")
    assert on_device(on_cpu) == "cpu"
    np.testing.assert_allclose(on_cpu.encode(x), codes, rtol=1e-4, atol=1e-5)
    back = aevae.load(tmp_path / "saved", device=DEVICE)
    assert on_device(back) == torch.device(DEVICE).type
    np.testing.assert_allclose(back.encode(x), codes, rtol=1e-6, atol=1e-6)


# ----- evaluation and the study --------------------------------------------------------------
def _number(entry) -> float:
    """A metric's figure: the number, or a {"value": ...} entry's value."""
    return float(entry["value"] if isinstance(entry, dict) else entry)


def test_evaluation_on_the_gpu_is_finite_and_close_to_the_cpu(digits, tmp_path, exact_fp32):
    trained(digits, "cpu", model="vae").save(tmp_path / "vae")
    settings = EvaluationSettings(importance_samples=20, likelihood_examples=100,
                                  bound_samples=(1,), max_examples=200)
    results = {}
    for device in ("cpu", DEVICE):
        model = aevae.load(tmp_path / "vae", device=device)
        outcome = evaluate(model, digits, metrics=["reconstruction", "likelihood"],
                           settings=settings)
        results[device] = outcome["metrics"]
        del model
    cpu, gpu = results["cpu"], results[DEVICE]
    # Reconstructions from the posterior means: the same up to float rounding.
    for name in ("mse", "bce", "psnr", "mean_baseline_mse", "rate"):
        value = _number(gpu["reconstruction"][name])
        assert math.isfinite(value), name
        assert value == pytest.approx(_number(cpu["reconstruction"][name]), rel=1e-4), name
    np.testing.assert_allclose(gpu["reconstruction"]["mse"]["per_example"],
                               cpu["reconstruction"]["mse"]["per_example"], rtol=1e-4,
                               atol=1e-7)
    # Monte Carlo estimates: the GPU draws its own noise (measured spread on the CPU across
    # seeds: about 0.3 nats of 40), so only close.
    assert gpu["likelihood"]["available"]
    for name in ("elbo", "log_likelihood", "bits_per_dimension"):
        assert math.isfinite(gpu["likelihood"][name]), name
        assert gpu["likelihood"][name] == pytest.approx(cpu["likelihood"][name], rel=0.03), name
    bound = gpu["likelihood"]["importance_weighted_bounds"]["1"]
    assert bound == pytest.approx(cpu["likelihood"]["importance_weighted_bounds"]["1"],
                                  rel=0.03)
    assert gpu["reconstruction"]["negative_log_likelihood_of_reconstruction"] == pytest.approx(
        cpu["reconstruction"]["negative_log_likelihood_of_reconstruction"], rel=0.03)
    for values in gpu["likelihood"]["per_example"].values():
        assert len(values) == 100 and all(math.isfinite(value) for value in values)


def test_a_gpu_study_gives_the_same_runs_with_one_or_two_workers(tmp_path, tiny_budget):
    from aevae.study import StudySettings, run_study
    from aevae.study.store import STORE_FILE, RunStore

    headlines = {}
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}"
        settings = StudySettings(data="digits", models="ae,vae", seeds=2, budget=tiny_budget,
                                 tasks="compression", device=DEVICE, workers=workers)
        results = run_study(settings, out, progress=False)
        assert [run["status"] for run in results["runs"]] == ["finished"] * 4
        assert all(run["device"].startswith(torch.device(DEVICE).type)
                   for run in results["runs"])
        assert json.loads((out / "study.json").read_text())["workers"] == workers
        with RunStore(out / STORE_FILE) as store:
            headlines[workers] = {row.id: row.metrics for row in store.select()}
    one, two = headlines[1], headlines[2]
    assert sorted(one) == sorted(two) and len(one) == 4
    for run_id, metrics in one.items():
        assert metrics and sorted(metrics) == sorted(two[run_id]), run_id
        for name, value in metrics.items():
            # GPU kernels need not be bit for bit the same in another process: 1e-5 relative.
            assert two[run_id][name] == pytest.approx(value, rel=1e-5, abs=1e-12), name


# ----- torchrun ------------------------------------------------------------------------------
TORCHRUN_SCRIPT = """
import datetime, json, math, os, sys
import torch
import torch.distributed as dist
import aevae
from aevae.data import load_dataset
from aevae.training import distributed

device = sys.argv[1]
data = load_dataset("digits")


def train():
    model = aevae.make("ae", input_shape=data.shape, latent_dim=4, hidden=(32,), seed=0)
    model.fit(data.train.x[:300], epochs=2, batch_size=50, seed=0, progress=False,
              device=device, compile=False)
    return model.history_.column("train_loss"), next(model.parameters()).device.type


report = {"world": os.environ["WORLD_SIZE"]}
# One process needs no process group: aevae trains as it would without torchrun.
report["losses"], report["device"] = train()
report["group_without_peers"] = dist.is_initialized()

# The backend aevae picks for this device when processes share a run. One GPU has room for
# one process only, so aevae is shown WORLD_SIZE 2 for its choice while the group it joins
# (through torchrun's rendezvous) has this one process.
chosen, join = [], dist.init_process_group


def recorded(backend=None, *arguments, **options):
    chosen.append(backend)
    join(backend, world_size=1, rank=0, timeout=datetime.timedelta(seconds=60))


dist.init_process_group, os.environ["WORLD_SIZE"] = recorded, "2"
try:
    joined = distributed.Distributed.from_environment(torch.device(device))
finally:
    dist.init_process_group, os.environ["WORLD_SIZE"] = join, report["world"]
report["chosen"], report["backend"] = chosen, dist.get_backend()
report["joined_world"] = joined.world

# aevae's collectives on the device, through that backend (world 2 takes the enabled path).
shared = distributed.Distributed(rank=0, world=2)
module = torch.nn.Linear(3, 2).to(device)
before = {key: value.clone() for key, value in module.state_dict().items()}
shared.broadcast_state(module)
loss = (module(torch.ones(4, 3, device=device)) ** 2).mean()
loss.backward()
grads = [parameter.grad.clone() for parameter in module.parameters()]
mean = shared.average_gradients(list(module.parameters()), 4, loss.detach())
total = shared.sum(torch.tensor([1.0, 2.0], device=device))
shared.barrier()
report["collectives"] = {
    "broadcast": all(torch.equal(before[key], value)
                     for key, value in module.state_dict().items()),
    "gradients": all(torch.allclose(parameter.grad, grad)
                     for parameter, grad in zip(module.parameters(), grads)),
    "mean_loss": math.isclose(float(mean), float(loss.detach()), rel_tol=1e-6),
    "sum": total.tolist() == [1.0, 2.0],
}
# Training inside the group (of one): the same steps as without it.
report["losses_in_group"], _ = train()
distributed._KEPT_WORK.clear()  # the barrier has finished; its Work goes before the group
dist.destroy_process_group()
print("RESULT", json.dumps(report), flush=True)
"""


def test_torchrun_on_the_gpu_uses_nccl(tmp_path):
    """tests/test_distributed.py runs gloo on the CPU; here one process on the GPU. Under
    AEVAE_TEST_CUDA_DEVICE=cpu the same script checks gloo, the CPU's backend."""
    script = tmp_path / "train.py"
    script.write_text(TORCHRUN_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
         str(script), DEVICE],
        cwd=tmp_path, env=torchrun_environment(), capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    report = json.loads(line[len("RESULT "):])
    backend = "nccl" if ON_GPU else "gloo"
    assert report["world"] == "1" and not report["group_without_peers"]
    assert report["device"] == torch.device(DEVICE).type
    assert report["chosen"] == [backend] and report["backend"] == backend
    assert report["joined_world"] == 1
    assert report["collectives"] == dict.fromkeys(
        ("broadcast", "gradients", "mean_loss", "sum"), True)
    assert all(math.isfinite(loss) for loss in report["losses"])
    assert report["losses_in_group"] == pytest.approx(report["losses"], rel=1e-6)
