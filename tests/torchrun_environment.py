"""The environment a test hands to torchrun: this process's, without the variables of any
process group it may itself be in, and one thread per worker."""

from __future__ import annotations

import os


def torchrun_environment() -> dict:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                  "MASTER_PORT")}
    environment["OMP_NUM_THREADS"] = "1"
    return environment
