"""A VAE for sequences with one latent per sequence (Bowman et al. 2016).

Compared with ``vae.py``: the encoder is a GRU over the sequence's real steps, and the decoder an
autoregressive GRU that reads the previous step and z at every step, so
log p(x|z) = sum_t log p(x_t | x_<t, z) over the real steps only (padding never counts). Such a
decoder can model the data without z: the KL then falls to 0 and the code carries nothing
(posterior collapse). The cures the paper tried are options here or of the training loop: KL
annealing (``fit(kl_schedule=...)``), free bits (``free_bits``) and decoder input dropout
(``decoder_input_dropout``, their word dropout: previous steps replaced by zeros at random, so
the decoder must lean on z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..checks import is_whole
from ..data.batch import Batch
from ..distributions import DiagonalGaussian
from ..nets.recurrent import shifted
from .base import _float_tensor
from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class SequenceVAEConfig(VAEConfig):
    network: str = "recurrent"
    hidden: tuple[int, ...] = (256,)
    # Share of the decoder's previous-step inputs replaced by zeros in training (Bowman et
    # al.'s word dropout): the decoder must then lean on z.
    decoder_input_dropout: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.network != "recurrent":
            raise ValueError("sequence_vae needs network='recurrent'")
        if len(self.input_shape) != 2:
            raise ValueError(f"sequence_vae needs sequences shaped (steps, features), got "
                             f"{self.input_shape}")
        if not 0.0 <= self.decoder_input_dropout < 1.0:
            raise ValueError("decoder_input_dropout must be in [0, 1)")
        if self.samples != 1:
            raise ValueError("sequence_vae draws one z per sequence: samples=1")


def step_log_prob(likelihood, x: torch.Tensor, output: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Sum over real steps and features of log p(x_t,f | ...): output (..., N, T, F)."""
    values = likelihood.elementwise_log_prob(x, output).sum(-1)  # (..., N, T)
    return (values * mask).sum(-1)


@register_model
class SequenceVAE(VAE):
    name = "sequence_vae"
    description = ("sequence VAE: GRU encoder, autoregressive GRU decoder reading z, one "
                   "latent per sequence (Bowman et al. 2016)")
    Config = SequenceVAEConfig
    uses = ("lengths",)
    unsupported = {"vary": "its decoder runs step by step; draw codes with encode(x, "
                   "sample=True) and decode them with decode(z)"}

    def posterior_of(self, batch: Batch) -> DiagonalGaussian:
        mean, log_variance = self.encoder(batch.x, batch.lengths).chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_variance)

    def decoder_inputs(self, x: torch.Tensor) -> torch.Tensor:
        previous = shifted(x)
        rate = self.config.decoder_input_dropout
        if self.training and rate > 0:
            keep = (torch.rand(previous.shape[:2], device=x.device) >= rate).to(x.dtype)
            previous = previous * keep[..., None]
        return previous

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        q = self.posterior_of(batch.replace(x=self.corrupt(batch.x)))
        z = q.rsample()
        output = self.decoder(z, self.decoder_inputs(batch.x))
        reconstruction = -step_log_prob(self.likelihood, batch.x, output, batch.step_mask())
        return self.elbo_loss(q, reconstruction, self.kl(q, z), kl_weight)

    def loss(self, x, *, kl_weight=1.0, step=None):
        return self.batch_loss(Batch(x), kl_weight=kl_weight, step=step)

    def encode_batch(self, batch, sample=False):
        q = self.posterior_of(batch)
        return (q.rsample() if sample else q.mean), q.variance

    def reconstruct_batch(self, batch):
        """Teacher-forced means at the posterior mean z (padding set to zero)."""
        z = self.posterior_of(batch).mean
        means = self.likelihood.mean(self.decoder(z, shifted(batch.x)))
        return means * batch.step_mask()[..., None]

    def decode(self, z, *, steps: int | None = None, batch_size: int = 1024):
        """Generate sequences from codes, feeding back the decoder's mean at every step."""
        tensor = _float_tensor(z, "codes")  # finite real numbers, or an error naming them
        as_numpy = not torch.is_tensor(z)
        if tensor.dim() != 2 or tensor.shape[1] != self.latent_dim or len(tensor) == 0:
            raise ValueError(f"expected codes shaped (N, {self.latent_dim}) with N >= 1, got "
                             f"{tuple(tensor.shape)}")
        if steps is not None and (not is_whole(steps) or steps < 1):
            raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
        count = self.input_shape[0] if steps is None else int(steps)
        generated = self._in_batches(
            lambda piece: self.likelihood.mean(
                self.decoder.generate(piece, count, self.likelihood.mean)),
            tensor.to(self.device), batch_size)
        return self._output(generated, as_numpy)

    def log_importance_weights(self, x, k: int):
        """Full-length sequences (use ``sequence_log_likelihood`` for padded ones)."""
        return self.batch_log_weights(Batch(x), k)

    def batch_log_weights(self, batch: Batch, k: int) -> torch.Tensor:
        """log p(x|z) + log p(z) - log q(z|x) over the real steps, k draws: (k, N)."""
        q = self.posterior_of(batch)
        z = q.rsample(k)  # (k, N, D)
        count = len(batch)
        previous = shifted(batch.x).repeat(k, *([1] * (batch.x.dim() - 1)))
        output = self.decoder(z.reshape(k * count, -1), previous)
        output = output.view(k, count, *output.shape[1:])
        log_likelihood = step_log_prob(self.likelihood, batch.x, output, batch.step_mask())
        return log_likelihood + self.prior.log_prob(z) - q.log_prob(z)

    def sequence_log_likelihood(self, x, *, lengths=None, k: int = 500, seed: int = 0,
                                batch_size: int = 64):
        """Importance-sampled log p(x) per sequence (nats), over the real steps."""
        batch, _ = self.make_batch(x, scored=True, lengths=lengths)
        return importance_sampled(self, batch, k, seed, batch_size)


def importance_sampled(model, batch: Batch, k: int, seed: int, batch_size: int):
    """log (1/k) sum_i w_i per sequence from ``model.batch_log_weights``, in chunks of
    samples (memory stays bounded for any k); the global RNG is left as it was."""
    results = []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(batch), batch_size):
                piece = batch[start:start + batch_size]
                running = torch.full((len(piece),), -math.inf, dtype=torch.float64)
                done = 0
                while done < k:
                    count = min(50, k - done)
                    weights = model.batch_log_weights(piece, count).double()
                    running = torch.logaddexp(running, torch.logsumexp(weights, dim=0).cpu())
                    done += count
                results.append(running - math.log(k))
    finally:
        model.train(was_training)
    return torch.cat(results).numpy()


def per_step(values, lengths) -> float:
    """Total nats over total real steps: the per-step figure sequence papers report."""
    return float(sum(values) / sum(lengths))

