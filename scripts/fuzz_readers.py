"""Coverage-guided fuzzing (atheris, libFuzzer) of aevae's file readers and run-directory loader.

    python scripts/fuzz_readers.py --corpus scripts/fuzz_corpus --seconds 120 --report out.json

Each input is one byte naming the target, then what that target reads: an .npy, .npz, .csv, .amat
or IDX file (plain or gzipped), an image in a folder, a run directory (config.json and
model.safetensors, split by a two-byte length) opened with aevae.load, or the raw bytes given to
aevae.io.read_json and aevae.io.load_tensors. A call must end in a result or in one line of
ValueError (DataError, CorruptFileError) that names the file; any other exception, a message over
several lines or one that does not name the file is a crash.

The seed corpus (small valid files of each kind) is written into --corpus; the inputs libFuzzer
finds go into --work (a temporary folder unless given), crashes into WORK/crashes. The report
(JSON) holds the executions per target, their outcomes, and each distinct crash with its input.
Needs the fuzz extra: pip install -e ".[fuzz]".
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

try:
    import atheris
except ImportError:  # replaying inputs (tests/test_fuzz_corpus.py) needs no atheris
    atheris = None

_instrumented = (contextlib.nullcontext() if atheris is None else atheris.instrument_imports(
    include=["aevae", "PIL", "numpy.lib", "zipfile", "gzip", "json", "csv"]))
with _instrumented:
    import PIL.Image
    import torch

    import aevae
    from aevae.data import load_dataset
    from aevae.data.readers import parse_amat, parse_idx, read_idx, read_npy, read_npz
    from aevae.io import load_tensors, read_json

    PIL.Image.init()  # imports the format plugins now, instrumented

TARGETS = ["npy", "npz", "csv", "amat", "idx", "idx.gz", "image", "run", "json", "safetensors"]
IMAGE_SUFFIXES = [".png", ".gif", ".bmp", ".jpg", ".tif", ".webp"]
CSV_LABELS = [None, "last", "first", "kind"]
ALLOWED = (ValueError,)  # DataError, CorruptFileError and StoreError are ValueErrors


class Campaign:
    """Executions, outcomes and crashes, written as JSON."""

    def __init__(self, report: Path, crashes: Path, seconds: float | None, runs: int | None):
        self.report, self.crashes = report, crashes
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.runs = runs
        self.started = time.time()
        self.executions: Counter = Counter()
        self.outcomes: Counter = Counter()
        self.found: dict[str, dict] = {}
        self.written_at = 0

    def crash(self, target: str, data: bytes, kind: str, detail: str) -> None:
        key = f"{target}: {kind}: {detail.splitlines()[0][:120] if detail else ''}"
        if key in self.found:
            self.found[key]["count"] += 1
            return
        name = f"{target}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
        self.crashes.mkdir(parents=True, exist_ok=True)
        (self.crashes / name).write_bytes(data)
        self.found[key] = {"target": target, "kind": kind, "detail": detail[-2000:],
                           "input": str(self.crashes / name), "count": 1}
        print(f"CRASH {key} -> {name}", file=sys.stderr, flush=True)

    def write(self) -> None:
        total = sum(self.executions.values())
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text(json.dumps({
            "started": self.started, "seconds": time.time() - self.started,
            "executions": total, "executions_by_target": dict(sorted(self.executions.items())),
            "outcomes": {f"{target}: {outcome}": count
                         for (target, outcome), count in sorted(self.outcomes.items())},
            "crashes": len(self.found), "crash_inputs": sum(c["count"] for c in
                                                            self.found.values()),
            "crash_list": list(self.found.values()),
        }, indent=2) + "\n")
        self.written_at = total

    def done(self) -> bool:
        total = sum(self.executions.values())
        return ((self.runs is not None and total >= self.runs)
                or (self.deadline is not None and time.monotonic() >= self.deadline))


def split_run(payload: bytes) -> tuple[bytes, bytes]:
    length = int.from_bytes(payload[:2].ljust(2, b"\0"), "little")
    return payload[2:2 + length], payload[2 + length:]


def join_run(config: bytes, weights: bytes) -> bytes:
    return len(config).to_bytes(2, "little") + config + weights


def run_target(target: str, payload: bytes, folder: Path) -> object:
    """Write the payload's files into the empty ``folder`` and call the target on them."""
    if target == "npy":
        path = folder / "data.npy"
        path.write_bytes(payload)
        array = read_npy(path)
        assert isinstance(array, np.ndarray) and array.nbytes <= len(payload)
        return load_dataset(str(path))
    if target == "npz":
        path = folder / "data.npz"
        path.write_bytes(payload)
        read_npz(path)
        return load_dataset(str(path))
    if target == "csv":
        path = folder / "table.csv"
        path.write_bytes(payload[1:])
        labels = CSV_LABELS[payload[0] % len(CSV_LABELS)] if payload else None
        return load_dataset(str(path), labels=labels)
    if target == "amat":
        path = folder / "values.amat"
        path.write_bytes(payload)
        parse_amat(payload, source=str(path))
        return load_dataset(str(path))
    if target == "idx":
        path = folder / "data.idx"
        path.write_bytes(payload)
        array = parse_idx(payload, source=str(path))
        assert array.nbytes + 4 + 4 * array.ndim == len(payload), "IDX size mismatch"
        return read_idx(path)
    if target == "idx.gz":
        path = folder / "data.idx.gz"
        path.write_bytes(payload)
        return read_idx(path)
    if target == "image":
        suffix = IMAGE_SUFFIXES[payload[0] % len(IMAGE_SUFFIXES)] if payload else ".png"
        (folder / f"image{suffix}").write_bytes(payload[1:])
        return load_dataset(str(folder))
    if target == "run":
        config, weights = split_run(payload)
        (folder / "config.json").write_bytes(config)
        (folder / "model.safetensors").write_bytes(weights)
        return aevae.load(folder)
    if target == "json":
        path = folder / "file.json"
        path.write_bytes(payload)
        return read_json(path)
    path = folder / "file.safetensors"
    path.write_bytes(payload)
    return load_tensors(path)


def classify(target: str, payload: bytes, folder: Path) -> tuple[str, str | None, str]:
    """Run one input: (outcome, what went wrong or None, detail). Allowed ends: a result, or
    one line of ValueError that names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_target(target, payload, folder)
        return "result", None, ""
    except ALLOWED as error:
        message = str(error)
        if not message.strip() or "\n" in message:
            return type(error).__name__, "message over several lines", message
        if str(folder) not in message:
            return type(error).__name__, "message does not name the file", message
        return type(error).__name__, None, ""
    except AssertionError as error:
        return "wrong result", "wrong result", str(error)
    except Exception as error:  # the point: everything else is a crash
        return type(error).__name__, type(error).__name__, traceback.format_exc()


def make_test(campaign: Campaign, scratch: Path):
    def test_one_input(data: bytes) -> None:
        if campaign.done():
            campaign.write()
            os._exit(0)  # libFuzzer never returns; the report is written, so stop here
        target = TARGETS[data[0] % len(TARGETS)] if data else "npy"
        payload = data[1:]
        campaign.executions[target] += 1
        folder = scratch / target.replace(".", "-")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        outcome, problem, detail = classify(target, payload, folder)
        if problem is not None:
            campaign.crash(target, data, problem, detail)
        campaign.outcomes[(target, outcome)] += 1
        if sum(campaign.executions.values()) - campaign.written_at >= 2000:
            campaign.write()

    return test_one_input


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_bytes(compress: bool, **arrays: np.ndarray) -> bytes:
    """np.savez's layout with a fixed date on each member, so the seeds never change."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    return (bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def image_bytes(array: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


def run_bytes(model: str, **options) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        aevae.make(model, **options).save(folder)
        return (Path(folder, "config.json").read_bytes(),
                Path(folder, "model.safetensors").read_bytes())


def seeds() -> dict[str, bytes]:
    """Small valid inputs of every kind, named by target."""
    def tagged(target: str, payload: bytes) -> bytes:
        return bytes([TARGETS.index(target)]) + payload

    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    ae_config, ae_weights = run_bytes("ae", input_shape=(4,), latent_dim=2, hidden=(3,))
    vae_config, vae_weights = run_bytes("vae", input_shape=(1, 2, 2), latent_dim=1, hidden=(2,),
                                        likelihood="gaussian")
    tensors = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        aevae.io.save_tensors(Path(folder, "t.safetensors"), {"w": torch.ones(2, 2)},
                              {"step": 1, "history": {"epochs": []}})
        tensors.write(Path(folder, "t.safetensors").read_bytes())
    return {
        "npy-float32": tagged("npy", npy_bytes(np.arange(12, dtype=np.float32).reshape(3, 4))),
        "npy-uint8-images": tagged("npy", npy_bytes(np.arange(8, dtype=np.uint8).reshape(2, 2,
                                                                                        2))),
        "npz-x-y": tagged("npz", npz_bytes(False, x=np.eye(3, dtype=np.float32),
                                           y=np.arange(3))),
        "npz-compressed": tagged("npz", npz_bytes(True, data=np.ones((2, 2)))),
        "csv-header-labels": tagged("csv", bytes([3]) + b"a,b,kind\n0.5,1,cat\n2,-3e2,dog\n"),
        "csv-plain": tagged("csv", bytes([1]) + b"0.1;0.2;1\r\n0.3;0.4;0\r\n"),
        "amat-binary": tagged("amat", b"0 1 0 1\n1 0 1 0\n"),
        "amat-general": tagged("amat", b"0.5 1e3\n-2\t3\n"),
        "idx-uint8": tagged("idx", idx_bytes(np.arange(18, dtype=np.uint8).reshape(2, 3, 3),
                                             0x08)),
        "idx-float": tagged("idx", idx_bytes(np.ones((2, 2), dtype=">f4"), 0x0D)),
        "idx-gzip": tagged("idx.gz", gzip.compress(idx_bytes(np.arange(6, dtype=np.uint8),
                                                             0x08), mtime=0)),
        "image-png": tagged("image", bytes([0]) + image_bytes(grey, "PNG")),
        "image-gif": tagged("image", bytes([1]) + image_bytes(grey[:3, :3], "GIF")),
        "image-bmp": tagged("image", bytes([2]) + image_bytes(np.zeros((2, 2, 3), np.uint8),
                                                              "BMP")),
        "run-ae": tagged("run", join_run(ae_config, ae_weights)),
        "run-vae": tagged("run", join_run(vae_config, vae_weights)),
        "json-config": tagged("json", ae_config),
        "safetensors-checkpoint": tagged("safetensors", tensors.getvalue()),
    }


def write_seeds(corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    written = seeds()
    for name, data in written.items():
        path = corpus / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    return len(written)


def limit_memory(extra_gib: float) -> None:
    """Cap the address space a little above what the imports took: a hostile header asking for
    terabytes should fail in the allocator, not take the machine's memory."""
    with open("/proc/self/status") as status:
        size_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize"))
    limit = size_kib * 1024 + int(extra_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="scripts/fuzz_corpus",
                        help="seed corpus folder; the seeds are (re)written there")
    parser.add_argument("--work", help="folder for found inputs, crashes and scratch files "
                        "(default: a temporary folder)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--runs", type=int, help="stop after this many executions")
    parser.add_argument("--report", default="fuzz-report.json", help="JSON report to write")
    parser.add_argument("--max-len", type=int, default=4096, help="largest input, in bytes")
    parser.add_argument("--seeds-only", action="store_true",
                        help="write the seed corpus and stop")
    arguments, libfuzzer_options = parser.parse_known_args(argv)
    corpus = Path(arguments.corpus)
    count = write_seeds(corpus)
    if arguments.seeds_only:
        print(f"wrote {count} seeds to {corpus}")
        return 0
    if arguments.seconds is None and arguments.runs is None:
        parser.error("give --seconds or --runs")
    if atheris is None:
        parser.error("fuzzing needs atheris: pip install -e '.[fuzz]'")
    work = Path(arguments.work or tempfile.mkdtemp(prefix="aevae-fuzz-"))
    found = work / "corpus"
    found.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    limit_memory(2.0)
    campaign = Campaign(Path(arguments.report), work / "crashes", arguments.seconds,
                        arguments.runs)
    atexit.register(campaign.write)
    # libFuzzer's own artifacts (slow inputs) go into the work folder too, not the current one.
    options = [f"-max_len={arguments.max_len}", "-timeout=30", "-rss_limit_mb=4096",
               f"-artifact_prefix={work}/", "-print_final_stats=1", *libfuzzer_options,
               str(found), str(corpus)]
    atheris.Setup([sys.argv[0], *options], make_test(campaign, work / "scratch"))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
