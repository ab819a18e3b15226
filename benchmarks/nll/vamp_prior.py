"""Published-NLL row: VAE + VampPrior (500 pseudo-inputs). Settings, output: common.py.

    python benchmarks/nll/vamp_prior.py --epochs E --test-examples N --threads 1
"""

from common import run

if __name__ == "__main__":
    run("vamp_prior")
