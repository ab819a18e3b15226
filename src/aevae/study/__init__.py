"""The study: matched models over seeds, a run store, tasks with verdicts, and the report.

>>> from aevae.study import StudySettings, run_study
>>> results = run_study(StudySettings(data="digits", seeds=3), "compare-digits")  # doctest: +SKIP
"""

from .runner import run_study
from .settings import BUDGETS, StudySettings
from .tasks import TASKS, Metric, Task, register_task

__all__ = ["BUDGETS", "TASKS", "Metric", "StudySettings", "Task", "register_task", "run_study"]
