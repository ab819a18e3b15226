"""Recurrent pieces for sequences shaped (N, steps, features), padded, with lengths.

A GRU encoder that summarises each sequence by its hidden state after its last real step, and
an autoregressive GRU decoder that reads the previous step (teacher forcing in training, its own
output when generating) beside a global code z at every step. They know nothing of losses.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .registry import register_network


class RecurrentEncoder(nn.Module):
    """GRU over the real steps of each sequence -> last hidden state -> linear map."""

    def __init__(self, features: int, output_dim: int, width: int = 256):
        super().__init__()
        self.rnn = nn.GRU(features, width, batch_first=True)
        self.output = nn.Linear(width, output_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            _, last = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, last = self.rnn(packed)
        return self.output(last[-1])


class AutoregressiveDecoder(nn.Module):
    """p(x_t | x_<t, z): a GRU whose input at step t is (x_{t-1}, z), its first hidden state
    tanh(W z); returns the likelihood's raw parameters for every step."""

    def __init__(self, latent_dim: int, features: int, width: int = 256,
                 reads_latent: bool = True):
        super().__init__()
        self.reads_latent = reads_latent
        self.start = nn.Linear(latent_dim, width)
        self.rnn = nn.GRU(features + (latent_dim if reads_latent else 0), width,
                          batch_first=True)
        self.output = nn.Linear(width, features)

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.start(z))[None]

    def step_inputs(self, previous: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if not self.reads_latent:
            return previous
        return torch.cat([previous, z[:, None].expand(-1, previous.shape[1], -1)], dim=-1)

    def forward(self, z: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``previous`` holds x_{t-1} at step t (zeros at t = 0)."""
        hidden, _ = self.rnn(self.step_inputs(previous, z), self.initial_state(z))
        return self.output(hidden)

    def generate(self, z: torch.Tensor, steps: int, emit) -> torch.Tensor:
        """Run ``steps`` steps feeding back ``emit(parameters)`` (the likelihood's mean or a
        draw); returns the parameters of every step, (N, steps, features)."""
        state = self.initial_state(z)
        previous = torch.zeros(len(z), 1, self.output.out_features, device=z.device)
        outputs = []
        for _ in range(steps):
            hidden, state = self.rnn(self.step_inputs(previous, z), state)
            parameters = self.output(hidden)
            outputs.append(parameters)
            previous = emit(parameters)
        return torch.cat(outputs, dim=1)


def shifted(x: torch.Tensor) -> torch.Tensor:
    """x_{t-1} at step t, zeros at the first step."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


def _recurrent_encoder(input_shape, output_dim, hidden=(256,), **_options):
    if len(input_shape) != 2:
        raise ValueError(f"the recurrent network needs sequences shaped (steps, features), got "
                         f"examples shaped {tuple(input_shape)}")
    return RecurrentEncoder(input_shape[-1], output_dim, width=hidden[0] if hidden else 256)


def _recurrent_decoder(latent_dim, output_shape, hidden=(256,), **_options):
    return AutoregressiveDecoder(latent_dim, output_shape[-1],
                                 width=hidden[0] if hidden else 256)


register_network(
    "recurrent",
    "sequences (steps, features): a GRU encoder over the real steps and an autoregressive GRU "
    "decoder reading the previous step and z (width: the first hidden size)",
    _recurrent_encoder,
    _recurrent_decoder,
    widths=lambda hidden: hidden[:1] or (256,),
)
