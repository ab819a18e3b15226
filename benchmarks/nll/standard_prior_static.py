"""Published-NLL row: VAE + N(0, I) prior (static). Settings and the JSON it writes: common.py.

    python benchmarks/nll/standard_prior_static.py --epochs E --test-examples N --threads 1
"""

from common import run

if __name__ == "__main__":
    run("standard_prior_static")
