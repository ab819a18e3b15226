"""Studies on a Ray cluster (``aevae compare --executor ray``; the ``ray`` extra).

Each of ``workers`` Ray tasks runs the same loop as a local worker process: claim an unfinished
run in the study's run store, train and evaluate it on one thread, repeat. The store (SQLite in
the output directory, or ``--store``) must therefore be on a file system every node sees.
``ray.init()`` finds the cluster the usual way (``RAY_ADDRESS``, or a local one if none).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def require_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'aevae[ray]'") from None
    return ray


def run_on_ray(settings, out: Path, workers: int, on_progress: Callable[[], None]) -> None:
    from .worker import work

    ray = require_ray()

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(work)
        started = [task.remote(settings.to_dict(), str(Path(out).resolve()))
                   for _ in range(workers)]
        pending = started
        while pending:
            _, pending = ray.wait(pending, timeout=1.0)
            on_progress()
        ray.get(started)  # raises a task's failure (a run's own error is in the store too)
    finally:
        if started_here:
            ray.shutdown()
