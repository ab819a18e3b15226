"""The conditional VAE (Sohn et al. 2015) and a conditional AE for the side-by-side.

Compared with ``vae.py`` / ``ae.py``: encoder and decoder both see a one-hot label y, so q(z|x,y)
and p(x|z,y); sampling with a chosen y generates that class. Everything that touches the networks
takes ``labels`` (one per example, or one class for all): ``encode(x, labels=...)``,
``decode(z, labels=...)``, ``reconstruct``, ``sample(n, labels=3)``; training reads them from the
batch (``fit(x, labels=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import is_whole
from ..data.batch import Batch, _as_tensor
from ..distributions import DiagonalGaussian
from ..nets.conditional import ConditionedDecoder, ConditionedEncoder
from ..priors import StandardNormal
from .ae import AE
from .base import AutoencoderConfig, LossOutput, NoLikelihoodError, _float_tensor
from .registry import register_model
from .vae import VAE, VAEConfig

MAX_CLASSES = 10_000  # one-hot condition vectors: labels beyond this are ids, not classes


def check_classes(classes: int) -> None:
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be 2 to {MAX_CLASSES:,} (one-hot labels), got "
                         f"{classes}")


@dataclass
class ConditionalAEConfig(AutoencoderConfig):
    # Number of classes of the label the model is conditioned on (one-hot).
    classes: int = 10

    def __post_init__(self):
        super().__post_init__()
        check_classes(self.classes)


@dataclass
class ConditionalVAEConfig(VAEConfig):
    # Number of classes of the label the model is conditioned on (one-hot).
    classes: int = 10

    def __post_init__(self):
        super().__post_init__()
        check_classes(self.classes)


def _one_class(label) -> int:
    """A single class given for every example: a whole number (3, np.int64(3)), not 1.9,
    "3" or True."""
    if not is_whole(label):
        raise ValueError(f"labels: a single class is a whole number, got {label!r}")
    return int(label)


class Conditioned:
    """What conditioning on a label adds to a model: the conditioned networks, the one-hot
    code of y, and the public API with ``labels``."""

    uses = ("labels",)
    unsupported = {
        **{method: "it encodes and decodes with a class; use encode, decode and reconstruct "
           "with labels=" for method in ("vary", "interpolate", "traverse", "impute",
                                         "dimension_usage")},
        "log_likelihood": "it models p(x|y), and log_likelihood takes no labels; "
        "elbo(x, labels=...) bounds log p(x|y)"}

    def condition_networks(self) -> None:
        """Replace the unconditioned networks the base built (same options, same seed)."""
        config = self.config
        with self.seeded_initialisation(0):
            self.encoder = ConditionedEncoder(
                config.network, config.input_shape, config.classes,
                config.latent_dim * self.posterior_parameters, **self.network_options())
            self.decoder = ConditionedDecoder(
                config.network, config.latent_dim, config.classes,
                self.decoder_output_shape, **self.network_options())

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        if labels is None:
            raise ValueError(f"{self.name} is conditioned on a label: pass labels")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.config.classes):
            raise ValueError(f"labels must be classes 0..{self.config.classes - 1}")
        return F.one_hot(labels.long(), self.config.classes).float()

    def _labelled(self, x, labels, name: str = "x") -> tuple[Batch, bool]:
        """A Batch of x with one label per example (a single class is repeated)."""
        if labels is None:
            raise ValueError(f"{self.name} is conditioned on a label: pass labels=")
        count = len(x)
        if np.ndim(labels) == 0:
            labels = np.full(count, _one_class(labels), dtype=np.int64)
        return self.make_batch(x, name, labels=labels)

    def encode(self, x, *, labels=None, sample: bool = False, return_variance: bool = False,
               batch_size: int = 1024):
        """Codes of x given its labels: posterior means (or one draw with ``sample``)."""
        batch, as_numpy = self._labelled(x, labels)
        codes, variance = self._in_batches(
            lambda piece: self.encode_labelled(piece.x, self.one_hot(piece.labels), sample),
            batch, batch_size)
        if return_variance:
            if variance is None:
                raise NoLikelihoodError(f"{self.name} is deterministic: its codes have no variance")
            return self._output(codes, as_numpy), self._output(variance, as_numpy)
        return self._output(codes, as_numpy)

    def decode(self, z, *, labels=None, batch_size: int = 1024):
        """Mean of p(x|z, y)."""
        tensor = _float_tensor(z, "codes")  # finite real numbers, or an error naming them
        as_numpy = not torch.is_tensor(z)
        if tensor.dim() != 2 or tensor.shape[1] != self.latent_dim or len(tensor) == 0:
            raise ValueError(f"expected codes shaped (N, {self.latent_dim}) with N >= 1, got "
                             f"{tuple(tensor.shape)}")
        if labels is None:
            raise ValueError(f"{self.name} is conditioned on a label: pass labels=")
        if np.ndim(labels) == 0:
            labels = np.full(len(tensor), _one_class(labels), dtype=np.int64)
        labels = _as_tensor(labels, "labels", torch.int64)
        if labels.shape != (len(tensor),):
            raise ValueError(f"expected {len(tensor)} labels, got shape {tuple(labels.shape)}")
        batch = Batch(tensor.to(self.device, torch.float32), labels=labels.to(self.device))
        decoded = self._in_batches(
            lambda piece: self.likelihood.mean(self.decoder(piece.x,
                                                            self.one_hot(piece.labels))),
            batch, batch_size)
        return self._output(decoded, as_numpy)

    def reconstruct(self, x, *, labels=None, batch_size: int = 1024):
        batch, as_numpy = self._labelled(x, labels)

        def piece_reconstruction(piece):
            condition = self.one_hot(piece.labels)
            codes, _ = self.encode_labelled(piece.x, condition, False)
            return self.likelihood.mean(self.decoder(codes, condition))

        return self._output(self._in_batches(piece_reconstruction, batch, batch_size), as_numpy)

    def sample(self, n: int, *, labels=None, seed: int | None = None, as_numpy: bool = True):
        """Decode ``n`` prior draws as the class(es) ``labels`` (one class, or n labels)."""
        codes = self.sample_latent(n, seed)
        return self._output(torch.as_tensor(self.decode(codes.numpy(), labels=labels)),
                            as_numpy)

    def encode_tensor(self, x, sample=False):
        raise ValueError(f"{self.name} is conditioned on a label: use encode(x, labels=...)")

    def loss(self, x, *, kl_weight=1.0, step=None):
        raise ValueError(f"{self.name} is conditioned on a label: train with fit(x, labels=...) "
                         "or call batch_loss with a Batch holding labels")


@register_model
class ConditionalAE(Conditioned, AE):
    name = "conditional_ae"
    description = "conditional AE: deterministic z = g(x, y), x' = f(z, y), one-hot label y"
    Config = ConditionalAEConfig

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.condition_networks()

    def encode_labelled(self, x, condition, sample=False):
        return self.encoder(x, condition), None

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        condition = self.one_hot(batch.labels)
        z = self.encoder(self.corrupt(batch.x), condition)
        reconstruction = -self.likelihood.log_prob(batch.x, self.decoder(z, condition))
        return LossOutput(loss=reconstruction, terms={"reconstruction": reconstruction})


@register_model
class ConditionalVAE(Conditioned, VAE):
    name = "cvae"
    description = "conditional VAE: q(z|x,y) and p(x|z,y) with a one-hot label y; sample a class"
    Config = ConditionalVAEConfig

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if not isinstance(self.prior, StandardNormal):
            raise ValueError("cvae uses the standard-normal prior")
        self.condition_networks()

    def training_refusal(self) -> str | None:
        if self.config.samples != 1:  # its loss draws one z: more would be ignored
            return "cvae draws one z per example: samples=1"
        return super().training_refusal()

    def conditional_posterior(self, x, condition) -> DiagonalGaussian:
        mean, log_variance = self.encoder(x, condition).chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_variance)

    def encode_labelled(self, x, condition, sample=False):
        q = self.conditional_posterior(x, condition)
        return (q.rsample() if sample else q.mean), q.variance

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        condition = self.one_hot(batch.labels)
        q = self.conditional_posterior(self.corrupt(batch.x), condition)
        z = q.rsample()
        reconstruction = -self.likelihood.log_prob(batch.x, self.decoder(z, condition))
        return self.elbo_loss(q, reconstruction, q.kl_to_standard_normal(), kl_weight)
