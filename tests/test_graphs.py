"""Steps replayed from a CUDA graph (``cuda_graphs=True``): the bookkeeping around capture,
checked on the CPU with a stand-in for capture that replays by running the step again. Capture
itself runs on a GPU in tests/test_cuda.py."""

from __future__ import annotations

import warnings

import pytest
import torch

import aevae
from aevae.training import Callback, Trainer, TrainingConfig, graphs

EXAMPLES = 610  # 12 full batches of 50 and a ragged one of 10 per epoch
BATCH = 50


class _Seen(Callback):
    """Keeps the graphed steps and the optimizers' param groups as the fit ended."""

    graphs = None
    groups = ()

    def fit_end(self, state):
        self.graphs = state.graphs
        self.groups = [dict(group) for optimizer in state.stepper.optimizers.values()
                       for group in optimizer.param_groups]


@pytest.fixture
def stand_in_capture(monkeypatch):
    """Capture allowed on the CPU; "capturing" records nothing and the replay runs the step,
    as replaying a real graph does."""
    monkeypatch.setattr(graphs, "CAPTURE_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(graphs, "capture", lambda run: run)


def _fit(digits, cuda_graphs: bool, model: str = "vae", callbacks=(), **options):
    network = aevae.make(model, input_shape=digits.shape, latent_dim=4, hidden=(32,), seed=0)
    config = TrainingConfig(epochs=3, batch_size=BATCH, seed=0, device="cpu", compile=False,
                            cuda_graphs=cuda_graphs, **options)
    history = Trainer(config, callbacks).fit(network, digits.train.x[:EXAMPLES],
                                             validation=digits.test.x[:100])
    return network, history


def _assert_identical(first, second) -> None:
    (model, history), (reference, expected) = first, second
    assert history.epochs == [dict(record, seconds=other["seconds"])
                              for record, other in zip(expected.epochs, history.epochs)]
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_graphed_steps_train_exactly_as_eager_steps(digits, stand_in_capture):
    # A moving KL weight, a ragged last batch and running sums over three epochs: every
    # number the same as the eager loop's.
    seen = _Seen()
    graphed = _fit(digits, True, callbacks=[seen], kl_schedule="linear:20")
    eager = _fit(digits, False, kl_schedule="linear:20")
    _assert_identical(graphed, eager)
    # 12 full batches per epoch: the first 3 warm up, the 4th is captured, 33 replays in all;
    # the ragged batch of each epoch steps eagerly.
    assert seen.graphs.warmed == graphs.WARMUP and seen.graphs.failed is None
    assert seen.graphs.replays == 3 * (EXAMPLES // BATCH) - graphs.WARMUP
    assert all(group["capturable"] is False for group in seen.groups)  # checkpoints say False


def test_a_failed_capture_warns_and_trains_on_eagerly(digits, monkeypatch):
    def refuse(run):
        raise RuntimeError("operation not permitted when stream is capturing\nmore")

    monkeypatch.setattr(graphs, "CAPTURE_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(graphs, "capture", refuse)
    seen = _Seen()
    with pytest.warns(RuntimeWarning, match=r"cuda_graphs: capturing the step failed "
                      r"\(RuntimeError: operation not permitted when stream is capturing\); "
                      r"training continues eagerly"):
        graphed = _fit(digits, True, model="ae", callbacks=[seen])
    _assert_identical(graphed, _fit(digits, False, model="ae"))
    assert seen.graphs.replays == 0
    assert all(group["capturable"] is False for group in seen.groups)


class _HalveTheLearningRate(Callback):
    """Halves the learning rate at step 20 (a schedule a user might write)."""

    def batch_end(self, state):
        if state.step == 20:
            for group in state.stepper.optimizer.param_groups:
                group["lr"] /= 2


def test_optimizer_settings_changed_after_capture_end_the_replays(digits, stand_in_capture):
    # The captured update holds the learning rate as a constant: a changed one must not be
    # silently ignored.
    seen = _Seen()
    with pytest.warns(RuntimeWarning, match="cuda_graphs: the optimizer's settings changed "
                      "after the step was captured; training continues eagerly"):
        graphed = _fit(digits, True, model="ae", callbacks=[_HalveTheLearningRate(), seen])
    _assert_identical(graphed, _fit(digits, False, model="ae",
                                    callbacks=[_HalveTheLearningRate()]))
    assert seen.graphs.replays == 20 - graphs.WARMUP - 1  # steps 4..20 (ragged step 13 eager)


@pytest.mark.parametrize("model, options, transform, reason", [
    ("vae", {}, None, "they need a CUDA device, not cpu"),
    ("beta_vae", {"capacity_max": 5.0}, None, "beta_vae's loss changes with the step number"),
    ("vae", {}, torch.round, "a batch transform is Python run every step"),
    ("adversarial_ae", {}, None, "adversarial_ae takes a second optimizer step per batch"),
])
def test_a_run_that_cannot_be_captured_says_why_and_steps_eagerly(
        digits, monkeypatch, model, options, transform, reason):
    if model != "vae" or transform is not None:  # past the device check to the reason itself
        monkeypatch.setattr(graphs, "CAPTURE_DEVICE_TYPES", ("cuda", "cpu"))
    network = aevae.make(model, input_shape=digits.shape, latent_dim=4, hidden=(32,), seed=0,
                         **options)
    seen = _Seen()
    config = TrainingConfig(epochs=1, batch_size=BATCH, seed=0, device="cpu", compile=False,
                            cuda_graphs=True)
    with pytest.warns(RuntimeWarning, match=f"cuda_graphs: this run steps eagerly: {reason}"):
        Trainer(config, [seen], batch_transform=transform).fit(network, digits.train.x[:200])
    assert seen.graphs is None


def test_cuda_graphs_is_off_unless_asked_for_and_must_be_a_bool(digits):
    assert TrainingConfig().cuda_graphs is False
    with pytest.raises(ValueError, match="cuda_graphs must be True or False, got 'yes'"):
        TrainingConfig(cuda_graphs="yes")
    seen = _Seen()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(digits, False, model="ae", callbacks=[seen])
    assert seen.graphs is None


class _Watched(int):
    """A step number that notes being read (arithmetic, comparison, conversion), not merely
    passed along."""

    read = False


def _noting(name):
    def method(self, *arguments):
        _Watched.read = True
        return getattr(int, name)(int.__int__(self), *arguments)
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__floordiv__", "__mod__", "__pow__", "__lt__", "__le__", "__gt__",
              "__ge__", "__eq__", "__ne__", "__float__", "__index__", "__int__", "__bool__"):
    setattr(_Watched, _name, _noting(_name))


def _golden_fixture():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "golden_fixture.py"
    spec = importlib.util.spec_from_file_location("golden_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = [(name, {}) for name in sorted(aevae.models.MODELS)
         if not aevae.models.MODELS[name].closed_form] + [("beta_vae", {"capacity_max": 5.0})]


@pytest.mark.parametrize("name, options", CASES, ids=[
    name + ("-capacity" if options else "") for name, options in CASES])
def test_a_loss_that_reads_the_step_says_so(name, options):
    # A captured step replays the step number it was captured at: every model whose loss
    # reads it must declare loss_uses_step, so that its runs step eagerly.
    fixture = _golden_fixture()
    model = fixture.build(name, **options)
    x, _, fields = fixture.model_inputs(name)
    from aevae.training.batches import as_training_batch
    batch = as_training_batch(model, aevae.data.batch.Batch(x, **fields), "x").take(slice(0, 16))
    model.train()
    _Watched.read = False
    model.batch_loss(batch, kl_weight=1.0, step=_Watched(7))
    assert _Watched.read == model.loss_uses_step
