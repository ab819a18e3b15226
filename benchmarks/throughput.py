"""Training throughput: aevae's ``fit`` against a minimal hand-written PyTorch loop.

Both train the same MLP VAE (784-512-16, ReLU, Bernoulli decoder, Adam, batch 100) on the same
data in the same process, alternating runs so that machine noise hits both alike. Prints
examples per second for each and their ratio (aevae / bare loop).

    python benchmarks/throughput.py [--epochs 1] [--repeats 3] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import aevae
from aevae.data import DataError, load_dataset


def mnist_or_random(limit: int | None) -> np.ndarray:
    try:
        x = load_dataset("mnist", download=False).train.x
    except DataError:  # no MNIST here: random grey levels of the same shape
        x = np.random.default_rng(0).random((60000, 1, 28, 28), dtype=np.float32)
    return x[:limit] if limit else x


class BareVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                                     nn.Linear(512, 32))
        self.decoder = nn.Sequential(nn.Linear(16, 512), nn.ReLU(), nn.Linear(512, 784))

    def forward(self, x):
        mean, log_variance = self.encoder(x).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        logits = self.decoder(z).view_as(x)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        reconstruction = reconstruction.flatten(1).sum(1)
        kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(1)
        return (reconstruction + kl).mean()


def bare_loop(x: torch.Tensor, epochs: int, device: torch.device) -> float:
    """Seconds for a minimal loop: shuffle, slice, forward, backward, step; track the loss."""
    started = time.perf_counter()
    torch.manual_seed(0)
    data = x.to(device)
    model = BareVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(data), device=device)
        total = torch.zeros((), device=device)
        for start in range(0, len(data), 100):
            batch = data[order[start:start + 100]]
            loss = model(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def aevae_fit(x: np.ndarray, epochs: int, device: torch.device, progress: bool) -> float:
    started = time.perf_counter()
    model = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=16, hidden=(512,))
    model.fit(x, epochs=epochs, batch_size=100, learning_rate=1e-3, device=device,
              progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: "
                        "torch's choice)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = torch.device(arguments.device)
    x = mnist_or_random(arguments.limit)
    tensor = torch.from_numpy(x)
    examples = len(x) * arguments.epochs
    # Warm-up of both paths (allocator, kernels) before timing.
    bare_loop(tensor[:2000], 1, device)
    aevae_fit(x[:2000], 1, device, progress=False)
    times: dict[str, list[float]] = {"bare": [], "aevae": []}
    for repeat in range(arguments.repeats):
        # Alternate which goes first, so drift in the machine's load hits both alike.
        order = ("bare", "aevae") if repeat % 2 == 0 else ("aevae", "bare")
        for name in order:
            if name == "bare":
                times[name].append(bare_loop(tensor, arguments.epochs, device))
            else:  # fit as users call it: progress on (a bar on a terminal, epoch lines else)
                times[name].append(aevae_fit(x, arguments.epochs, device, progress=True))
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"examples={len(x)} epochs={arguments.epochs} repeats={arguments.repeats}")
    # Noise on a shared machine only ever adds time: the best run is the cleanest estimate.
    for statistic, reduce in (("best", min), ("median", statistics.median)):
        rates = {name: examples / reduce(values) for name, values in times.items()}
        print(f"{statistic:>6}: bare {rates['bare']:8.0f} examples/s, aevae "
              f"{rates['aevae']:8.0f} examples/s, ratio aevae/bare "
              f"{rates['aevae'] / rates['bare']:.3f}")


if __name__ == "__main__":
    main()
