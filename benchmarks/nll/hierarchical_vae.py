"""Published-NLL row: VAE (2 layers, k=1). Settings and the JSON it writes: common.py.

    python benchmarks/nll/hierarchical_vae.py --epochs E --test-examples N --threads 1
"""

from common import run

if __name__ == "__main__":
    run("hierarchical_vae")
