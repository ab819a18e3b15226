"""Published-NLL row: VAE (1 layer, k=1). Settings and the JSON it writes: common.py.

    python benchmarks/nll/vae.py --epochs E --test-examples N --threads 1
"""

from common import run

if __name__ == "__main__":
    run("vae")
