"""aevae: autoencoders and variational autoencoders behind one small API, with the measurements
that decide between them."""

__version__ = "0.1.0"

# Every name loads on first use (PEP 562): `import aevae` costs nothing until a model, a metric
# or the study is touched, so the command line can catch a Ctrl-C during torch's import, and
# `aevae.metrics.dci(...)` or `aevae.study.run_study(...)` work right after `import aevae`.
_NAMES = {
    "AE": "models",
    "VAE": "models",
    "Autoencoder": "models",
    "LossOutput": "models",
    "NoLikelihoodError": "models",
    "available_models": "models",
    "load": "models",
    "make": "models",
    "attribute_vector": "editing",
    "class_vector": "editing",
    "edit": "editing",
    "ExPostSampler": "ex_post",
}
SUBPACKAGES = ("metrics", "ex_post", "sklearn", "study", "models", "data", "training")


def __getattr__(name: str):
    import importlib

    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES, *SUBPACKAGES})


__all__ = ["__version__", *sorted(_NAMES)]
