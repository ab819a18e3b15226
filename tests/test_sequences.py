"""Sequence data: padded with lengths, factors known; the chorales' piano rolls."""

from __future__ import annotations

import numpy as np
import pytest

from aevae.data import Split, load_dataset
from aevae.data.sequences import KEYS, LOWEST_KEY, periodic_signals, piano_roll


def test_periodic_signals_are_padded_and_carry_their_factors():
    split = periodic_signals(200, steps=40, min_steps=10, seed=3)
    assert split.x.shape == (200, 40, 1) and split.lengths.shape == (200,)
    assert 10 <= split.lengths.min() and split.lengths.max() <= 40
    for row, length in zip(split.x, split.lengths):
        assert np.all(row[length:] == 0.0) and np.any(row[:length] != 0.0)
    frequency, phase, amplitude = split.factors.T
    assert 1 <= frequency.min() and frequency.max() <= 6 and 0.5 <= amplitude.min()
    again = periodic_signals(200, steps=40, min_steps=10, seed=3)
    np.testing.assert_array_equal(split.x, again.x)
    # A clean signal follows its factors exactly.
    clean = periodic_signals(5, steps=50, min_steps=50, noise=0.0, seed=1)
    f, phi, a = clean.factors[0]
    expected = a * np.sin(phi + 2 * np.pi * f * np.arange(1, 51) / 50)
    np.testing.assert_allclose(clean.x[0, :, 0], expected, atol=1e-5)


def test_switching_signals_change_frequency_at_the_recorded_step():
    split = periodic_signals(50, steps=64, min_steps=64, noise=0.0, switch=True, seed=2)
    assert split.factors.shape == (50, 5)
    for values, (first, _, _, second, at) in zip(split.x[:, :, 0], split.factors):
        at = int(at)
        # Each cycle crosses zero twice: the crossings before and after the switch follow the
        # two frequencies (cycles per 64 steps).
        for part, frequency in ((values[:at], first), (values[at:], second)):
            crossings = np.sum(np.diff(np.sign(part)) != 0)
            assert abs(crossings - 2 * frequency * len(part) / 64) <= 2.5


def test_named_sequence_datasets_and_bad_lengths():
    sines = load_dataset("sines")
    assert sines.shape == (64, 1) and sines.train.lengths is not None
    assert sines.test.lengths is not None and len(sines.test) == 1000
    with pytest.raises(ValueError, match="lengths must be"):
        Split(np.zeros((2, 5, 1), np.float32), lengths=np.array([0, 3]))


def test_piano_roll_marks_sounding_keys_per_quarter_note():
    stream = pytest.importorskip("music21.stream")
    note = pytest.importorskip("music21.note")
    chord = pytest.importorskip("music21.chord")
    score = stream.Stream()
    score.append(note.Note("C4", quarterLength=2.0))          # MIDI 60, steps 0-1
    score.append(chord.Chord(["E4", "G4"], quarterLength=1.0))  # steps 2
    score.append(note.Rest(quarterLength=1.0))                 # step 3 silent
    score.append(note.Note("A0", quarterLength=0.5))           # lowest key, step 4
    roll = piano_roll(score)
    assert roll.shape == (5, KEYS)
    assert roll[0, 60 - LOWEST_KEY] == roll[1, 60 - LOWEST_KEY] == 1
    assert roll[2, [64 - LOWEST_KEY, 67 - LOWEST_KEY]].tolist() == [1, 1]
    assert roll[3].sum() == 0 and roll[4, 0] == 1 and roll.sum() == 5


@pytest.fixture(scope="module")
def short_sines():
    split = periodic_signals(64, steps=12, min_steps=4, seed=5)
    return split.x, split.lengths


@pytest.mark.parametrize("name", ["sequence_vae", "vrnn"])
def test_padded_steps_never_count(name, short_sines, tmp_path):
    import torch

    import aevae

    x, lengths = short_sines
    model = aevae.make(name, input_shape=(12, 1), latent_dim=3, hidden=(16,),
                       likelihood="gaussian-learned", seed=0)
    model.fit(x, lengths=lengths, epochs=2, batch_size=16, progress=False, out=tmp_path / name)
    garbage = x.copy()
    for row, length in zip(garbage, lengths):
        row[length:] = 123.0  # anything past the end
    terms = []
    for values in (x, garbage):
        torch.manual_seed(0)
        terms.append(model.loss_terms(values, lengths=lengths))
    for key in terms[0]:
        np.testing.assert_array_equal(terms[0][key], terms[1][key])
    codes = [model.encode(values, lengths=lengths) for values in (x, garbage)]
    if name == "vrnn":  # a code per step: only the real steps belong to the sequence
        for first, second, length in zip(*codes, lengths):
            np.testing.assert_array_equal(first[:length], second[:length])
    else:
        np.testing.assert_array_equal(*codes)
    likelihood = model.sequence_log_likelihood(x, lengths=lengths, k=8)
    again = model.sequence_log_likelihood(garbage, lengths=lengths, k=8)
    np.testing.assert_allclose(likelihood, again)
    assert np.isfinite(likelihood).all()
    reloaded = aevae.load(tmp_path / name)
    np.testing.assert_array_equal(reloaded.encode(x[:3], lengths=lengths[:3]),
                                  model.encode(x[:3], lengths=lengths[:3]))
    assert model.sample(3, seed=0).shape == (3, 12, 1)


def test_the_study_refuses_sequences_with_a_pointer(tmp_path):
    from aevae.study import StudySettings, run_study

    with pytest.raises(ValueError, match="padded sequences"):
        run_study(StudySettings(data="sines"), tmp_path / "x")


def test_user_sequences_with_lengths_from_npz(tmp_path):
    x = np.zeros((20, 7, 3), np.float32)
    lengths = np.arange(20) % 7 + 1
    np.savez(tmp_path / "songs.npz", x=x, lengths=lengths)
    data = load_dataset(str(tmp_path / "songs.npz"), validation_fraction=0.2)
    assert data.shape == (7, 3) and data.train.lengths is not None
    assert sorted(np.concatenate([data.train.lengths, data.validation.lengths])) == sorted(
        lengths)
    np.savez(tmp_path / "flat.npz", x=np.zeros((5, 4)), lengths=np.ones(5, int))
    with pytest.raises(ValueError, match="goes with sequences"):
        load_dataset(str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "long.npz", x=x, lengths=lengths + 5)
    with pytest.raises(ValueError, match="lengths must be"):
        load_dataset(str(tmp_path / "long.npz"))


@pytest.mark.parametrize("name, methods", [
    ("sequence_vae", ("vary",)),
    ("vrnn", ("vary", "interpolate", "traverse", "dimension_usage"))])
def test_sequence_models_name_the_methods_they_do_not_offer(name, methods, short_sines):
    import aevae

    x, lengths = short_sines
    model = aevae.make(name, input_shape=(12, 1), latent_dim=3, hidden=(16,),
                       likelihood="gaussian-learned", seed=0)
    calls = {"vary": lambda: model.vary(x[:2], 2),
             "interpolate": lambda: model.interpolate(x[0], x[1]),
             "traverse": lambda: model.traverse(x[:8]),
             "dimension_usage": lambda: model.dimension_usage(x[:8])}
    for method in methods:
        with pytest.raises(ValueError, match=f"{name} has no {method}\\(\\): "):
            calls[method]()
