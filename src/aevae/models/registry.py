"""Models register themselves by name; ``make`` builds one from keyword options."""

from __future__ import annotations

MODELS: dict[str, type] = {}


def register_model(cls):
    """Class decorator: makes ``cls`` available as ``aevae.make(cls.name, ...)``."""
    if cls.name in MODELS:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODELS[cls.name] = cls
    return cls


def model_class(name: str) -> type:
    if name not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known: {known}")
    return MODELS[name]


def make(name: str, **options):
    """Build a model by registered name, e.g. ``make("vae", input_shape=(1, 28, 28))``."""
    return model_class(name)(**options)


def available_models() -> list[tuple[str, str]]:
    return [(name, MODELS[name].description) for name in sorted(MODELS)]
