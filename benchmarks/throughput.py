"""Training throughput: aevae's ``fit`` against a minimal hand-written PyTorch loop and Pythae.

Contenders, each training the same VAE (Bernoulli decoder, Adam 1e-3, batch 100) on the same
MNIST images for the same epochs:

- ``bare``: the loop a user writes by hand: flat tensors, a permutation per epoch, slices,
  forward, backward, ``Adam`` with PyTorch's defaults, the loss summed on the device;
- ``aevae``: ``aevae.make("vae", ...).fit(x, ...)`` as users call it (progress on);
- ``aevae-compiled``: the same with ``compile=True`` (compilation counted);
- ``pythae``: Pythae 0.1.2's ``BaseTrainer`` with the same encoder and decoder (the
  ``benchmarks`` extra).

Models: ``mlp`` (784-512-16, ReLU) and ``conv`` (aevae's conv network: two 4x4 stride-2
convolutions of 32 and 64 channels, a 256-unit dense layer, and the mirror image).

Every figure is measured in a fresh process whose clock runs from model construction (the
optimizer's too) to the end of training; data loading is before the clock for everyone. The
contenders alternate within each repeat, the order reversed on odd repeats, so drift in the
machine's load hits all alike. Ratios are taken within a repeat and their median reported. The
FLOP of one training example are counted with PyTorch's FLOP counter (matmuls and convolutions,
forward and backward), and the rate reached is compared with the best rate of a large matmul
on the same threads.

``--device`` (default cpu) is where every contender trains (the bare loop's data, model and
loss included; Pythae off the GPU unless it is a CUDA device) and where the reference matmul
runs. MNIST is read from ``--data-dir``; a folder given without MNIST in it is an error. With no
``--data-dir``, MNIST comes from $AEVAE_DATA_DIR or aevae's cache and, when it is not there,
random grey levels of the same shape stand in (the output says so).

Writes benchmarks/results/throughput.{json,md}.

    python benchmarks/throughput.py [--epochs 1] [--repeats 3] [--threads 1]
        [--models mlp,conv] [--contenders bare,aevae,aevae-compiled,pythae]
        [--device cpu] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_results

RESULTS = Path(__file__).resolve().parent / "results"
CONTENDERS = ("bare", "aevae", "aevae-compiled", "pythae")
MODELS = ("mlp", "conv")


# ----- the contenders (run in a child process) ---------------------------------------------
RANDOM_DATA = "random grey levels (MNIST not found)"


def mnist(limit: int | None, data_dir: str | None = None):
    """MNIST's training images and where they came from: ``"mnist"``, or, only when no
    ``data_dir`` is given and MNIST is not in the default place, ``RANDOM_DATA``. A ``data_dir``
    without MNIST in it stops the run."""
    import numpy as np

    from aevae.data import DataError, load_dataset

    try:
        x, source = load_dataset("mnist", data_dir=data_dir, download=False).train.x, "mnist"
    except DataError as error:
        if data_dir is not None:
            raise SystemExit(f"throughput: no MNIST in --data-dir {data_dir}: {error}") from error
        # No MNIST here: random grey levels of the same shape.
        x = np.random.default_rng(0).random((60000, 1, 28, 28), dtype=np.float32)
        source = RANDOM_DATA
        print("throughput: MNIST not found; training on random data", file=sys.stderr)
    return (x[:limit] if limit else x), source


def networks(model: str):
    """Encoder (to 2 x 16) and decoder (to logits) as plain torch modules, the same layers
    aevae builds for this model."""
    from torch import nn

    if model == "mlp":
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 32))
        decoder = nn.Sequential(nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 784),
                                nn.Unflatten(1, (1, 28, 28)))
    else:
        encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 32))
        decoder = nn.Sequential(
            nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1))
    return encoder, decoder


def bare_vae(model: str):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class BareVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = networks(model)

        def forward(self, x):
            mean, log_variance = self.encoder(x).chunk(2, dim=-1)
            z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
            logits = self.decoder(z)
            reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
            kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(1)
            return (reconstruction.flatten(1).sum(1) + kl).mean()

    return BareVAE()


def run_bare(x, model: str, epochs: int, device: str = "cpu") -> None:
    import torch

    torch.manual_seed(0)
    data = torch.from_numpy(x).to(device)
    vae = bare_vae(model).to(device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(data), device=data.device)
        total = torch.zeros((), device=data.device)
        for start in range(0, len(data), 100):
            loss = vae(data[order[start:start + 100]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        print(f"loss {float(total) / -(-len(data) // 100):.3f}", file=sys.stderr)


def run_aevae(x, model: str, epochs: int, compile: bool, device: str = "cpu") -> None:
    import aevae

    options = {"hidden": (512,)} if model == "mlp" else {"network": "conv", "hidden": (256,)}
    vae = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=16, seed=0, **options)
    vae.fit(x, epochs=epochs, batch_size=100, learning_rate=1e-3, compile=compile,
            device=device, progress=True)


def run_pythae(x, model: str, epochs: int, device: str = "cpu") -> None:
    import logging

    import torch
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    logging.getLogger("pythae").setLevel(logging.WARNING)
    encoder_net, decoder_net = networks(model)

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = encoder_net

        def forward(self, x):
            mean, log_variance = self.net(x).chunk(2, dim=-1)
            return ModelOutput(embedding=mean, log_covariance=log_variance)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = decoder_net

        def forward(self, z):  # Pythae's "bce" loss takes probabilities
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    data = torch.from_numpy(x)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce")
    vae = VAE(config, encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as folder:
        training = BaseTrainerConfig(output_dir=folder, num_epochs=epochs, learning_rate=1e-3,
                                     per_device_train_batch_size=100,
                                     no_cuda=not device.startswith("cuda"))
        trainer = BaseTrainer(vae, BaseDataset(data, torch.zeros(len(data))),
                              training_config=training)
        trainer.train()


def flop_per_example(model: str) -> float:
    """Matmul and convolution FLOP of one training example, forward and backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    vae = bare_vae(model)
    x = torch.rand(100, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        vae(x).backward()
    return counter.get_total_flops() / 100


def matmul_rate(device: str = "cpu") -> float:
    """The best FLOP/s of a large single-precision matmul on this process's threads (or on the
    GPU, for a CUDA device)."""
    import torch

    a, b = torch.rand(4096, 512).to(device), torch.rand(512, 784).to(device)
    cuda = a.device.type == "cuda"
    best = float("inf")
    for _ in range(20):
        if cuda:
            torch.cuda.synchronize(a.device)
        started = time.perf_counter()
        torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize(a.device)
        best = min(best, time.perf_counter() - started)
    return 2 * 4096 * 512 * 784 / best


def child(arguments) -> None:
    import torch

    torch.set_num_threads(arguments.threads)
    if arguments.child == "matmul":
        print(json.dumps({"matmul_flops": matmul_rate(arguments.device),
                          "flop_per_example": {m: flop_per_example(m) for m in MODELS}}))
        return
    contender, model = arguments.child, arguments.model
    x, source = mnist(arguments.limit, arguments.data_dir)
    device = arguments.device
    if device.startswith("cuda"):  # the CUDA context before the clock, like the data
        torch.zeros(1, device=device)
        torch.cuda.synchronize(device)
    started = time.perf_counter()  # model and optimizer construction count
    if contender == "bare":
        run_bare(x, model, arguments.epochs, device)
    elif contender.startswith("aevae"):
        run_aevae(x, model, arguments.epochs, compile=contender == "aevae-compiled",
                  device=device)
    else:
        run_pythae(x, model, arguments.epochs, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "examples": len(x) * arguments.epochs,
                      "data": source}))


# ----- the parent: fresh processes, alternating --------------------------------------------
def measure(contender: str, model: str, arguments) -> dict:
    command = [sys.executable, __file__, "--child", contender, "--model", model,
               "--epochs", str(arguments.epochs), "--threads", str(arguments.threads),
               "--device", arguments.device]
    if arguments.limit:
        command += ["--limit", str(arguments.limit)]
    if arguments.data_dir:
        command += ["--data-dir", str(arguments.data_dir)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(arguments.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode != 0:
        raise RuntimeError(f"{contender}/{model} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="use the first N training images")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    parser.add_argument("--device", default="cpu",
                        help="device of every contender and of the reference matmul: cpu "
                        "(default) or cuda[:N]")
    parser.add_argument("--data-dir", default=None,
                        help="folder with mnist/ (an error if MNIST is not there; default: "
                        "$AEVAE_DATA_DIR or aevae's cache, random data if MNIST is missing)")
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
        return
    models = arguments.models.split(",")
    contenders = arguments.contenders.split(",")
    reference = json.loads(subprocess.run(
        [sys.executable, __file__, "--child", "matmul", "--threads", str(arguments.threads),
         "--device", arguments.device],
        capture_output=True, text=True, check=True,
        env={**os.environ, "OMP_NUM_THREADS": str(arguments.threads)}).stdout.splitlines()[-1])
    pairs = [(model, contender) for model in models for contender in contenders]
    seconds = {pair: [] for pair in pairs}
    examples, sources = {}, set()
    for repeat in range(arguments.repeats):
        for model, contender in (pairs if repeat % 2 == 0 else list(reversed(pairs))):
            figure = measure(contender, model, arguments)
            seconds[(model, contender)].append(figure["seconds"])
            examples[(model, contender)] = figure["examples"]
            sources.add(figure["data"])
            print(f"repeat {repeat + 1}: {model:4} {contender:15} {figure['seconds']:7.1f} s",
                  flush=True)
    rows = []
    for model, contender in pairs:
        times = seconds[(model, contender)]
        rate = examples[(model, contender)] / statistics.median(times)
        ratios = [bare / mine for bare, mine in zip(seconds[(model, "bare")], times)] \
            if "bare" in contenders else []
        versus_pythae = [theirs / mine for theirs, mine in
                         zip(seconds.get((model, "pythae"), []), times)]
        flop_rate = rate * reference["flop_per_example"][model]
        rows.append({
            "model": model, "contender": contender, "seconds": times,
            "examples_per_second": rate,
            "speed_vs_bare": statistics.median(ratios) if ratios else None,
            "speed_vs_pythae": statistics.median(versus_pythae) if versus_pythae else None,
            "fraction_of_matmul_rate": flop_rate / reference["matmul_flops"],
        })
    import torch

    if RANDOM_DATA in sources:
        print(f"throughput: trained on {RANDOM_DATA}, not MNIST", flush=True)
    result = {"threads": arguments.threads, "epochs": arguments.epochs,
              "repeats": arguments.repeats, "torch": torch.__version__,
              "images": next(iter(examples.values())) // arguments.epochs,
              "load_average": os.getloadavg()[0], "machine_matmul_flops":
              reference["matmul_flops"], "flop_per_example": reference["flop_per_example"],
              "rows": rows}
    # Recorded only off the defaults, so a default run's JSON keeps its keys.
    if arguments.device != "cpu":
        result["device"] = arguments.device
    if RANDOM_DATA in sources:
        result["data"] = RANDOM_DATA
    write_results(arguments.out, result, markdown(result))


def markdown(result: dict) -> str:
    images = "random" if result.get("data") == RANDOM_DATA else "MNIST"
    device = f", device {result['device']}" if result.get("device") else ""
    lines = [f"Training throughput, {result['threads']} thread(s){device}, {result['epochs']} "
             f"epoch(s) of {result['images']:,} {images} images, batch 100, median of "
             f"{result['repeats']} fresh processes each; machine matmul rate "
             f"{result['machine_matmul_flops'] / 1e9:.0f} GFLOP/s.", "",
             "| model | contender | examples/s | vs bare loop | vs Pythae | of matmul rate |",
             "|---|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        bare = f"{row['speed_vs_bare']:.2f}x" if row["speed_vs_bare"] is not None else "-"
        pythae = f"{row['speed_vs_pythae']:.2f}x" if row["speed_vs_pythae"] is not None else "-"
        lines.append(f"| {row['model']} | {row['contender']} | "
                     f"{row['examples_per_second']:,.0f} | {bare} | {pythae} | "
                     f"{row['fraction_of_matmul_rate']:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
