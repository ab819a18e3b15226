"""The training loop: learning, determinism, checkpoints, resume, divergence, PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import aevae
from aevae.data import DataError
from aevae.training import CHECKPOINT_FILE, TrainingDivergedError, fit


def _small_vae(digits, **options):
    return aevae.make("vae", input_shape=digits.shape, latent_dim=8, hidden=(64,), **options)


def test_vae_improves_validation_elbo_on_digits(digits):
    model = _small_vae(digits)
    model.fit(digits.train.x, validation=digits.test.x, epochs=6, batch_size=64, progress=False)
    elbo = model.history_.column("validation_elbo")
    assert elbo[-1] > elbo[0] + 3.0, elbo  # nats per example
    assert all(np.isfinite(elbo))
    assert model.history_.best_epoch == int(np.argmax(elbo)) + 1


def test_same_seed_same_result(digits):
    weights = []
    for _ in range(2):
        model = _small_vae(digits)
        model.fit(digits.train.x[:300], epochs=2, batch_size=50, seed=7, progress=False)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
    other = _small_vae(digits)
    other.fit(digits.train.x[:300], epochs=2, batch_size=50, seed=8, progress=False)
    assert not torch.equal(other.state_dict()["decoder.body.0.weight"],
                           weights[0]["decoder.body.0.weight"])


def test_run_directory_contents(tmp_path, digits):
    model = _small_vae(digits)
    model.fit(digits.train.x[:200], validation=digits.test.x[:100], epochs=2, batch_size=50,
              out=tmp_path, progress=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "history.csv", CHECKPOINT_FILE,
            "training.json"} <= names
    assert not [name for name in names if name.endswith(".tmp")]
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,train_reconstruction,train_kl")
    assert len(lines) == 3


class _Killed(Exception):
    pass


def _kill_during(model, at_step):
    """Make the model's loss raise at a given call, as if the process were killed there."""
    original, calls = model.loss, {"count": 0}

    def loss(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == at_step:
            raise _Killed
        return original(*args, **kwargs)

    model.loss = loss


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, digits):
    x, valid = digits.train.x[:400], digits.test.x[:100]
    settings = dict(validation=valid, epochs=4, batch_size=50, seed=3, progress=False)
    reference = _small_vae(digits, norm="batch")
    fit(reference, x, out=tmp_path / "reference", **settings)

    interrupted = _small_vae(digits, norm="batch")
    # 8 steps per epoch; die in the middle of epoch 3 (after two checkpoints).
    _kill_during(interrupted, at_step=2 * 8 + 8 + 5)  # + validation calls of epochs 1-2
    with pytest.raises(_Killed):
        fit(interrupted, x, out=tmp_path / "resumed", **settings)
    resumed = _small_vae(digits, norm="batch")  # a new process: fresh model object
    history = fit(resumed, x, out=tmp_path / "resumed", resume=True, **settings)

    assert len(history.epochs) == 4
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)
    saved = (tmp_path / "reference" / "history.csv").read_text().splitlines()
    again = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    strip = lambda lines: [line.rsplit(",", 1)[0] for line in lines]  # noqa: E731
    assert strip(saved) == strip(again)


class _FinalScale(aevae.training.Callback):
    def fit_end(self, state):
        self.seen = state.stepper.precision.scaler.state_dict()


def test_a_resume_keeps_the_loss_scale_fp16_had_learnt(tmp_path, digits, monkeypatch):
    """fp16's GradScaler is CUDA's: a CPU scaler stands in for it (tests/test_cuda.py runs the
    real one). A resumed run carries on with the scale it had, not a fresh one."""
    from aevae.training import devices

    plain = devices.Precision.__init__

    def with_scaler(self, name, device):
        plain(self, "fp32", device)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)

    monkeypatch.setattr(devices.Precision, "__init__", with_scaler)
    x = digits.train.x[:400]
    settings = dict(batch_size=50, seed=3, progress=False)  # 8 steps per epoch
    whole = _FinalScale()
    fit(_small_vae(digits), x, epochs=4, callbacks=[whole], **settings)
    fit(_small_vae(digits), x, epochs=2, out=tmp_path, **settings)
    resumed = _FinalScale()
    fit(_small_vae(digits), x, epochs=4, out=tmp_path, resume=True, callbacks=[resumed],
        **settings)
    assert whole.seen["scale"] == 2.0 ** 20  # 32 steps: grown every third
    assert resumed.seen == whole.seen


def test_existing_run_is_not_overwritten(tmp_path, digits):
    model = _small_vae(digits)
    model.fit(digits.train.x[:100], epochs=1, out=tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        _small_vae(digits).fit(digits.train.x[:100], epochs=1, out=tmp_path, progress=False)


def test_a_folder_holding_a_saved_model_or_the_users_files_is_not_overwritten(tmp_path,
                                                                                digits):
    x = digits.train.x[:100]
    saved = _small_vae(digits)
    saved.save(tmp_path / "saved")
    before = (tmp_path / "saved" / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="already holds config.json, model.safetensors "
                                              "and no training run to resume"):
        _small_vae(digits).fit(x, epochs=1, out=tmp_path / "saved", progress=False)
    assert (tmp_path / "saved" / "model.safetensors").read_bytes() == before
    solved = aevae.make("pca", input_shape=digits.shape, latent_dim=2)
    solved.fit(x, out=tmp_path / "pca", progress=False)
    for resume in (False, True):  # a finished closed-form run is no VAE run to resume
        with pytest.raises(FileExistsError, match="already holds"):
            _small_vae(digits).fit(x, epochs=1, out=tmp_path / "pca", resume=resume,
                                   progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"my": "settings"}')
    with pytest.raises(FileExistsError, match="already holds config.json"):
        _small_vae(digits).fit(x, epochs=1, out=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "config.json").read_text() == '{"my": "settings"}'
    # A run killed while writing its first epoch (training.json and weights, no checkpoint yet)
    # is still a run: refused as one, and resumed from the start.
    killed = tmp_path / "killed"
    _small_vae(digits).fit(x, epochs=1, out=killed, progress=False)
    (killed / "checkpoint.safetensors").unlink()
    with pytest.raises(FileExistsError, match="already holds a training run that wrote no "
                                              "checkpoint"):
        _small_vae(digits).fit(x, epochs=1, out=killed, progress=False)
    with pytest.warns(RuntimeWarning, match="nothing to resume"):
        _small_vae(digits).fit(x, epochs=1, out=killed, resume=True, progress=False)
    assert (killed / "checkpoint.safetensors").is_file()


def test_one_training_process_per_run_folder(tmp_path, digits):
    """Two trainings into one folder would interleave their files (one's weights beside the
    other's records): the second is refused while the first's process lives; the lock file a
    killed process leaves behind locks nothing."""
    import subprocess
    import sys

    from aevae.training.checkpoints import LOCK_FILE

    x = digits.train.x[:100]
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"handle = os.open({str(busy / LOCK_FILE)!r}, os.O_CREAT | os.O_RDWR)\n"
         "fcntl.flock(handle, fcntl.LOCK_EX)\n"
         "os.write(handle, b'pid 1 on elsewhere')\n"
         "print('locked', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FileExistsError, match="is being trained into by another aevae "
                                                  "process \\(pid 1 on elsewhere\\)"):
            _small_vae(digits).fit(x, epochs=1, out=busy, progress=False)
        assert sorted(path.name for path in busy.iterdir()) == [LOCK_FILE]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    stale = busy  # its holder was killed: the file it left locks nothing
    _small_vae(digits).fit(x, epochs=1, out=stale, progress=False)
    assert (stale / "model.safetensors").is_file() and not (stale / LOCK_FILE).exists()
    # A failure before the first epoch (here a callback's) gives the lock and folder back,
    # and a refused resume leaves the run resumable.

    class Refuses(aevae.training.Callback):
        def fit_start(self, state):
            raise RuntimeError("not today")

    with pytest.raises(RuntimeError, match="not today"):
        _small_vae(digits).fit(x, epochs=1, out=tmp_path / "new" / "run", progress=False,
                               callbacks=[Refuses()])
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="cannot resume"):
        _small_vae(digits).fit(x, epochs=2, out=stale, resume=True, learning_rate=0.1,
                               progress=False)
    assert not (stale / LOCK_FILE).exists()
    _small_vae(digits).fit(x, epochs=2, out=stale, resume=True, progress=False)


def test_resume_after_completion_is_a_no_op(tmp_path, digits):
    model = _small_vae(digits)
    model.fit(digits.train.x[:100], epochs=2, out=tmp_path, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = _small_vae(digits)
    again.fit(digits.train.x[:100], epochs=2, out=tmp_path, resume=True, progress=False)
    for key, value in before.items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, digits, poison_loss):
    model = _small_vae(digits)
    model.fit(digits.train.x[:100], epochs=1, batch_size=50, out=tmp_path, progress=False)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = (tmp_path / CHECKPOINT_FILE).read_bytes()
    poison_loss(model)
    with pytest.raises(TrainingDivergedError, match="loss is nan at epoch 2.*epoch 1.* is kept"):
        model.fit(digits.train.x[:100], epochs=3, batch_size=50, out=tmp_path, resume=True,
                  progress=False)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == checkpoint
    for key, value in good.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_early_stopping_restores_best(digits):
    model = _small_vae(digits)
    model.fit(digits.train.x[:200], validation=digits.test.x[:100], epochs=200, batch_size=100,
              learning_rate=1e-2, patience=2, progress=False)
    history = model.history_
    assert history.stopped_early and len(history.epochs) < 200
    assert len(history.epochs) == history.best_epoch + 2
    best = min(history.column("validation_loss"))
    terms = model.loss_terms(digits.test.x[:100])
    assert abs(float(np.mean(terms["loss"])) - best) < 2.0  # stochastic ELBO, same weights


def test_kl_schedule_and_gradient_clipping(digits):
    model = _small_vae(digits)
    model.fit(digits.train.x[:200], epochs=2, batch_size=50, kl_schedule="linear:8",
              gradient_clip=1.0, progress=False)
    weights = model.history_.column("kl_weight")
    assert weights == pytest.approx([3 / 8, 7 / 8])  # the weight at the last step


def test_dataset_streaming_path(digits):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(digits.train.x[:200]))
    model = _small_vae(digits)
    model.fit(dataset, epochs=2, batch_size=50, progress=False)
    assert len(model.history_.epochs) == 2
    # A dataset's examples in another arrangement of the same values are refused, as arrays
    # are, not reshaped into scrambled images.
    images = np.random.default_rng(0).random((40, 3, 4, 4), dtype=np.float32)
    channels_last = torch.utils.data.TensorDataset(torch.from_numpy(
        images.transpose(0, 2, 3, 1).copy()))
    colour = aevae.make("ae", input_shape=(3, 4, 4), latent_dim=2, hidden=(8,), seed=0)
    with pytest.raises(DataError, match="the dataset's examples are shaped \\(4, 4, 3\\) but "
                                        "the model expects \\(3, 4, 4\\); channels last"):
        colour.fit(channels_last, epochs=1, batch_size=20, progress=False)
    # (x, y) tuples pass x on only: a model that reads labels would train without them.
    labelled = torch.utils.data.TensorDataset(torch.from_numpy(digits.train.x[:200]),
                                              torch.from_numpy(digits.train.labels[:200]))
    m2 = aevae.make("m2", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    with pytest.raises(ValueError, match="m2 reads labels beside x, which streamed data does "
                                         "not carry"):
        m2.fit(labelled, epochs=1, batch_size=50, progress=False)


def test_a_datasets_batches_are_checked_as_arrays_are(digits):
    """8-bit pixels for a Bernoulli decoder (a loss of 1e20 before) and a NaN (reported as a
    divergence before) are refused naming the data."""
    model = _small_vae(digits)
    pixels = torch.utils.data.TensorDataset(torch.from_numpy(
        (digits.train.x[:100] * 255).astype(np.uint8)))
    with pytest.raises(DataError, match="a batch of the training dataset has values outside "
                                        "\\[0, 1\\].*divide by 255"):
        model.fit(pixels, epochs=1, batch_size=50, progress=False)
    broken = digits.train.x[:100].copy()
    broken[70, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="a batch of the training dataset contains 1 NaN"):
        _small_vae(digits).fit(torch.utils.data.TensorDataset(torch.from_numpy(broken)),
                               epochs=1, batch_size=50, progress=False)


@pytest.mark.parametrize("source", ["arrays", "dataset", "stream"])
def test_batch_norm_skips_a_last_batch_of_one_example(digits, source, tmp_path):
    """65 examples in batches of 64 leave one: batch norm has no statistics for it (a crash at
    the end of the first epoch before). It is left out of that epoch (another one each epoch:
    the order is shuffled)."""
    from aevae.data import NpyStream

    x = digits.train.x[:65]
    data = {"arrays": lambda: x,
            "dataset": lambda: torch.utils.data.TensorDataset(torch.from_numpy(x)),
            "stream": lambda: (np.save(tmp_path / "x.npy", x), NpyStream(tmp_path / "x.npy"))[1]}
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0,
                       norm="batch")
    model.fit(data[source](), epochs=2, batch_size=64, progress=False)
    assert len(model.history_.epochs) == 2
    with pytest.raises(ValueError, match="batch norm needs at least two examples a step"):
        model.fit(x, epochs=1, batch_size=1, progress=False)


def test_linear_ae_reaches_pca_reconstruction_error(digits):
    x = digits.train.x.reshape(len(digits.train.x), -1)
    latent = 8
    pca = PCA(latent).fit(x)
    pca_error = ((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(1).mean()
    model = aevae.make("ae", input_shape=(64,), latent_dim=latent, network="linear",
                       likelihood="gaussian")
    model.fit(x, epochs=150, batch_size=128, learning_rate=1e-2, progress=False)
    ae_error = ((model.reconstruct(x) - x) ** 2).sum(1).mean()
    assert ae_error <= 1.02 * pca_error, (ae_error, pca_error)
    assert ae_error >= 0.999 * pca_error  # PCA is optimal among rank-8 linear maps


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((0, 1, 8, 8), np.float32), "empty"),
        (np.full((4, 1, 8, 8), np.nan, np.float32), "NaN"),
        (np.full((4, 1, 8, 8), np.inf, np.float32), "inf"),
        (np.full((4, 1, 8, 8), 3.0, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 1, 9, 9), np.float32), "model expects"),
        (np.array([["a"] * 64] * 4), "numeric"),
    ],
)
def test_bad_training_data_gets_one_line_error(digits, data, message):
    model = _small_vae(digits)
    with pytest.raises(DataError, match=message) as error:
        model.fit(data, epochs=1, progress=False)
    assert "\n" not in str(error.value)


def test_bad_training_settings(digits):
    model = _small_vae(digits)
    with pytest.raises(ValueError, match="needs validation data"):
        model.fit(digits.train.x[:10], epochs=1, patience=2, progress=False)
    with pytest.raises(ValueError, match="resume=True needs"):
        model.fit(digits.train.x[:10], epochs=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.fit(digits.train.x[:10], epochs=1, optimizer="lbfgs", progress=False)
    with pytest.raises(ValueError, match="bad KL schedule"):
        model.fit(digits.train.x[:10], epochs=1, kl_schedule="warmup", progress=False)


def test_a_resume_continues_the_run_as_it_was_trained(tmp_path, digits):
    import warnings

    from aevae.training import Callback

    x, valid = digits.train.x[:200], digits.test.x[:100]
    settings = dict(validation=valid, batch_size=50, learning_rate=2e-3, seed=1,
                    progress=False)
    _small_vae(digits).fit(x, epochs=2, out=tmp_path / "run", **settings)
    # An option that changes what a step does is refused: the checkpoint's optimizer state
    # would silently keep the old learning rate, and the records would claim the new one.
    for changed, message in ((dict(learning_rate=0.5), "learning_rate 0.5: the run was "
                              "trained with 0.002"),
                             (dict(optimizer="sgd"), "optimizer 'sgd'"),
                             (dict(batch_size=20), "batch_size 20")):
        with pytest.raises(ValueError, match=f"cannot resume .* with {message}"):
            _small_vae(digits).fit(x, epochs=3, out=tmp_path / "run", resume=True,
                                   **{**settings, **changed})
    with pytest.raises(ValueError, match="without validation data"):
        _small_vae(digits).fit(x, epochs=3, out=tmp_path / "run", resume=True,
                               **{**settings, "validation": None})
    with pytest.warns(RuntimeWarning, match="nothing to resume in .*nowhere"):
        _small_vae(digits).fit(x, epochs=1, out=tmp_path / "nowhere", resume=True, **settings)

    class StopAtTwo(Callback):
        def epoch_end(self, state, record):
            state.history.stopped_early = record["epoch"] >= 2

    stopped = tmp_path / "stopped"
    _small_vae(digits).fit(x, epochs=6, out=stopped, callbacks=[StopAtTwo()], **settings)
    # A callback's stop (a time budget, say) is not the run's own: a resume goes on...
    again = _small_vae(digits)
    again.fit(x, epochs=6, out=stopped, resume=True, **settings)
    assert len(again.history_.epochs) == 6
    # ...and a run that has its epochs says that nothing is left to train.
    with pytest.warns(RuntimeWarning, match="has trained 6 epoch\\(s\\) already"):
        _small_vae(digits).fit(x, epochs=6, out=stopped, resume=True, **settings)
    # Early stopping by its own patience stops it again, saying so, while a larger patience
    # than it waited (or none) trains it further.
    patient = tmp_path / "patient"
    _small_vae(digits).fit(x, epochs=40, patience=1, out=patient, **settings)
    first = _small_vae(digits)
    with pytest.warns(RuntimeWarning, match="stopped early at epoch .*a larger patience"):
        first.fit(x, epochs=40, patience=1, out=patient, resume=True, **settings)
    done = len(first.history_.epochs)
    assert first.history_.stopped_early and done < 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        further = _small_vae(digits)
        further.fit(x, epochs=done + 2, patience=50, out=patient, resume=True, **settings)
    assert len(further.history_.epochs) == done + 2
