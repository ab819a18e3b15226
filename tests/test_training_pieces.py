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


# ----- TrainingConfig, callbacks, data sources, the Trainer ----------------------------------
def test_training_config_checks_each_option_and_names_it():
    from aevae.training import TrainingConfig

    for options, message in [({"epochs": 0}, "epochs must be at least 1, got 0"),
                             ({"batch_size": 0}, "batch_size must be at least 1"),
                             ({"learning_rate": 0}, "learning_rate must be a positive finite"),
                             ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
                             ({"weight_decay": -1}, "weight_decay must be a finite number"),
                             ({"weight_decay": float("inf")}, "weight_decay must be a finite"),
                             ({"kl_schedule": "bogus"}, "bad KL schedule 'bogus'"),
                             # a negative weight rewards a larger KL; NaN read as weight 1
                             ({"kl_schedule": "linear:100:-1"}, "bad KL schedule"),
                             ({"kl_schedule": "linear:100:nan"}, "bad KL schedule"),
                             ({"patience": 0}, "patience must be at least 1"),
                             ({"gradient_clip": 0}, "gradient_clip must be positive"),
                             ({"precision": "fp8"}, "unknown precision 'fp8'"),
                             ({"compile": 1}, "compile must be True, False or 'auto'"),
                             ({"labelled_per_batch": 100}, "labelled_per_batch")]:
        with pytest.raises(ValueError, match=message):
            TrainingConfig(**options)
    with pytest.raises(TypeError, match="unknown training option epoch; known: epochs"):
        TrainingConfig.from_options({"epoch": 3})


def test_fit_names_every_training_option_in_its_signature():
    import inspect

    from aevae.training import TrainingConfig, fit

    parameters = inspect.signature(fit).parameters
    for name in TrainingConfig.names():
        assert parameters[name].default == TrainingConfig.default(name), name
    for name in ("labels", "label_known", "observed", "lengths", "out", "resume", "config"):
        assert name in parameters, name


def test_training_json_records_every_option(digits, tmp_path):
    import json

    from aevae.training import TrainingConfig

    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    config = TrainingConfig(epochs=1, batch_size=64, optimizer="adamw", weight_decay=0.01,
                            restore_best=False, compile=False)
    model.fit(digits.train.x[:128], config=config, out=tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert set(TrainingConfig.names()) <= set(record)
    assert record["optimizer"] == "adamw" and record["restore_best"] is False
    assert record["compile"] is False and record["device"] == "cpu" and record["processes"] == 1


def test_a_callback_sees_every_hook_in_order(digits):
    from aevae.training import Callback, Trainer, TrainingConfig

    class Recorder(Callback):
        def __init__(self):
            self.calls = []

        def fit_start(self, state):
            self.calls.append(("fit_start", state.step))

        def epoch_start(self, state):
            self.calls.append(("epoch_start", state.epoch))

        def batch_end(self, state):
            self.calls.append(("batch_end", state.step))

        def epoch_end(self, state, record):
            self.calls.append(("epoch_end", record["epoch"], len(state.history.epochs)))

        def fit_end(self, state):
            self.calls.append(("fit_end", state.history.best_epoch))

    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    recorder = Recorder()
    history = Trainer(TrainingConfig(epochs=2, batch_size=100), [recorder]).fit(
        model, digits.train.x[:200], digits.test.x[:50])
    assert recorder.calls == [
        ("fit_start", 0), ("epoch_start", 1), ("batch_end", 1), ("batch_end", 2),
        ("epoch_end", 1, 1), ("epoch_start", 2), ("batch_end", 3), ("batch_end", 4),
        ("epoch_end", 2, 2), ("fit_end", history.best_epoch)]


def test_a_callback_can_stop_training(digits):
    from aevae.training import Callback, Trainer, TrainingConfig

    class StopAfterTwo(Callback):
        def epoch_end(self, state, record):
            if record["epoch"] == 2:
                state.history.stopped_early = True

    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    history = Trainer(TrainingConfig(epochs=30, batch_size=100), [StopAfterTwo()]).fit(
        model, digits.train.x[:200])
    assert len(history.epochs) == 2 and history.stopped_early


def test_every_callback_hears_of_a_failure_and_the_cause_surfaces(digits):
    from aevae.training import Callback, Trainer, TrainingConfig

    class Breaks(Callback):
        def epoch_end(self, state, record):
            if record["epoch"] == 2:
                raise RuntimeError("disk full")

        def fit_failed(self, state, error):
            raise OSError("cannot even report")  # only warns: the cause is what surfaces

    class Listener(Callback):
        def __init__(self):
            self.heard, self.ended = [], False

        def fit_failed(self, state, error):
            self.heard.append((state.epoch, str(error)))

        def fit_end(self, state):
            self.ended = True

    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    listener = Listener()
    with pytest.raises(RuntimeError, match="disk full"), \
            pytest.warns(RuntimeWarning, match="Breaks.fit_failed failed: cannot even report"):
        Trainer(TrainingConfig(epochs=5, batch_size=100), [Breaks(), listener]).fit(
            model, digits.train.x[:200])
    assert listener.heard == [(2, "disk full")] and not listener.ended


def test_fit_and_model_fit_take_your_callbacks_after_the_built_in_ones(digits):
    from aevae.training import Callback

    class Errors(Callback):  # what a user records: the weights the built-in ones kept
        def __init__(self):
            self.epochs = []

        def epoch_end(self, state, record):
            self.epochs.append((record["epoch"], state.history.best_epoch))

    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    errors = Errors()
    model.fit(digits.train.x[:200], validation=digits.test.x[:50], epochs=3, batch_size=100,
              progress=False, callbacks=[errors])
    # BestValidation ran first each epoch: the best epoch is already known when ours is called.
    assert [epoch for epoch, _ in errors.epochs] == [1, 2, 3]
    assert all(best is not None and best <= epoch for epoch, best in errors.epochs)
    with pytest.raises(TypeError, match="Callback objects"):
        model.fit(digits.train.x[:200], epochs=1, progress=False, callbacks=[print])


def test_batch_fields_travel_inside_the_batch(digits):
    from aevae.training import Trainer, TrainingConfig

    model = aevae.make("cvae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    batch = Batch(digits.train.x[:200], labels=digits.train.labels[:200])
    config = TrainingConfig(epochs=1, batch_size=100, seed=3)
    first = Trainer(config).fit(model, batch).epochs[-1]["train_loss"]
    again = aevae.make("cvae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    loose = again.fit(digits.train.x[:200], labels=digits.train.labels[:200], epochs=1,
                      batch_size=100, seed=3, progress=False).history_.epochs[-1]["train_loss"]
    assert first == loose
    with pytest.raises(ValueError, match="inside the Batch or as keywords, not both"):
        again.fit(batch, labels=digits.train.labels[:200], progress=False)
    with pytest.raises(ValueError, match="vae does not use labels"):
        aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(8,)).fit(
            batch, epochs=1, progress=False)


def test_data_sources_count_their_steps(digits, tmp_path):
    import numpy as np

    from aevae.data.streaming import NpyStream
    from aevae.training import ChunkedStream, InMemory, TorchDataset, data_source

    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(8,))
    x = digits.train.x[:250]
    path = tmp_path / "x.npy"
    np.save(path, x.reshape(len(x), -1))
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x))
    for data, kind in [(x, InMemory), (dataset, TorchDataset), (NpyStream(path), ChunkedStream)]:
        source = data_source(model, data)
        assert isinstance(source, kind) and len(source) == 250
        assert source.steps_per_epoch(100) == 3


def test_a_closed_form_model_writes_a_complete_run_and_refuses_to_overwrite(digits, tmp_path):
    import json

    model = aevae.make("pca", input_shape=digits.shape, latent_dim=4)
    model.fit(digits.train.x, validation=digits.test.x, out=tmp_path / "run",
              run_files={"data.json": {"data": "digits"}}, progress=False)
    files = sorted(path.name for path in (tmp_path / "run").iterdir())
    assert files == ["config.json", "data.json", "history.csv", "model.safetensors",
                     "training.json"]
    assert json.loads((tmp_path / "run" / "training.json").read_text())["epochs"] is None
    assert model.history_.best_epoch is None  # a solve has no best epoch
    with pytest.raises(FileExistsError, match="already holds a training run"):
        aevae.make("pca", input_shape=digits.shape, latent_dim=4).fit(
            digits.train.x, out=tmp_path / "run", progress=False)


def test_a_hidden_progress_bar_never_reads_the_loss_mid_epoch(digits, monkeypatch):
    # Under pytest stderr is no terminal, so the bar is hidden; reading the running loss for it
    # would make a GPU wait for its queue every 25 steps for nothing.
    def refuse(self):
        raise AssertionError("the running loss was read for a hidden progress bar")

    monkeypatch.setattr(TrainingStep, "running_loss", refuse)
    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    model.fit(digits.train.x[:1000], epochs=1, batch_size=20, progress=True, device="cpu")
    assert len(model.history_.epochs) == 1
