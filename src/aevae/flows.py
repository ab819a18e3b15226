"""Normalizing flows that make a Gaussian posterior richer.

A flow pushes z_0 ~ q_0(z|x) through invertible maps, z_K = f_K(... f_1(z_0)), and tracks the
density by the change of variables: log q_K(z_K) = log q_0(z_0) - sum_k log |det df_k/dz|.
Every flow here is conditioned on a context vector h(x) from the encoder and maps
``(z, context) -> (z', log |det|)``, with z shaped (..., N, D) (leading sample dimensions allowed)
and context (N, C); log |det| has z's shape without its last dimension.

- ``planar`` (Rezende & Mohamed 2015): f(z) = z + u h(w^T z + b), with u constrained so that
  w^T u >= -1, which keeps f invertible; u, w, b are amortized: computed from the context.
- ``iaf`` (Kingma et al. 2016): an autoregressive network (masked, MADE-style) gives m and s
  from z and h; z' = sigma * z + (1 - sigma) * m with sigma = sigmoid(s), whose Jacobian is
  triangular with log-determinant sum log sigma.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .nets.layers import activation as make_activation

FLOWS: dict[str, type[Flow]] = {}


def register_flow(cls):
    FLOWS[cls.name] = cls
    return cls


class Flow(nn.Module):
    """A stack of ``length`` conditioned invertible layers."""

    name: ClassVar[str]
    description: ClassVar[str]
    default_length: ClassVar[int]

    def forward(self, z: torch.Tensor, context: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@register_flow
class PlanarFlow(Flow):
    name = "planar"
    description = "planar flows z + u tanh(w^T z + b) (Rezende & Mohamed 2015), amortized"
    default_length = 4

    def __init__(self, latent_dim: int, context_dim: int, length: int = 4,
                 hidden: tuple[int, ...] = (), activation: str = "relu"):
        super().__init__()
        # hidden and activation belong to the IAF's network; planar layers have none.
        self.latent_dim, self.length = int(latent_dim), int(length)
        # One linear map from the context to every layer's (u, w, b).
        self.parameter_map = nn.Linear(context_dim, self.length * (2 * self.latent_dim + 1))

    def layer_parameters(self, context: torch.Tensor):
        """(u_hat, w, b, w^T u_hat) shaped (N, length, D), (N, length, D), (N, length),
        (N, length); u_hat satisfies w^T u_hat > -1 (appendix A of the paper)."""
        dimension = self.latent_dim
        values = self.parameter_map(context).view(-1, self.length, 2 * dimension + 1)
        u, w, b = values.split([dimension, dimension, 1], dim=-1)
        u_hat, w_dot_u_hat = self.constrain(u, w)
        return u_hat, w, b.squeeze(-1), w_dot_u_hat

    @staticmethod
    def constrain(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u_hat = u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + softplus(a) > -1, and
        w^T u_hat = m(w^T u) exactly (recomputing the dot product would round below -1)."""
        w_dot_u = (w * u).sum(-1, keepdim=True)
        target = F.softplus(w_dot_u) - 1.0
        norm = w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
        return u + (target - w_dot_u) * w / norm, target.squeeze(-1)

    def forward(self, z, context):
        u_hat, w, b, w_dot_u_hat = self.layer_parameters(context)
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for layer in range(self.length):
            activation = torch.tanh((z * w[:, layer]).sum(-1) + b[:, layer])
            # det(I + u psi^T) = 1 + psi^T u with psi = tanh'(.) w; positive by the constraint.
            slope = 1.0 - activation.pow(2)
            log_det = log_det + torch.log1p(slope * w_dot_u_hat[:, layer])
            z = z + u_hat[:, layer] * activation.unsqueeze(-1)
        return z, log_det


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 connectivity mask."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        # Derived from the configuration, so not saved with the weights.
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class AutoregressiveNetwork(nn.Module):
    """MADE (Germain et al. 2015) with an unmasked context input: outputs (m, s) where output i
    depends on z only through the inputs before i in ``order``, and on the whole context."""

    def __init__(self, latent_dim: int, context_dim: int, hidden: tuple[int, ...],
                 activation: str, order: torch.Tensor):
        super().__init__()
        if not hidden:
            raise ValueError("the iaf flow needs at least one hidden layer (flow_hidden)")
        # Degree d: a unit sees z's inputs of degree <= d; degree 0 units see only the context.
        input_degrees = order + 1
        previous = input_degrees
        layers = []
        for width in hidden:
            degrees = torch.arange(width) % latent_dim
            mask = (degrees[:, None] >= previous[None, :]).float()
            layers.append(MaskedLinear(len(previous), width, mask))
            previous = degrees
        self.layers = nn.ModuleList(layers)
        self.context_map = nn.Linear(context_dim, hidden[0])
        output_mask = (input_degrees[:, None] > previous[None, :]).float()
        self.shift = MaskedLinear(len(previous), latent_dim, output_mask)
        self.gate = MaskedLinear(len(previous), latent_dim, output_mask)
        # Start sigma = sigmoid(s) near 1, so each step starts near the identity (the paper's
        # advice for a stable start).
        nn.init.constant_(self.gate.bias, 2.0)
        self.activation = make_activation(activation)

    def forward(self, z, context):
        hidden = self.activation(self.layers[0](z) + self.context_map(context))
        for layer in self.layers[1:]:
            hidden = self.activation(layer(hidden))
        return self.shift(hidden), self.gate(hidden)


@register_flow
class InverseAutoregressiveFlow(Flow):
    name = "iaf"
    description = "inverse autoregressive flow (Kingma et al. 2016), MADE steps, gated update"
    default_length = 2

    def __init__(self, latent_dim: int, context_dim: int, length: int = 2,
                 hidden: tuple[int, ...] = (64, 64), activation: str = "relu"):
        super().__init__()
        ascending = torch.arange(latent_dim)
        # Alternate the variable order between steps so every z_i can depend on every other.
        self.steps = nn.ModuleList(
            AutoregressiveNetwork(latent_dim, context_dim, tuple(hidden), activation,
                                  ascending if step % 2 == 0 else ascending.flip(0))
            for step in range(int(length))
        )

    def forward(self, z, context):
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for network in self.steps:
            shift, gate_logits = network(z, context)
            gate = torch.sigmoid(gate_logits)
            # The LSTM-type update: numerically stabler than z * exp(s) + m.
            z = gate * z + (1.0 - gate) * shift
            log_det = log_det + F.logsigmoid(gate_logits).sum(-1)
        return z, log_det


def make_flow(name: str, latent_dim: int, context_dim: int, *, length: int | None = None,
              hidden: tuple[int, ...] = (64, 64), activation: str = "relu") -> Flow:
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; known: {', '.join(sorted(FLOWS))}")
    cls = FLOWS[name]
    length = cls.default_length if length is None else int(length)
    if length < 1:
        raise ValueError(f"flow length must be at least 1, got {length}")
    return cls(latent_dim, context_dim, length, hidden=tuple(hidden), activation=activation)
