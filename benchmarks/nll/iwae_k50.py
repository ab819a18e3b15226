"""Published-NLL row: IWAE k=50 (1 layer). Settings and the JSON it writes: common.py.

    python benchmarks/nll/iwae_k50.py --epochs E --test-examples N --threads 1
"""

from common import run

if __name__ == "__main__":
    run("iwae_k50")
