"""Sequence data: noisy periodic signals with known factors, and Bach's chorales as piano rolls.

Sequences are stored padded, x shaped (N, steps, features), with ``lengths`` saying how many
steps of each are real; models and metrics must never count the padding.

- ``sines``: x_t = a sin(2 pi f t / T + phi) + noise, with frequency f, phase phi and amplitude a
  drawn per sequence (the factors, kept in ``factors`` as real values), variable lengths.
- ``sines-switch``: the same, but the frequency jumps to a second value at a random step: a
  per-step latent (the VRNN) should track the change.
- ``jsb-chorales``: the Bach chorales that ship inside the ``music21`` package (optional extra,
  ``pip install aevae[music]``), as 88-key piano rolls at quarter-note resolution (the JSB
  Chorales benchmark family). The split is aevae's own seeded one, not the published
  229/76/77 one, so likelihoods are comparable with published figures only loosely.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from .containers import Dataset, Split, assemble_dataset
from .download import DataSource
from .errors import DataError
from .registry import register_dataset

SINES_SEED = 0
SINES_TRAIN, SINES_TEST = 5000, 1000
SINES_STEPS, SINES_MIN_STEPS = 64, 32
SINE_FACTORS = ("frequency", "phase", "amplitude")
LOWEST_KEY, KEYS = 21, 88  # A0 .. C8: the piano's 88 keys as MIDI numbers
CHORALE_SPLIT_SEED = 0


def periodic_signals(count: int, *, steps: int = SINES_STEPS, min_steps: int = SINES_MIN_STEPS,
                     noise: float = 0.1, switch: bool = False, seed: int = SINES_SEED
                     ) -> Split:
    """``count`` noisy sine waves of ``min_steps``..``steps`` steps (padded with zeros), one
    feature each, with their factors (frequency in cycles per ``steps`` steps, phase, amplitude;
    with ``switch`` also the second frequency and the step it starts at)."""
    if count < 1 or not 1 <= min_steps <= steps:
        raise DataError(f"need count >= 1 and 1 <= min_steps <= steps; got {count}, "
                        f"{min_steps}, {steps}")
    generator = np.random.default_rng(seed)
    frequency = generator.uniform(1.0, 6.0, count)
    phase = generator.uniform(0.0, 2.0 * math.pi, count)
    amplitude = generator.uniform(0.5, 1.5, count)
    lengths = generator.integers(min_steps, steps + 1, count)
    time = np.arange(steps)[None, :]
    rate = np.repeat(frequency[:, None], steps, axis=1)
    factors = [frequency, phase, amplitude]
    if switch:
        second = generator.uniform(1.0, 6.0, count)
        at = (lengths * generator.uniform(0.3, 0.7, count)).astype(np.int64)
        rate = np.where(time >= at[:, None], second[:, None], rate)
        factors += [second, at.astype(np.float64)]
    # The phase accumulates the (possibly switching) rate, so the wave stays continuous.
    angle = phase[:, None] + 2.0 * math.pi * np.cumsum(rate, axis=1) / steps
    values = amplitude[:, None] * np.sin(angle) + noise * generator.standard_normal((count, steps))
    values[time >= lengths[:, None]] = 0.0
    return Split(values[:, :, None].astype(np.float32), factors=np.stack(factors, axis=1),
                 lengths=lengths.astype(np.int64))


def _sines(name: str, switch: bool) -> Dataset:
    train = periodic_signals(SINES_TRAIN, switch=switch, seed=SINES_SEED)
    test = periodic_signals(SINES_TEST, switch=switch, seed=SINES_SEED + 1)
    factors = SINE_FACTORS + (("second_frequency", "switch_step") if switch else ())
    return assemble_dataset(name, train, None, test, description=DESCRIPTIONS[name],
                            factor_names=factors)


DESCRIPTIONS = {
    "sines": f"noisy sine waves, {SINES_MIN_STEPS}-{SINES_STEPS} steps (padded, with lengths), "
    f"one feature; factors frequency, phase, amplitude; {SINES_TRAIN} train / {SINES_TEST} "
    "test; no download",
    "sines-switch": "the sines whose frequency jumps to a second value at a random step "
    "(factors include both and the step); no download",
    "jsb-chorales": "Bach chorales from music21's corpus as 88-key piano rolls at quarter-note "
    "resolution, padded with lengths; seeded 60/20/20 split (needs: pip install aevae[music])",
}


@register_dataset("sines", DESCRIPTIONS["sines"])
def build_sines(source: DataSource) -> Dataset:
    return _sines("sines", switch=False)


@register_dataset("sines-switch", DESCRIPTIONS["sines-switch"])
def build_sines_switch(source: DataSource) -> Dataset:
    return _sines("sines-switch", switch=True)


def piano_roll(score, step: float = 1.0) -> np.ndarray:
    """(steps, 88) binary roll of a music21 score: key k is on at step t when a note of it
    sounds during [t * step, (t + 1) * step) quarter notes."""
    notes = []
    for element in score.flatten().notes:
        pitches = element.pitches if element.isChord else [element.pitch]
        for pitch in pitches:
            notes.append((float(element.offset), float(element.duration.quarterLength),
                          int(pitch.midi)))
    if not notes:
        return np.zeros((0, KEYS), dtype=np.float32)
    end = max(offset + length for offset, length, _ in notes)
    roll = np.zeros((max(1, math.ceil(end / step)), KEYS), dtype=np.float32)
    for offset, length, midi in notes:
        key = midi - LOWEST_KEY
        if 0 <= key < KEYS and length > 0:
            first = int(math.floor(offset / step + 1e-9))
            last = max(first + 1, int(math.ceil((offset + length) / step - 1e-9)))
            roll[first:last, key] = 1.0
    return roll


def _chorale_rolls(source: DataSource) -> list[np.ndarray]:
    """Every chorale's roll, parsed once and cached as .npz in the user cache (parsing with
    music21 takes minutes)."""
    try:
        from music21 import corpus
    except ImportError:
        raise DataError("jsb-chorales needs music21: pip install 'aevae[music]'") from None
    import music21

    from .directories import user_cache_directory

    key = hashlib.sha256(f"music21-{music21.__version__}-quarter".encode()).hexdigest()[:12]
    cache = user_cache_directory() / "parsed" / f"jsb-chorales-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as archive:
            return [archive[name] for name in sorted(archive.files)]
    rolls = []
    for score in corpus.chorales.Iterator(returnType="stream"):
        roll = piano_roll(score)
        if len(roll) >= 8:
            rolls.append(roll)
    if not rolls:
        raise DataError("music21's corpus holds no Bach chorales here")
    cache.parent.mkdir(parents=True, exist_ok=True)
    import io

    from ..io import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"{index:04d}": roll for index, roll in enumerate(rolls)})
    atomic_write_bytes(cache, buffer.getvalue())
    return rolls


def _padded(rolls: list[np.ndarray], steps: int) -> Split:
    x = np.zeros((len(rolls), steps, KEYS), dtype=np.float32)
    for index, roll in enumerate(rolls):
        x[index, :len(roll)] = roll
    return Split(x, lengths=np.array([len(roll) for roll in rolls], dtype=np.int64))


@register_dataset("jsb-chorales", DESCRIPTIONS["jsb-chorales"])
def build_jsb_chorales(source: DataSource) -> Dataset:
    rolls = _chorale_rolls(source)
    order = np.random.default_rng(CHORALE_SPLIT_SEED).permutation(len(rolls))
    test_count = validation_count = len(rolls) // 5
    parts = np.split(order, [len(rolls) - test_count - validation_count,
                             len(rolls) - test_count])
    steps = max(len(roll) for roll in rolls)  # one padded length for every split
    train, validation, test = (_padded([rolls[index] for index in sorted(part)], steps)
                               for part in parts)
    return assemble_dataset("jsb-chorales", train, validation, test,
                            description=DESCRIPTIONS["jsb-chorales"])
