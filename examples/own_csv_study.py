"""AE or VAE on my table? The study on a CSV file of your own.

Writes scikit-learn's bundled breast-cancer table (569 rows, 30 numeric features and a
"diagnosis" column; no download) to OUT/breast_cancer.csv, then runs aevae's study on it with a
PCA, an autoencoder and a VAE matched in size and training budget, and prints the bottom line
(AE against VAE, one row per goal), the verdicts and where the HTML report is.

    python examples/own_csv_study.py                 # the defaults: 3 seeds, every task
    python examples/own_csv_study.py my-study --quick  # 2 seeds, 30 epochs, two tasks (~15 s)

OUT (default: example-study) must be new, empty or a previous run of this example (resumed:
finished runs are reused from its run store).
"""

import argparse
import csv
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

from aevae.study import StudySettings, run_study

CSV_NAME = "breast_cancer.csv"


def write_table(path: Path) -> None:
    table = load_breast_cancer()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*table.feature_names, "diagnosis"])
        for row, label in zip(table.data, table.target):
            writer.writerow([*(repr(float(value)) for value in row), table.target_names[label]])


def figure(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="example-study", help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, 30 epochs, compression and few-label tasks only")
    arguments = parser.parse_args(argv)
    out = Path(arguments.out)
    if out.is_dir() and any(out.iterdir()) and not (out / CSV_NAME).is_file():
        print(f"{out} is not empty and not a run of this example: choose another folder",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    write_table(out / CSV_NAME)

    options = dict(data=str(out / CSV_NAME), labels="diagnosis", models="pca,ae,vae")
    if arguments.quick:
        options.update(seeds=2, epochs=30, tasks="compression,few_labels", workers=1)
    results = run_study(StudySettings(**options), out, progress=not arguments.quick)

    answer = results["answers"][0]  # the AE against the VAE
    print(f"\nAE or VAE on {CSV_NAME}? One row per goal:")
    for row in answer["bottom_line"]:
        if row["outcome"] == "skipped":
            print(f"  {row['goal']}: not measured ({row['reason']})")
            continue
        if row["outcome"] in ("first", "second", "only"):
            verdict = f"{row['better']} " + ("(the only one)" if row["outcome"] == "only"
                                             else "is better")
        elif row.get("leader") and row["outcome"] in ("level", "one seed") and not (
                row.get("negligible")):
            verdict = f"{row['leader']} leads, not clearly ({row.get('reason')})"
        else:
            verdict = f"{row['outcome']} ({row.get('reason')})"
        print(f"  {row['goal']}: {row['label']} ({row['direction']} is better): "
              f"ae {figure(row['ae'])}, vae {figure(row['vae'])} -> {verdict}")
    print("\nVerdicts over the whole roster:")
    for sentence in results["summary"]:
        print(f"  - {sentence}")
    print(f"\nreport: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
