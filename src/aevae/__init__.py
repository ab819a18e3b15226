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

# Subpackages imported on first use (PEP 562), so `import aevae` stays quick while
# `aevae.metrics.dci(...)` and `aevae.study.run_study(...)` work after it.
SUBPACKAGES = ("metrics", "ex_post", "sklearn", "study")


def __getattr__(name: str):
    if name in SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBPACKAGES})


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
