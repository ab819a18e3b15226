"""Models: one shared base, one small file per variant, registered by name."""

import importlib
import pkgutil

from .ae import AE
from .base import Autoencoder, AutoencoderConfig, LossOutput, NoLikelihoodError, load
from .registry import MODELS, available_models, make, model_class, register_model
from .vae import VAE, VAEConfig

__all__ = [
    "AE",
    "MODELS",
    "VAE",
    "Autoencoder",
    "AutoencoderConfig",
    "LossOutput",
    "NoLikelihoodError",
    "VAEConfig",
    "available_models",
    "load",
    "make",
    "model_class",
    "register_model",
]


def _import_all_models() -> None:
    """Import every module in this package: each model file registers itself by name."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in {"base", "registry"}:
            importlib.import_module(f"{__name__}.{module.name}")


_import_all_models()
