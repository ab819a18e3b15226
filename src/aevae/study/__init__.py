"""The study: matched models over seeds, a run store, tasks with verdicts, and the report.

>>> from aevae.study import StudySettings, run_study
>>> results = run_study(StudySettings(data="digits", seeds=3), "compare-digits")  # doctest: +SKIP

Names load on first use (PEP 562), so reading the task registry (``aevae.study.tasks``, which
the CLI's help lists) does not import torch.
"""

from importlib import import_module

_NAMES = {
    "run_study": "runner",
    "BUDGETS": "settings",
    "StudySettings": "settings",
    "TASKS": "tasks",
    "Metric": "tasks",
    "Task": "tasks",
    "register_task": "tasks",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
