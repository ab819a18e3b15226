"""The fuzzer's harness without the fuzzer: every seed of ``scripts/fuzz_corpus`` and seeded
mutations of each (truncations, flipped bytes, spliced garbage) go through the same readers
and the same rule as in ``scripts/fuzz_readers.py``: a result, or one line of ValueError naming
the file. This keeps the campaign's outcome checked in every test run, not only when atheris is
installed."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
CORPUS = SCRIPTS / "fuzz_corpus"
MUTATIONS = 12


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPTS / "fuzz_readers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_readers"] = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    yield module
    sys.modules.pop("fuzz_readers", None)


def mutations(data: bytes, seed: int) -> list[bytes]:
    generator = np.random.default_rng(seed)
    out = []
    for _ in range(MUTATIONS):
        array = bytearray(data)
        kind = generator.integers(4)
        if kind == 0 and len(array) > 1:  # truncated
            array = array[:generator.integers(1, len(array))]
        elif kind == 1 and len(array) > 1:  # a few bytes overwritten
            for position in generator.integers(1, len(array), size=generator.integers(1, 9)):
                array[position] = int(generator.integers(256))
        elif kind == 2:  # garbage spliced in
            position = int(generator.integers(1, len(array) + 1))
            garbage = bytes(generator.integers(256, size=generator.integers(1, 64)).tolist())
            array[position:position] = garbage
        else:  # a header field blown up
            position = int(generator.integers(1, max(2, min(len(array), 80))))
            array[position:position + 4] = b"\xff\xff\xff\x7f"
        out.append(bytes(array))
    return out


def seeds() -> list[Path]:
    return sorted(CORPUS.iterdir())


def test_the_corpus_covers_every_target(harness):
    targets = {harness.TARGETS[path.read_bytes()[0] % len(harness.TARGETS)] for path in seeds()}
    assert targets == set(harness.TARGETS)


@pytest.mark.parametrize("seed", seeds(), ids=lambda path: path.name)
def test_seeds_and_their_mutations_end_in_a_result_or_one_line(harness, seed, tmp_path):
    data = seed.read_bytes()
    problems = []
    for index, variant in enumerate([data, *mutations(data, sum(data) % 2**32)]):
        target = harness.TARGETS[variant[0] % len(harness.TARGETS)]
        folder = tmp_path / f"case{index}"
        folder.mkdir()
        outcome, problem, detail = harness.classify(target, variant[1:], folder)
        if index == 0:
            assert problem is None and outcome == "result", f"seed {seed.name}: {detail}"
        if problem is not None:
            problems.append(f"mutation {index}: {problem}: {detail[-400:]}")
        shutil.rmtree(folder, ignore_errors=True)
    assert not problems, "\n".join(problems)
