"""aevae: autoencoders and variational autoencoders behind one small API, with the measurements
that decide between them."""

__version__ = "0.1.0"

from .editing import attribute_vector, class_vector, edit  # noqa: E402
from .models import (  # noqa: E402
    AE,
    VAE,
    Autoencoder,
    LossOutput,
    NoLikelihoodError,
    available_models,
    load,
    make,
)

__all__ = [
    "AE",
    "VAE",
    "Autoencoder",
    "LossOutput",
    "NoLikelihoodError",
    "__version__",
    "attribute_vector",
    "class_vector",
    "edit",
    "available_models",
    "load",
    "make",
]
