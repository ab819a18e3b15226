"""Shared building blocks: activations, normalisation and initialisation by name."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
}
NORMS = {None: None, "none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
INITS = ("default", "xavier", "kaiming", "orthogonal")


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_norm(name):
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; known: none, batch, layer")
    return NORMS[name]


def initialise(module: nn.Module, init: str, activation_name: str) -> None:
    """Xavier, Kaiming or orthogonal init of each Linear/Conv weight, biases zero; 'default'
    keeps torch's."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    if init == "default":
        return
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if init == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            elif init == "orthogonal":
                nn.init.orthogonal_(layer.weight)
            else:
                nonlinearity = "leaky_relu" if activation_name == "leaky_relu" else "relu"
                nn.init.kaiming_uniform_(layer.weight, nonlinearity=nonlinearity)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
