"""Labels: the named batch's label fields, the conditional VAE and AE, M2 with 0%, some and all
labels, the mixed batches that carry few labels to every step, and M1+M2."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

import aevae
from aevae.data.batch import Batch, make_batch
from aevae.models.m2 import fit_m1_m2
from aevae.training.batches import mixed as _mixed


def known_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    known = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        known[generator.choice(members, per_class, replace=False)] = True
    return known


def test_make_batch_checks_every_field():
    x = torch.zeros(4, 3, 2)
    batch = make_batch(x, {"labels": [0, 1, 2, 3], "lengths": [3, 1, 2, 3],
                           "observed": np.ones((4, 6), bool), "label_known": [1, 0, 1, 0]})
    assert batch.observed.shape == (4, 3, 2) and batch.label_known.dtype == torch.bool
    assert batch.step_mask().tolist()[1] == [1.0, 0.0, 0.0]
    assert len(batch.take(torch.tensor([0, 2]))) == 2
    for fields, message in (({"labels": [0, 1]}, "expected 4 values"),
                            ({"lengths": [0, 1, 1, 1]}, "each must be in 1..3"),
                            ({"labels": [0, -1, 0, 0]}, "non-negative"),
                            ({"observed": np.ones(5)}, "one entry per value"),
                            ({"label_known": [1, 1, 1, 1]}, "label_known needs labels"),
                            ({"weights": [1, 1, 1, 1]}, "unknown batch field")):
        with pytest.raises(ValueError, match=message):
            make_batch(x, fields)


def test_mixed_batches_carry_labels_to_every_step():
    labels = torch.arange(100) % 10
    known = torch.zeros(100, dtype=torch.bool)
    known[:7] = True
    train = Batch(torch.zeros(100, 1), labels=labels, label_known=known)
    batches = [train.take(indices)
               for indices in _mixed(train, 16, 4, torch.Generator().manual_seed(0))]
    assert len(batches) == 8  # 93 unlabelled examples, 12 per batch
    assert all(int(batch.label_known.sum()) == 4 for batch in batches)
    seen = torch.cat([batch.x for batch in batches])
    assert len(seen) == 8 * 4 + 93


def test_models_refuse_fields_they_do_not_use(digits):
    vae = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="vae does not use labels"):
        vae.fit(digits.train.x, labels=digits.train.labels, epochs=1, progress=False)
    with pytest.raises(ValueError, match="vae does not use labels"):
        vae.loss_terms(digits.test.x, labels=digits.test.labels)


@pytest.mark.parametrize("name", ["cvae", "conditional_ae"])
def test_a_conditional_model_refuses_validation_data_without_labels_before_training(name,
                                                                                    digits):
    """It failed after a whole epoch, in the first validation pass."""
    from aevae.training import Callback

    class Counting(Callback):
        steps = 0

        def batch_end(self, state, *arguments):
            Counting.steps += 1

    model = aevae.make(name, input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    with pytest.raises(ValueError, match=f"{name} is conditioned on a label: the validation "
                                         "data needs labels too"):
        model.fit(digits.train.x[:100], labels=digits.train.labels[:100],
                  validation=digits.test.x[:20], epochs=1, progress=False,
                  callbacks=[Counting()])
    assert Counting.steps == 0


@pytest.mark.parametrize("name", ["cvae", "m2"])
def test_conditional_decoders_take_likelihoods_with_several_outputs_per_value(name, digits):
    # student-t: location, scale and degrees of freedom per pixel, so 3 x 64 decoder outputs.
    model = aevae.make(name, input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0,
                       likelihood="student-t")
    x, labels = digits.train.x[:200], digits.train.labels[:200]
    model.fit(x, labels=labels, epochs=2, batch_size=50, progress=False)
    elbo = model.elbo(digits.test.x[:20], labels=digits.test.labels[:20])
    assert np.all(np.isfinite(elbo))
    samples = model.sample(5, labels=3, seed=0)
    assert samples.shape == (5, *digits.shape) and np.all(np.isfinite(samples))


@pytest.mark.parametrize("name", ["cvae", "conditional_ae"])
def test_conditional_models_generate_the_requested_class(name, digits, tmp_path):
    from aevae.metrics.classifier import load_or_train_feature_classifier

    model = aevae.make(name, input_shape=digits.shape, latent_dim=4, hidden=(64,), seed=0)
    model.fit(digits.train.x, labels=digits.train.labels, epochs=40, batch_size=64,
              progress=False, out=tmp_path / name)
    classifier = load_or_train_feature_classifier("digits", digits.train.x, digits.train.labels,
                                                  tmp_path / "classifiers", seed=0)
    for target in (0, 3, 7):
        samples = model.sample(50, labels=target, seed=1)
        agreement = np.mean(classifier.probabilities(samples).argmax(1) == target)
        if name == "cvae":  # prior draws; a plain AE's codes are not N(0, I)
            assert agreement >= 0.8, (target, agreement)
    reconstructed = model.reconstruct(digits.test.x[:10], labels=digits.test.labels[:10])
    assert reconstructed.shape == (10, *digits.shape)
    again = aevae.load(tmp_path / name)
    np.testing.assert_array_equal(again.encode(digits.test.x[:4], labels=2),
                                  model.encode(digits.test.x[:4], labels=2))
    with pytest.raises(ValueError, match="pass labels"):
        model.encode(digits.test.x[:4])
    with pytest.raises(ValueError, match="classes 0..9"):
        model.sample(2, labels=12)


@pytest.mark.parametrize("share", [0.0, 0.1, 1.0])
def test_m2_trains_with_no_some_or_all_labels(share, digits):
    labels = digits.train.labels
    if share == 1.0:
        known = np.ones(len(labels), dtype=bool)
    elif share == 0.0:
        known = np.zeros(len(labels), dtype=bool)
    else:
        known = known_subset(labels, 13)
    model = aevae.make("m2", input_shape=digits.shape, latent_dim=4, hidden=(64,),
                       classifier_hidden=(64,), seed=0)
    mixed = 8 if 0 < share < 1 else None
    model.fit(digits.train.x, labels=labels, label_known=known, labelled_per_batch=mixed,
              epochs=8, batch_size=64, progress=False, validation=digits.test.x)
    record = model.history_.epochs[-1]
    assert np.isfinite(record["train_loss"]) and np.isfinite(record["validation_loss"])
    if share == 0.0:
        assert float(model.alpha) == 0.0 and record["train_classification"] == 0.0
    else:
        expected = 0.1 * len(labels) / known.sum()
        assert float(model.alpha) == pytest.approx(expected)
    accuracy = np.mean(model.predict(digits.test.x) == digits.test.labels)
    if share > 0:
        assert accuracy > 0.6, accuracy
    # The unlabelled bound sums the labels out: it is below the labelled one's... for the
    # right label, log p(x) >= log p(x, y).
    unlabelled = model.loss_terms(digits.test.x[:20])["elbo"]
    labelled = model.loss_terms(digits.test.x[:20], labels=digits.test.labels[:20])["elbo"]
    assert np.all(np.isfinite(unlabelled)) and np.all(np.isfinite(labelled))


def test_m2_weighs_labelled_and_unlabelled_parts_by_their_share_of_the_data(digits):
    """Kingma et al.'s objective sums L over the labelled and U over the unlabelled examples:
    a batch's labelled mean weighs the labelled share of the data, however many labels
    labelled_per_batch puts in it ("data"); "batch" weighs the two means equally."""
    x, labels = torch.from_numpy(digits.train.x[:10]), torch.from_numpy(digits.train.labels[:10])
    known = torch.tensor([True, True] + [False] * 8)
    whole = Batch(torch.from_numpy(digits.train.x), labels=torch.from_numpy(digits.train.labels),
                  label_known=torch.arange(len(digits.train)) < 20)
    losses = {}
    for share in ("data", "batch"):
        model = aevae.make("m2", input_shape=digits.shape, latent_dim=4, hidden=(16,),
                           classifier_hidden=(16,), labelled_share=share, seed=0)
        model.prepare_training(whole, len(whole), labelled_per_batch=2)
        model.train()
        torch.manual_seed(0)
        losses[share] = model.batch_loss(Batch(x, labels=labels, label_known=known)).loss
    fraction = 20 / len(digits.train)
    torch.testing.assert_close(losses["data"][known], fraction * losses["batch"][known])
    torch.testing.assert_close(losses["data"][~known], (1 - fraction) * losses["batch"][~known])
    with pytest.raises(ValueError, match="unknown labelled_share 'even'"):
        aevae.make("m2", input_shape=digits.shape, labelled_share="even")


def test_m2_data_share_is_unbiased_on_uniformly_drawn_batches():
    """Without labelled_per_batch a batch holds labels at random (none, most of the time, with
    10 in 5,000): averaged over batches, the labelled examples must weigh the labelled share of
    the data, as the objective says, not that share times the chance that a batch holds one."""
    count, labelled, size = 5000, 10, 100
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(count, 3, generator=generator)
    labels = torch.randint(0, 2, (count,), generator=generator)
    known = torch.arange(count) < labelled
    model = aevae.make("m2", input_shape=(3,), latent_dim=2, hidden=(4,), classes=2,
                       classifier_hidden=(4,), labelled_share="data", seed=0)
    model.prepare_training(Batch(x, labels=labels, label_known=known), count)
    model.train()
    weight, batches = 0.0, 400
    with torch.no_grad():
        for _ in range(batches):
            index = torch.randperm(count, generator=generator)[:size]
            batch = Batch(x[index], labels=labels[index], label_known=known[index])
            output = model.batch_loss(batch)
            terms = output.terms
            plain = (terms["reconstruction"] + terms["kl"] + math.log(2)
                     - terms["label_entropy"] + model.alpha * terms["classification"])
            weight += float((output.loss / plain)[known[index]].sum()) / size
    assert weight / batches == pytest.approx(labelled / count, rel=0.25)


def test_m1_m2_is_m2_on_a_vae_s_codes(digits):
    m1 = aevae.make("vae", input_shape=digits.shape, latent_dim=6, hidden=(64,), seed=0)
    m1.fit(digits.train.x, epochs=10, batch_size=64, progress=False)
    known = known_subset(digits.train.labels, 10)
    m2 = fit_m1_m2(m1, digits.train.x, labels=digits.train.labels, label_known=known,
                   m2_options={"hidden": (32,), "classifier_hidden": (32,), "seed": 0},
                   epochs=5, batch_size=64, labelled_per_batch=8, progress=False)
    assert m2.input_shape == (6,) and m2.config.likelihood == "gaussian-learned"
    predictions = m2.predict(m1.encode(digits.test.x))
    assert predictions.shape == (len(digits.test),) and 0 <= predictions.min()


def test_cli_trains_a_conditional_model_and_samples_varies_and_edits(tmp_path, capsys):
    from aevae.cli import main

    run = tmp_path / "cvae"
    assert main(["train", "cvae", "--data", "digits", "--latent-dim", "4", "--hidden", "32",
                 "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    assert main(["sample", str(run), "-n", "6", "--label", "3", "--out",
                 str(tmp_path / "threes.npy")]) == 0
    assert np.load(tmp_path / "threes.npy").shape == (6, 1, 8, 8)
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "any.png")]) == 2
    assert "cvae draws samples of a class: pass --label CLASS" in capsys.readouterr().err
    for command in (["evaluate", str(run)], ["reconstruct", str(run), "--out",
                                            str(tmp_path / "r.png")]):
        assert main(command) == 2
        assert (f"cvae encodes and decodes with a class, which `aevae {command[0]}` has no "
                "option to pass") in capsys.readouterr().err
    vae = tmp_path / "vae"
    assert main(["train", "vae", "--data", "digits", "--latent-dim", "4", "--hidden", "32",
                 "--epochs", "3", "--out", str(vae), "--quiet"]) == 0
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.save(tmp_path / "inputs.npy", (bunch.images[:5] / 16.0).astype(np.float32)[:, None])
    capsys.readouterr()
    assert main(["vary", str(vae), "--input", str(tmp_path / "inputs.npy"), "-n", "4",
                 "--out", str(tmp_path / "variants.npy")]) == 0
    variants = np.load(tmp_path / "variants.npy")
    assert variants.shape == (20, 1, 8, 8) and not np.allclose(variants[0], variants[1])
    assert main(["edit", str(vae), "--input", str(tmp_path / "inputs.npy"), "--from", "1",
                 "--to", "7", "--out", str(tmp_path / "edited.png")]) == 0
    assert (tmp_path / "edited.png").read_bytes()[:4] == b"\x89PNG"
    code = main(["sample", str(vae), "-n", "2", "--label", "3", "--out",
                 str(tmp_path / "x.png")])
    assert code == 2 and "not conditioned on a label" in capsys.readouterr().err
    assert main(["edit", str(vae), "--input", str(tmp_path / "inputs.npy"), "--out",
                 str(tmp_path / "y.png")]) == 2
    ae = tmp_path / "ae"
    assert main(["train", "ae", "--data", "digits", "--latent-dim", "4", "--hidden", "32",
                 "--epochs", "1", "--out", str(ae), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["vary", str(ae), "--input", str(tmp_path / "inputs.npy"), "-n", "3",
                 "--out", str(tmp_path / "same.npy")]) == 0
    assert "deterministic" in capsys.readouterr().err


def test_the_labels_benchmark_keeps_each_seed_and_resumes_only_under_the_same_budget(
        tmp_path, monkeypatch, load_benchmark):
    labels = load_benchmark("labels")
    trained = []

    def one_seed(seed, *_):  # canned errors (%) and seconds in place of the training
        trained.append(seed)
        return {"classifier on the 100 labels alone": (20.0 + seed, 1.0),
                "M2": (99.0 + seed, 60.0 * (seed + 1))}

    monkeypatch.setattr(labels, "one_seed", one_seed)
    arguments = argparse.Namespace(seeds="0,1", epochs=1, m2_epochs=1, threads=1, limit=None,
                                   device="cpu", results=tmp_path)
    x = np.zeros((10, 784), dtype=np.float32)
    conditional = {"per_class": {str(d): 0.9 + d / 100 for d in range(10)}, "mean": 0.945,
                   "classifier_test_accuracy": 0.99, "epochs_run": 1, "seconds": 5.0}
    (tmp_path / "labels.json").write_text(json.dumps(  # the CVAE's part stored already
        {"settings": labels.main_settings(arguments, len(x)), "records": [],
         "conditional": conditional}))
    labels.run_main(None, x, None, arguments, {})
    assert trained == [0, 1]
    arguments.seeds = "0,1,2"  # a later invocation trains only the seed not stored
    labels.run_main(None, x, None, arguments, {})
    assert trained == [0, 1, 2]
    stored = json.loads((tmp_path / "labels.json").read_text())
    assert [record["seed"] for record in stored["records"]] == [0, 1, 2]
    assert stored["conditional"] == conditional
    table = (tmp_path / "labels.md").read_text()
    # Errors 99, 100, 101: the interval of a percentage clipped at 100; std with ddof 1.
    m2 = next(line for line in table.splitlines() if line.startswith("| M2 |"))
    assert m2.startswith("| M2 | 100.00 [") and "100.00] | 1.00 | 99.00, 100.00, 101.00 |" in m2
    assert m2.endswith("| 11.97 | 2.0 |")  # published, mean minutes per seed
    assert "over 3 seeds" in table and "lowest class (digit 0) | 0.900 |" in table
    arguments.epochs, arguments.seeds = 2, "0"  # another budget: nothing stored is reused

    class TrainsTheCVAE(Exception):
        pass

    def classifier(*_, **__):  # the CVAE's part is redone too: stop there
        raise TrainsTheCVAE

    monkeypatch.setattr(labels, "load_or_train_feature_classifier", classifier)
    with pytest.raises(TrainsTheCVAE):
        labels.run_main(None, x, None, arguments, {})
    assert trained == [0, 1, 2, 0]
    stored = json.loads((tmp_path / "labels.json").read_text())
    assert [record["seed"] for record in stored["records"]] == [0] and not stored["conditional"]


def test_m2_reconstructs_decodes_and_estimates_log_p_x_with_the_class_summed_out(digits):
    import math

    import torch.nn.functional as F

    x, labels = digits.train.x[:400], digits.train.labels[:400]
    model = aevae.make("m2", input_shape=digits.shape, latent_dim=3, hidden=(32,), classes=10,
                       classifier_hidden=(32,), seed=0)
    model.fit(x, labels=labels, label_known=known_subset(labels, 10), epochs=3, progress=False)
    test = digits.test.x[:12]
    assert model.reconstruct(test).shape == test.shape
    assert model.impute(test, np.ones(test.shape, bool)).shape == test.shape
    decoded = model.decode(np.zeros((2, 3), np.float32), labels=[3, 7])
    np.testing.assert_array_equal(decoded, model.decode(np.zeros((2, 3), np.float32),
                                                        labels=np.array([3, 7])))
    for method, call in (("vary", lambda: model.vary(test, 2)),
                         ("interpolate", lambda: model.interpolate(test[0], test[1])),
                         ("traverse", lambda: model.traverse(test))):
        with pytest.raises(ValueError, match=f"m2 has no {method}\\(\\): it decodes a code"):
            call()
    # log p(x) = log sum_y p(y) p(x|y), each p(x|y) importance-sampled with q(z|x,y) at length.
    model.eval()
    tensor = torch.from_numpy(test)
    torch.manual_seed(0)
    with torch.no_grad():
        per_class = []
        for value in range(10):
            classes = torch.full((len(test),), value)
            q = model.conditional_posterior(tensor, classes)
            z = q.rsample(4000)
            condition = F.one_hot(classes, 10).float().repeat(4000, 1)
            output = model.decoder(z.reshape(-1, 3), condition).view(4000, *tensor.shape)
            weights = (model.likelihood.log_prob(tensor.expand(4000, *tensor.shape), output)
                       + model.prior.log_prob(z) - q.log_prob(z))
            per_class.append(torch.logsumexp(weights.double(), 0) - math.log(4000))
        reference = (torch.logsumexp(torch.stack(per_class), 0) - math.log(10)).numpy()
    estimate = model.log_likelihood(test, k=5000)
    np.testing.assert_allclose(estimate, reference, atol=0.05)
    assert estimate.mean() > np.asarray(model.elbo(test)).mean()
    # evaluate measures what M2 offers and says why it skips the rest.
    from aevae.metrics.evaluate import EvaluationSettings, evaluate

    report = evaluate(model, digits, metrics=["reconstruction", "interpolation"],
                      settings=EvaluationSettings(max_examples=50))["metrics"]
    assert report["reconstruction"]["mse"]["value"] > 0
    assert report["interpolation"] == {"available": False, "reason": "m2 decodes a code only "
                                       "together with a class: pass labels="}


@pytest.mark.parametrize("name", ["cvae", "conditional_ae"])
def test_conditional_models_name_what_they_cannot_do_without_labels(name, digits):
    model = aevae.make(name, input_shape=digits.shape, latent_dim=3, hidden=(16,), classes=10,
                       seed=0)
    x = digits.test.x[:4]
    for call in (lambda: model.vary(x, 2), lambda: model.traverse(x),
                 lambda: model.interpolate(x[0], x[1]),
                 lambda: model.impute(x, np.ones(x.shape, bool))):
        with pytest.raises(ValueError, match=f"{name} has no .*: it encodes and decodes with a "
                                             "class"):
            call()
    if name == "cvae":
        with pytest.raises(ValueError, match="cvae has no log_likelihood\\(\\): it models "
                                             "p\\(x\\|y\\)"):
            model.log_likelihood(x, k=2)
        assert np.isfinite(model.elbo(x, labels=np.arange(4))).all()


def test_sample_takes_a_class_by_the_name_the_data_gave_it(tmp_path, capsys):
    from aevae.cli import main

    rng = np.random.default_rng(0)
    kinds = np.array(["cat", "dog", "eel"])[np.arange(120) % 3]
    values = rng.random((120, 4)) + (np.arange(120) % 3)[:, None]
    lines = ["a,b,c,d,kind"] + [",".join(f"{v:.4f}" for v in row) + f",{kind}"
                                 for row, kind in zip(values, kinds)]
    (tmp_path / "pets.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "cvae"
    assert main(["train", "cvae", "--data", str(tmp_path / "pets.csv"), "--labels", "kind",
                 "--latent-dim", "2", "--hidden", "8", "--epochs", "1", "--out", str(run),
                 "--quiet"]) == 0
    assert json.loads((run / "data.json").read_text())["class_names"] == ["cat", "dog", "eel"]
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3", "--label", "dog", "--out",
                 str(tmp_path / "dogs.npy")]) == 0
    assert "samples of class 1 (dog)" in capsys.readouterr().out
    assert np.load(tmp_path / "dogs.npy").shape == (3, 4)
    assert main(["sample", str(run), "-n", "2", "--label", "dog", "--out",
                 str(tmp_path / "dogs.csv")]) == 0  # headed with the data's own columns
    assert (tmp_path / "dogs.csv").read_text().splitlines()[0] == "a,b,c,d"
    assert main(["sample", str(run), "-n", "3", "--label", "2", "--out",
                 str(tmp_path / "eels.npy")]) == 0
    assert "samples of class 2 (eel)" in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "3", "--label", "owl", "--out",
                 str(tmp_path / "owls.npy")]) == 2
    assert ("--label 'owl' is not a class of this run (its classes: cat, dog, eel)"
            in capsys.readouterr().err)
    assert main(["sample", str(run), "-n", "3", "--label", "3", "--out",
                 str(tmp_path / "x.npy")]) == 2
    assert "--label 3 is not a class of this run (0 to 2)" in capsys.readouterr().err


def test_a_conditional_model_refuses_labels_that_are_ids_not_classes(tmp_path, capsys):
    from aevae.cli import main

    rows = ["a,b,y"] + [f"{i % 7}.0,{i % 5}.0,{(0, 10**9)[i % 2]}" for i in range(60)]
    (tmp_path / "ids.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "cvae", "--data", str(tmp_path / "ids.csv"), "--labels", "y",
                 "--epochs", "1", "--hidden", "4", "--latent-dim", "1", "--out",
                 str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "run from 0 to 1000000000: a conditional model takes classes 0 to 9999" in err
    assert len(err.strip().splitlines()) == 1


def test_cvae_refuses_samples_it_would_ignore_and_conditional_ae_has_no_variance(digits):
    with pytest.raises(ValueError, match="cvae draws one z per example: samples=1"):
        aevae.make("cvae", input_shape=digits.shape, latent_dim=2, hidden=(8,), samples=5)
    model = aevae.make("conditional_ae", input_shape=digits.shape, latent_dim=2, hidden=(8,))
    with pytest.raises(aevae.NoLikelihoodError, match="codes have no variance"):
        model.encode(digits.test.x[:4], labels=digits.test.labels[:4], return_variance=True)
    assert aevae.ExPostSampler is aevae.ex_post.ExPostSampler  # the name errors advise
