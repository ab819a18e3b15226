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
    model = model_class(name)(**options)
    if (refused := model.training_refusal()) is not None:
        raise ValueError(refused)
    return model


def available_models() -> list[tuple[str, str]]:
    return [(name, MODELS[name].description) for name in sorted(MODELS)]


def option_help(config_class) -> dict[str, str]:
    """Each option's meaning, read from the comment lines above its field in the config
    dataclasses (base classes first, a subclass's own comment wins). A comment covers the run of
    fields right below it. Empty where the source is not available or a field has none."""
    import inspect

    meanings: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if "__dataclass_fields__" not in vars(cls):
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        comment: list[str] = []
        after_field = False
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#"):
                if after_field:  # a new comment starts a new run of fields
                    comment, after_field = [], False
                comment.append(stripped.lstrip("#").strip())
                continue
            name, colon, _ = stripped.partition(":")
            if colon and name.isidentifier() and name in config_class.__dataclass_fields__:
                if comment:
                    meanings[name] = " ".join(comment)
                after_field = True
                continue
            comment, after_field = [], False
    return meanings
