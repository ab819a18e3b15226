"""The VAE with a normalizing-flow posterior (Rezende & Mohamed 2015; Kingma et al. 2016).

Compared with ``vae.py``: the encoder emits a context vector h(x) beside the Gaussian's mean and
log-variance, and z_0 ~ q_0(z|x) is pushed through a flow conditioned on h (``flows.py``). The
posterior q_K(z|x) is no longer Gaussian, so the KL is the Monte-Carlo estimate
log q_0(z_0) - sum log |det| - log p(z_K), and the importance weights use the same density.

``encode`` returns f(E[z_0|x]), the posterior mean pushed through the flow (a deterministic
code, not E[z_K|x], which has no closed form); its variance is q_0's pushed through the flow to
first order, diag(J diag(sigma_0^2) J^T) with J the flow's Jacobian at that mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributions import DiagonalGaussian
from ..flows import FLOWS, make_flow
from .base import LossOutput
from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class VAEFlowConfig(VAEConfig):
    # Which flow: "planar" or "iaf".
    flow: str = "planar"
    # Layers (planar) or autoregressive steps (iaf); None takes the flow's default (4 / 2).
    flow_length: int | None = None
    # Hidden widths of each IAF step's masked network (planar flows have no hidden layers).
    flow_hidden: tuple[int, ...] = (64, 64)

    def __post_init__(self):
        super().__post_init__()
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow {self.flow!r}; known: {', '.join(sorted(FLOWS))}")
        if self.flow_length is None:
            self.flow_length = FLOWS[self.flow].default_length
        self.flow_length = int(self.flow_length)
        if self.flow_length < 1:
            raise ValueError(f"flow_length must be at least 1, got {self.flow_length}")
        self.flow_hidden = tuple(int(width) for width in self.flow_hidden)
        if any(width < 1 for width in self.flow_hidden):
            raise ValueError(f"flow_hidden widths must be positive, got {self.flow_hidden}")
        if getattr(self, "free_bits", 0.0):
            raise ValueError("free bits need a per-dimension KL, which a flow posterior lacks")


@register_model
class VAEFlow(VAE):
    name = "vae_flow"
    description = "VAE whose posterior is a Gaussian pushed through planar or IAF flows"
    Config = VAEFlowConfig
    # Mean, log-variance and the context h(x) that conditions the flow, latent_dim each.
    posterior_parameters = 3

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        config = self.config
        with self.seeded_initialisation():
            self.flow = make_flow(config.flow, config.latent_dim, config.latent_dim,
                                  length=config.flow_length, hidden=config.flow_hidden,
                                  activation=config.activation)
        # A VampPrior (bound in VAE.__init__) mixes the base Gaussians q_0(z|u_k): q_K at any z
        # would need the flow's inverse.

    def inference(self, x: torch.Tensor) -> tuple[DiagonalGaussian, torch.Tensor]:
        """The base posterior q_0(z_0|x) and the flow's context h(x)."""
        mean, log_variance, context = self.encoder(x).chunk(3, dim=-1)
        return DiagonalGaussian(mean, log_variance), context

    def posterior(self, x: torch.Tensor) -> DiagonalGaussian:
        """The base Gaussian q_0(z_0|x) (before the flow)."""
        return self.inference(x)[0]

    def flow_sample(self, x: torch.Tensor, n_samples: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K ~ q_K(z|x) and log q_K(z_K|x); shapes (N, D) and (N,), or with ``n_samples`` a
        leading sample dimension."""
        q0, context = self.inference(x)
        z0 = q0.rsample(n_samples)
        z, log_det = self.flow(z0, context)
        return z, q0.log_prob(z0) - log_det

    def loss(self, x, *, kl_weight=1.0, step=None):
        samples = self.config.samples
        z, log_q = self.flow_sample(self.corrupt(x), None if samples == 1 else samples)
        reconstruction = -self.reconstruction_log_prob(x, z)
        kl = log_q - self.prior.log_prob(z)
        if samples > 1:
            reconstruction, kl = reconstruction.mean(0), kl.mean(0)
        return LossOutput(
            loss=reconstruction + (kl_weight * self.config.beta) * kl,
            terms={"reconstruction": reconstruction, "kl": kl},
            elbo=-(reconstruction + kl),
        )

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        z, log_q = self.flow_sample(x, k)
        return self.reconstruction_log_prob(x, z) + self.prior.log_prob(z) - log_q

    def encode_tensor(self, x, sample=False):
        q0, context = self.inference(x)
        z0 = q0.rsample() if sample else q0.mean
        codes = self.flow(z0, context)[0]
        return codes, self._pushed_variance(q0, context)

    def _pushed_variance(self, q0: DiagonalGaussian, context: torch.Tensor) -> torch.Tensor:
        """diag(J Sigma_0 J^T) at the base mean: a report, so computed off the training graph,
        one backward pass per latent dimension (examples are independent, so summing over the
        batch gives every example's row of J at once)."""
        with torch.enable_grad():
            mean = q0.mean.detach().requires_grad_(True)
            pushed = self.flow(mean, context.detach())[0]
            rows = [torch.autograd.grad(pushed[:, i].sum(), mean, retain_graph=True)[0]
                    for i in range(pushed.shape[-1])]
        jacobian = torch.stack(rows, dim=1)  # (N, output dimension, input dimension)
        return (jacobian.pow(2) * q0.variance.detach()[:, None, :]).sum(-1)
