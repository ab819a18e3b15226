"""Figures and reports for humans: image grids, the study's terminal answer and HTML report.

Names load on first use (PEP 562), so the terminal tables (``aevae.report.text``) need no
numpy or matplotlib."""

_NAMES = {"image_grid": "figures", "save_image_grid": "figures"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_NAMES[name]}", __name__), name)
