"""The pieces fit is built from, each on its own: optimizers, the step, precision, compile,
sharing batches between processes."""

from __future__ import annotations

import math

import pytest
import torch

import aevae
from aevae.data.batch import Batch
from aevae.training import Distributed, TrainingStep
from aevae.training.devices import Precision, fits_on_device
from aevae.training.step import compile_wanted, make_optimizer


def _step(model, **changes) -> TrainingStep:
    options = dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0, gradient_clip=None,
                   precision=Precision("fp32", torch.device("cpu")), compile=False,
                   distributed=Distributed(), device=torch.device("cpu"))
    options.update(changes)
    return TrainingStep(model, **options)


def test_optimizers_use_fused_kernels_on_the_cpu():
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    for name in ("adam", "adamw", "sgd"):
        assert make_optimizer(name, parameters, 1e-3).defaults.get("fused") is True, name


def test_the_step_trains_and_keeps_sums_per_example(digits):
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    step = _step(model)
    batch = Batch(torch.from_numpy(digits.train.x[:50]))
    before = [p.detach().clone() for p in model.parameters()]
    output = step(batch, 1.0, 0)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    sums = step.epoch_sums()
    assert set(sums) == {"train_loss", "train_reconstruction", "train_kl"}
    assert sums["train_loss"] == pytest.approx(float(output.loss.detach().mean()), rel=1e-6)
    assert step.bad_loss(1) is None


def test_a_non_finite_loss_leaves_the_weights_alone(digits):
    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    step = _step(model)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.from_numpy(digits.train.x[:8]).clone()
    x[0, 0, 0, 0] = math.inf
    step(Batch(x), 1.0, 0)
    assert step.bad_loss(1) == math.inf or math.isnan(step.bad_loss(1))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bf16_autocast_on_the_cpu_trains(digits):
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    model.fit(digits.train.x[:200], epochs=2, batch_size=50, precision="bf16", progress=False,
              device="cpu")
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert math.isfinite(model.history_.epochs[-1]["train_loss"])


def test_fp16_and_unknown_precisions_are_refused():
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        Precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Precision("fp8", torch.device("cpu"))


def test_compile_auto_is_for_long_gpu_runs_only():
    assert compile_wanted("auto", torch.device("cpu"), 10**6) is False
    assert compile_wanted(True, torch.device("cpu"), 1) is True
    with pytest.raises(ValueError, match="compile must be"):
        compile_wanted("yes", torch.device("cpu"), 1)


def test_a_compiler_failure_falls_back_to_eager(digits, monkeypatch):
    def broken(function, **options):
        def call(*arguments, **keywords):
            raise RuntimeError("no compiler here")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    torch.manual_seed(0)
    eager = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    eager.fit(digits.train.x[:200], epochs=2, batch_size=50, progress=False, compile=False)
    fallen = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no compiler here"):
        fallen.fit(digits.train.x[:200], epochs=2, batch_size=50, progress=False, compile=True)
    for a, b in zip(eager.parameters(), fallen.parameters()):
        assert torch.equal(a, b)


def test_a_process_takes_every_world_th_example():
    indices = torch.arange(7)
    shares = [Distributed(rank, 2).share(indices) for rank in range(2)]
    assert shares[0].tolist() == [0, 2, 4, 6] and shares[1].tolist() == [1, 3, 5]
    assert Distributed().share(indices) is indices


def test_data_always_fits_on_the_cpu():
    assert fits_on_device(10**15, torch.device("cpu"))


@pytest.mark.slow
def test_compiled_training_is_deterministic_and_close_to_eager(digits):
    def trained(compile):
        model = aevae.make("vae", input_shape=digits.shape, latent_dim=4, hidden=(32,), seed=0)
        model.fit(digits.train.x[:500], epochs=2, batch_size=50, progress=False,
                  compile=compile, kl_schedule="linear:10")
        return model.history_.column("train_loss")

    eager, compiled, again = trained(False), trained(True), trained(True)
    assert compiled == again
    assert compiled[-1] == pytest.approx(eager[-1], rel=0.05)
