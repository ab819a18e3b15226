"""The variational recurrent neural network (Chung et al. 2015): a latent per time step.

A GRU state h_t carries the past. At step t the prior over z_t depends on it, p(z_t | h_{t-1});
the encoder sees the step too, q(z_t | x_t, h_{t-1}); the decoder reads both,
p(x_t | z_t, h_{t-1}); then h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1}). The loss sums, over the
real steps only, -log p(x_t | ...) + KL(q_t || p_t), each KL between two diagonal Gaussians in
closed form. ``encode`` returns the per-step posterior means, shaped (N, steps, latent_dim).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.batch import Batch
from ..distributions import DiagonalGaussian
from .base import Autoencoder, AutoencoderConfig, LossOutput
from .registry import register_model
from .sequence_vae import importance_sampled


@dataclass
class VRNNConfig(AutoencoderConfig):
    network: str = "recurrent"
    # Width of the GRU state and of every feature and step network.
    hidden: tuple[int, ...] = (128,)
    # Size of each step's latent z_t.
    latent_dim: int = 8
    # beta weights the summed KL (beta = 1: the VRNN's bound).
    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.network != "recurrent":
            raise ValueError("vrnn needs network='recurrent'")
        if len(self.input_shape) != 2:
            raise ValueError(f"vrnn needs sequences shaped (steps, features), got "
                             f"{self.input_shape}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be non-negative, got {self.beta}")


def _mlp(width_in: int, width: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, width), nn.ReLU(), nn.Linear(width, width_out))


def _gaussian(parameters: torch.Tensor) -> DiagonalGaussian:
    mean, log_variance = parameters.chunk(2, dim=-1)
    return DiagonalGaussian(mean, log_variance)


@register_model
class VRNN(Autoencoder):
    name = "vrnn"
    description = ("VRNN: a latent per time step, prior p(z_t | past), GRU state (Chung et al. "
                   "2015)")
    Config = VRNNConfig
    has_likelihood = True
    trains_prior = True
    uses = ("lengths",)
    unsupported = {method: "a VRNN has a latent variable per time step, not one code per "
                   "sequence to move along" for method in ("vary", "interpolate", "traverse",
                                                           "dimension_usage")}

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        features, width, latent = self.input_shape[-1], self.config.hidden[0], self.latent_dim
        with self.seeded_initialisation(0):
            self.feature_x = nn.Sequential(nn.Linear(features, width), nn.ReLU())
            self.feature_z = nn.Sequential(nn.Linear(latent, width), nn.ReLU())
            self.prior_net = nn.Linear(width, 2 * latent)
            # Replace the sequence networks the base built with the per-step ones.
            self.encoder = _mlp(2 * width, width, 2 * latent)
            self.decoder = _mlp(2 * width, width, features)
            self.cell = nn.GRUCell(2 * width, width)

    def training_refusal(self) -> str | None:
        if self.config.prior != "standard-normal":
            return ("vrnn learns its own prior at every step, p(z_t | past): keep the "
                    "standard-normal prior option")
        return super().training_refusal()

    def run(self, x: torch.Tensor, mask: torch.Tensor, sample: bool = True,
            target: torch.Tensor | None = None):
        """Walk the steps: per-step log p(x_t|.), KL_t, log p(z_t|.) - log q(z_t|.) (all
        (N, T), zero past each length) and the posterior means and variances (N, T, D).
        ``target``: the values scored, when the network reads corrupted ones (``x``)."""
        target = x if target is None else target
        count, steps = x.shape[:2]
        state = x.new_zeros(count, self.config.hidden[0])
        log_likelihoods, kls, ratios, means, variances = [], [], [], [], []
        for t in range(steps):
            features = self.feature_x(x[:, t])
            prior = _gaussian(self.prior_net(state))
            posterior = _gaussian(self.encoder(torch.cat([features, state], -1)))
            z = posterior.rsample() if sample else posterior.mean
            z_features = self.feature_z(z)
            output = self.decoder(torch.cat([z_features, state], -1))
            log_likelihoods.append(
                self.likelihood.elementwise_log_prob(target[:, t], output).sum(-1))
            kls.append(posterior.kl_to(prior))
            ratios.append(prior.log_prob(z) - posterior.log_prob(z))
            means.append(posterior.mean)
            variances.append(posterior.variance)
            # Padded steps leave the state as it was.
            updated = self.cell(torch.cat([features, z_features], -1), state)
            state = torch.where(mask[:, t:t + 1] > 0, updated, state)
        stacked = [torch.stack(values, 1) * mask for values in (log_likelihoods, kls, ratios)]
        return (*stacked, torch.stack(means, 1), torch.stack(variances, 1))

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        mask = batch.step_mask()
        # Denoising: the network reads the corrupted steps and is scored on the clean ones.
        log_likelihood, kl, _, _, _ = self.run(self.corrupt(batch.x), mask, target=batch.x)
        reconstruction, kl = -log_likelihood.sum(1), kl.sum(1)
        return LossOutput(loss=reconstruction + kl_weight * self.config.beta * kl,
                          terms={"reconstruction": reconstruction, "kl": kl},
                          elbo=-(reconstruction + kl))

    def loss(self, x, *, kl_weight=1.0, step=None):
        return self.batch_loss(Batch(x), kl_weight=kl_weight, step=step)

    def encode_batch(self, batch, sample=False):
        """Per-step posterior means (or draws) and variances, (N, steps, latent_dim)."""
        *_, means, variances = self.run(batch.x, batch.step_mask(), sample=sample)
        return means, variances

    def encode_tensor(self, x, sample=False):
        return self.encode_batch(Batch(x), sample)

    def reconstruct_batch(self, batch):
        """The decoder's mean at every step, with z_t at its posterior mean."""
        mask = batch.step_mask()
        count, steps = batch.x.shape[:2]
        state = batch.x.new_zeros(count, self.config.hidden[0])
        outputs = []
        for t in range(steps):
            features = self.feature_x(batch.x[:, t])
            z = _gaussian(self.encoder(torch.cat([features, state], -1))).mean
            z_features = self.feature_z(z)
            outputs.append(self.likelihood.mean(self.decoder(torch.cat([z_features, state],
                                                                       -1))))
            updated = self.cell(torch.cat([features, z_features], -1), state)
            state = torch.where(mask[:, t:t + 1] > 0, updated, state)
        return torch.stack(outputs, 1) * mask[..., None]

    def decode(self, z, *, batch_size: int = 1024):
        raise ValueError("vrnn decodes step by step from its state: use sample(n)")

    def sample(self, n: int, *, seed: int | None = None, steps: int | None = None,
               as_numpy: bool = True):
        """``n`` sequences generated from the prior, feeding back the decoder's mean."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        count = self.input_shape[0] if steps is None else int(steps)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                state = torch.zeros(n, self.config.hidden[0], device=self.device)
                outputs = []
                for _ in range(count):
                    prior = _gaussian(self.prior_net(state))
                    noise = torch.randn(prior.mean.shape, generator=generator).to(self.device)
                    z = prior.mean + prior.std * noise
                    z_features = self.feature_z(z)
                    x_t = self.likelihood.mean(self.decoder(torch.cat([z_features, state], -1)))
                    outputs.append(x_t)
                    state = self.cell(torch.cat([self.feature_x(x_t), z_features], -1), state)
        finally:
            self.train(was_training)
        return self._output(torch.stack(outputs, 1), as_numpy)

    def batch_log_weights(self, batch: Batch, k: int) -> torch.Tensor:
        """sum_t log p(x_t|.) + log p(z_t|.) - log q(z_t|.) for k sampled trajectories: (k, N)."""
        count = len(batch)
        repeated = batch.x.repeat(k, *([1] * (batch.x.dim() - 1)))
        mask = batch.step_mask().repeat(k, 1)
        log_likelihood, _, ratio, _, _ = self.run(repeated, mask)
        return (log_likelihood + ratio).sum(1).view(k, count)

    def log_importance_weights(self, x, k: int):
        return self.batch_log_weights(Batch(x), k)

    def sequence_log_likelihood(self, x, *, lengths=None, k: int = 500, seed: int = 0,
                                batch_size: int = 64):
        """Importance-sampled log p(x) per sequence (nats), over the real steps."""
        batch, _ = self.make_batch(x, scored=True, lengths=lengths)
        return importance_sampled(self, batch, k, seed, batch_size)

