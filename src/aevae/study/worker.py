"""A study worker process: ``python -m aevae.study.worker '{"settings": ..., "out": ...}'``.

``run_study`` starts these (or Ray tasks running ``work``) to work through the same plan at
once; the run store's claims keep any two workers from doing the same run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """A study killed with SIGKILL takes its workers with it (Linux: the kernel sends them
    SIGKILL; elsewhere the worker stops before its next run)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        sys.exit(1)


def work(settings: dict, out: str, stop=None) -> list[str]:
    """Work through a study's plan beside the other workers: the body of a local worker
    process and of a Ray task. Returns the ids of the runs done here."""
    import torch

    from .runner import (
        metric_groups,
        open_store,
        plan_runs,
        prepare_data,
        roster_for,
        study_tasks,
        work_through,
    )
    from .settings import StudySettings

    torch.set_num_threads(1)  # as in the parent: a run's numbers must not depend on who ran it
    settings = StudySettings(**settings)
    entries, _ = roster_for(settings)
    data = prepare_data(settings)
    plans = plan_runs(settings, data, entries)
    store = open_store(settings, Path(out))
    try:
        return work_through(plans, data, settings, store,
                            metric_groups(data.info, study_tasks(settings)), stop=stop)
    finally:
        store.close()


# How run_study starts a worker (``python -c COMMAND PAYLOAD``): Ctrl-C reaches the whole
# process group, so a worker still importing torch (seconds) leaves at once, without a traceback.
COMMAND = ("import os, signal, sys\n"
           "signal.signal(signal.SIGINT, lambda *_: os._exit(130))\n"
           "from aevae.study.worker import main\n"
           "sys.exit(main(sys.argv[1]))\n")


def main(payload: str) -> int:
    request = json.loads(payload)
    die_with_parent(request["parent"])
    try:
        # Past the imports, an interrupt releases the run being done (run_study's parent says
        # "interrupted"); the worker ends quietly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        work(request["settings"], request["out"],
             stop=lambda: os.getppid() != request["parent"])
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
