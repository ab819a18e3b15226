"""The VAE trained without the reparameterization trick: the encoder's gradient of the
reconstruction term comes from the score-function (REINFORCE, log-derivative) estimator.

    d/dphi E_q[log p(x|z)] = E_q[(log p(x|z) - b) d/dphi log q(z|x)]

with z drawn from q(z|x) without a path back to the encoder. ``baseline="none"`` uses b = 0;
``baseline="leave_one_out"`` uses, for each example, the mean reconstruction term of the other
examples in the batch (a control variate that does not depend on the example's own draw, so the
estimate stays unbiased). With the N(0, I) prior the KL term keeps its closed-form gradient;
with another prior its Monte-Carlo estimate log q(z|x) - log p(z) depends on the draw, so it
joins the learning signal (log p(x|z) - beta * KL). The decoder and the prior get their ordinary
gradients. The objective and every reported term are the VAE's: only the encoder's gradient differs,
which is what ``benchmarks/gradient_estimators.py`` measures against the reparameterized one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..priors import StandardNormal
from .base import LossOutput
from .registry import register_model
from .vae import VAE, VAEConfig

BASELINES = ("none", "leave_one_out")


@dataclass
class ScoreFunctionVAEConfig(VAEConfig):
    # Control variate for the score-function estimator: none, or leave_one_out (the mean of
    # the other examples' reconstruction terms in the batch).
    baseline: str = "leave_one_out"

    def __post_init__(self):
        super().__post_init__()
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; known: {', '.join(BASELINES)}")
        if self.samples != 1:
            raise ValueError("score_function_vae draws one z per example: samples=1")


def leave_one_out_mean(values: torch.Tensor) -> torch.Tensor:
    """For each entry, the mean of all the others (the entry itself when alone)."""
    count = values.shape[0]
    if count == 1:
        return values
    return (values.sum() - values) / (count - 1)


@register_model
class ScoreFunctionVAE(VAE):
    name = "score_function_vae"
    description = ("VAE whose encoder learns from the score-function (REINFORCE) gradient, not "
                   "the reparameterization trick")
    Config = ScoreFunctionVAEConfig

    def loss(self, x, *, kl_weight=1.0, step=None):
        q = self.posterior(self.corrupt(x))
        z = q.rsample().detach()  # a draw with no path back to the encoder
        log_likelihood = self.reconstruction_log_prob(x, z)
        reconstruction = -log_likelihood
        kl = self.kl(q, z)
        signal = log_likelihood.detach()
        if not isinstance(self.prior, StandardNormal):
            # A Monte-Carlo KL, log q(z|x) - log p(z), depends on the draw too: its part of the
            # objective joins the learning signal (its own gradient at the fixed z has mean 0).
            weight = kl_weight * self.config.beta
            signal = signal - weight * self.kl_penalty(q, kl).detach()
        if self.config.baseline == "leave_one_out":
            signal = signal - leave_one_out_mean(signal)
        # Zero in value (the reported loss stays the VAE's), the score-function estimate in
        # gradient.
        log_q = q.log_prob(z)
        surrogate = -(signal * (log_q - log_q.detach()))
        output = self.elbo_loss(q, reconstruction, kl, kl_weight)
        return LossOutput(loss=output.loss + surrogate, terms=output.terms, elbo=output.elbo)
