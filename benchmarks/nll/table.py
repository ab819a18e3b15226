"""Collect ``benchmarks/results/nll/<row>.json`` into ``benchmarks/results/published_nll.md``
(and ``published_nll.json``): the published-versus-aevae NLL table and the claim checks.

    python benchmarks/nll/table.py

A claim "A beats B" holds when A's measured test NLL is lower than B's. Both rows are scored on
the same test images, so the difference also gets a paired standard error (from the
per-example differences), and the rows' budgets are checked to be identical.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
from common import RESULTS, ROWS

OUTPUT = RESULTS.parent / "published_nll"
BUDGET_KEYS = ("epochs", "batch_size", "learning_rate", "optimizer", "seed", "train_examples")

# (claim, better row, worse row)
CLAIMS = (
    ("IWAE beats VAE", "iwae_k5", "vae"),
    ("IWAE beats VAE", "iwae_k50", "vae"),
    ("two layers beat one", "hierarchical_vae", "vae"),
    ("two layers beat one", "hierarchical_iwae_k50", "iwae_k50"),
    ("VampPrior beats the standard prior", "vamp_prior", "standard_prior_static"),
)


def load_results(directory: Path) -> dict[str, dict]:
    results = {}
    for name in ROWS:
        path = directory / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    return results


def final_train_kl(result: dict, directory: Path) -> float | None:
    """The KL term of the last training epoch: from the result, else the run's history.csv."""
    terms = result.get("final_train_terms")
    if terms is not None:
        return terms.get("kl")
    history = directory / "runs" / result["row"] / "history.csv"
    if not history.is_file():
        return None
    with history.open() as handle:
        records = list(csv.DictReader(handle))
    return float(records[-1]["train_kl"]) if records and "train_kl" in records[-1] else None


def collect_checks(results: dict[str, dict]) -> list[dict]:
    return [check_claim(claim, results[better], results[worse])
            for claim, better, worse in CLAIMS if better in results and worse in results]


def budget_text(result: dict) -> str:
    budget = result["budget"]
    epochs = f"{budget['epochs']} epoch" + ("s" if budget["epochs"] != 1 else "")
    return (f"{epochs}, batch {budget['batch_size']}, Adam "
            f"{budget['learning_rate']:g}; train {result['train_seconds'] / 60:.1f} min; "
            f"eval {result['test_examples']} test images, k={result['importance_samples']}, "
            f"{result['eval_seconds'] / 60:.1f} min")


def same_budget(first: dict, second: dict) -> bool:
    return (all(first["budget"][key] == second["budget"][key] for key in BUDGET_KEYS)
            and first["test_examples"] == second["test_examples"]
            and first["importance_samples"] == second["importance_samples"])


def check_claim(claim: str, better: dict, worse: dict) -> dict:
    ours = np.asarray(better["per_example_log_likelihood"])
    theirs = np.asarray(worse["per_example_log_likelihood"])
    paired = better.get("test_indices") == worse.get("test_indices") and len(ours) == len(theirs)
    if paired:
        difference = ours - theirs  # positive: `better` assigns the higher log-likelihood
        improvement = float(difference.mean())
        error = float(difference.std(ddof=1) / math.sqrt(len(difference)))
    else:  # different test images: independent standard errors
        improvement = worse["measured_nll"] - better["measured_nll"]
        error = math.hypot(better["standard_error"], worse["standard_error"])
    check = {
        "claim": claim,
        "better": better["row"],
        "worse": worse["row"],
        "measured_nll": [better["measured_nll"], worse["measured_nll"]],
        "published_nll": [better["published_nll"], worse["published_nll"]],
        "improvement_nats": improvement,
        "standard_error": error,
        "paired": paired,
        "holds": bool(better["measured_nll"] < worse["measured_nll"]),
        "same_budget": same_budget(better, worse) and paired,
    }
    published = check["published_nll"]
    if None not in published:
        check["published_improvement_nats"] = published[1] - published[0]
    return check


def row_facts(result: dict, directory: Path) -> str:
    kl = final_train_kl(result, directory)
    kl_text = "" if kl is None else f", training KL at the last epoch {kl:.2f} nats"
    norm = result["options"].get("norm") or "none"
    return (f"aevae `{result['model']}` on `{result['dataset']}`, activation "
            f"{result['options']['activation']}, norm {norm}, "
            f"{result['parameters']:,} parameters, "
            f"{np.mean(result['epoch_seconds']):.0f} s per epoch, test -ELBO "
            f"{-result['test_elbo']:.2f}{kl_text}")


def claim_table(checks: list[dict]) -> list[str]:
    lines = ["| claim | rows | aevae NLL | improvement (nats, ± paired s.e.) | published "
             "improvement | holds in aevae |",
             "|---|---|---|---|---|---|"]
    for check in checks:
        published = check.get("published_improvement_nats")
        budget_note = "" if check["same_budget"] else " (budgets or test images differ!)"
        lines.append(
            f"| {check['claim']} | `{check['better']}` vs `{check['worse']}` | "
            f"{check['measured_nll'][0]:.2f} vs {check['measured_nll'][1]:.2f} | "
            f"{check['improvement_nats']:+.2f} ± {check['standard_error']:.2f} | "
            f"{'-' if published is None else f'{published:+.2f}'} | "
            f"**{str(check['holds']).lower()}**{budget_note} |"
        )
    return lines


def supplementary_sections(directory: Path) -> list[str]:
    """Diagnostic runs kept under results/nll/supplementary/<set>/ (not part of the budgeted
    table): each set's ``about.md``, its rows and the claims among them."""
    sets = sorted(path for path in directory.glob("*") if path.is_dir())
    lines = []
    for folder in sets:
        results = load_results(folder)
        if not results:
            continue
        if not lines:
            lines += ["## Supplementary diagnostic runs (outside the budgeted set)", ""]
        lines += [f"### `{folder.name}`", ""]
        about = folder / "about.md"
        if about.is_file():
            lines += [about.read_text().strip(), ""]
        for name, result in results.items():
            lines.append(f"- `{name}` ({budget_text(result)}): NLL {result['measured_nll']:.2f} ± "
                         f"{result['standard_error']:.2f}; {row_facts(result, folder)}; "
                         f"command `{result.get('train_command') or result['command']}`")
        checks = collect_checks(results)
        if checks:
            lines += ["", *claim_table(checks)]
        lines.append("")
    return lines


def render(results: dict[str, dict], checks: list[dict], directory: Path) -> str:
    first = next(iter(results.values()))
    stamps = [(datetime.fromisoformat(r["train_started"]), datetime.fromisoformat(r["finished"]))
              for r in results.values()]
    span = (max(end for _, end in stamps) - min(start for start, _ in stamps)).total_seconds()
    train_minutes = sum(r["train_seconds"] for r in results.values()) / 60
    eval_minutes = sum(r["eval_seconds"] for r in results.values()) / 60
    separately = [name for name, r in results.items() if r.get("evaluated_separately")]
    rerun = (" The saved models were scored in a second pass (`--evaluate-only`), included in "
             "that span." if separately else "")
    lines = [
        "# Published test NLL versus aevae at a small CPU budget",
        "",
        "Test negative log-likelihood in nats, estimated by importance sampling with "
        f"k={first['importance_samples']} samples per image (Burda et al. 2016), on "
        f"{first['test_subset'].split(';')[0]} (± one standard error over images). "
        "Produced by `benchmarks/nll/run_all.sh` (`benchmarks/nll/<row>.py`, shared "
        "runner `benchmarks/nll/common.py`, this table by `benchmarks/nll/table.py`).",
        "",
        f"Machine: {first['device']}, {first['threads']} thread per process, at most two "
        f"processes at a time on two cores shared with other jobs; torch "
        f"{first['torch_version']}, aevae {first['aevae_version']}. Wall time for the whole set "
        f"{span / 60:.0f} min, first training start to last evaluation end "
        f"({train_minutes:.0f} process-minutes of training, {eval_minutes:.0f} of "
        f"evaluation).{rerun}",
        "",
        "The published figures come from 3,280 epochs (Burda et al.) or up to 2,000 epochs with "
        "early stopping (Tomczak & Welling) on GPUs; the budget here is a few epochs, so the "
        "absolute numbers are far from them. The rows are meant to be compared with each other "
        "at one budget.",
        "",
        "| model | published NLL | aevae NLL (± s.e.) | budget |",
        "|---|---|---|---|",
    ]
    for name, row in ROWS.items():
        if name not in results:
            lines.append(f"| {row.label} | {row.published or '-'} | not run | - |")
            continue
        result = results[name]
        published = "-" if result["published_nll"] is None else f"{result['published_nll']:.2f}"
        lines.append(f"| {row.label} | {published} | {result['measured_nll']:.2f} ± "
                     f"{result['standard_error']:.2f} | {budget_text(result)} |")
    lines += ["", "Rows and settings:", ""]
    for name, result in results.items():
        row = ROWS[name]
        extra = f" {row.notes[:1].upper()}{row.notes[1:]}." if row.notes else ""
        lines.append(f"- `{name}`: {row_facts(result, directory)}. Reference: "
                     f"{result['published_source']}.{extra}")
    lines += ["", "## Claim checks (same budget, same test images)", "", *claim_table(checks),
              "", "Improvement = mean over test images of log p(x) under the first row minus "
              "under the second (positive: the first row is better). A claim holds when the "
              "first row's measured NLL is lower.", ""]
    lines += supplementary_sections(directory / "supplementary")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="path stem: writes STEM.md and STEM.json")
    args = parser.parse_args(argv)
    results = load_results(args.results_dir)
    if not results:
        raise SystemExit(f"no row results in {args.results_dir}")
    checks = collect_checks(results)
    markdown = render(results, checks, args.results_dir)
    args.output.with_suffix(".md").write_text(markdown)
    summary = {
        "rows": {name: {key: value for key, value in result.items()
                        if key != "per_example_log_likelihood"}
                 for name, result in results.items()},
        "claims": checks,
    }
    args.output.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
