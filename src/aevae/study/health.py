"""Health checks on a study's runs, made before any verdict.

A figure means little when the model behind it failed: a VAE whose posterior collapsed puts
every code on the prior (so its codes match the prior perfectly and leave no holes), and a model
that reconstructs every input as the mean image has nothing to interpolate. Such a run is
*excluded*: its figures are left out of its model's means, and a model whose every seed failed
stays in the tables, marked with the reason, and wins no verdict. A run that was
still improving when it hit the epoch cap is *warned* about: its figures count, but more epochs
may change them.

The checks read only what every finished run writes (run.json's history, metrics.json), so a
study's answer can be re-derived from its files (``aevae report``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .tasks import ModelInfo, lookup

EXCLUDED, WARNING, HEALTHY = "excluded", "warning", "healthy"
# Some seeds failed a check: the entry is compared on the others (and the answer says so).
PARTLY_EXCLUDED = "partly excluded"

# Collapse: no latent unit varies with the input (Burda et al.'s activity threshold, 0.01), or
# the rate KL(q(z|x) || p(z)) is practically zero, so the codes carry no information about x.
COLLAPSED_RATE = 0.05  # nats per example
# No better than the mean: the reconstruction error is within 5% of filling every example with
# the training mean.
MEAN_RATIO = 0.95
# Still improving at the cap: the run hit its epoch limit before early stopping ended it, and
# its last epochs still bought this share of its whole validation improvement.
LATE_IMPROVEMENT = 0.01


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # EXCLUDED or WARNING
    message: str  # completes "<model>: ..." e.g. "collapsed: 0 of 8 latent units active"


def check_run(record: dict, metrics: dict, model: ModelInfo) -> list[Finding]:
    """The findings on one finished run (``record``: run.json, ``metrics``: its metrics)."""
    findings = []
    active = lookup(metrics, ("latent", "active_units", "value"))
    dimensions = lookup(metrics, ("latent", "active_units", "n_dimensions"))
    rate = lookup(metrics, ("reconstruction", "rate"))
    if model.has_likelihood and active == 0:
        findings.append(Finding("collapse", EXCLUDED, f"posterior collapse: 0 of {dimensions} "
                                "latent units active (its codes ignore the input)"))
    elif model.has_likelihood and isinstance(rate, (int, float)) and rate < COLLAPSED_RATE:
        findings.append(Finding("collapse", EXCLUDED, f"posterior collapse: KL(q(z|x) || p(z)) "
                                f"is {rate:.3f} nats, so its codes carry almost no information"))
    error = lookup(metrics, ("reconstruction", "mse", "value"))
    baseline = lookup(metrics, ("reconstruction", "mean_baseline_mse"))
    if _finite(error) and _finite(baseline) and baseline > 0 and error >= MEAN_RATIO * baseline:
        findings.append(Finding("no better than the mean", EXCLUDED,
                                f"reconstructs no better than the training mean (MSE "
                                f"{error:.3g} against {baseline:.3g} for the mean)"))
    findings.extend(_training_findings(record))
    return findings


def _training_findings(record: dict) -> list[Finding]:
    best, run = record.get("best_epoch"), record.get("epochs_run")
    if best is None or not run:  # closed form: no epochs
        return []
    cap = record.get("epoch_cap") or (record.get("training") or {}).get("epochs")
    patience = (record.get("training") or {}).get("patience")
    losses = [value for value in (record.get("history") or {}).get("validation_loss", [])
              if _finite(value)]
    if not losses:
        return [Finding("diverged", EXCLUDED, "no finite validation loss was recorded")]
    if best == 1 and run > 1:
        return [Finding("stopped at epoch 1", EXCLUDED, f"its best validation loss was at epoch 1 "
                        f"of {run}: training only made it worse")]
    window = min(patience or 5, len(losses) - 1)
    if cap is not None and run >= cap and best > run - window and window > 0:
        total = losses[0] - min(losses)
        late = losses[-1 - window] - min(losses[-window:])
        if total > 0 and late / total >= LATE_IMPROVEMENT:
            return [Finding("still improving", WARNING,
                            f"still improving at the {cap}-epoch cap (best epoch {best}; its "
                            f"last {window} epochs gave {100 * late / total:.0f}% of its "
                            "validation improvement): more epochs may change its figures")]
    return []


def assess(runs: dict[str, dict[int, tuple[dict, dict]]], models: dict[str, ModelInfo],
           failures: dict[str, dict[int, str]] | None = None) -> dict[str, dict]:
    """Per roster entry: its status (the worst over its seeds) and findings, each with the
    seeds it holds for. ``runs`` maps entry -> seed -> (run record, metrics); ``failures``
    entry -> seed -> error of runs that failed (diverged) and so have no figures."""
    failures = failures or {}
    health = {}
    for key in {*runs, *failures}:
        by_seed = runs.get(key, {})
        checked = [(seed, check_run(record, metrics, models[key]))
                   for seed, (record, metrics) in by_seed.items()]
        checked += [(seed, [Finding("failed", EXCLUDED, f"training failed ({error})")])
                    for seed, error in failures.get(key, {}).items()]
        grouped: dict[tuple[str, str], dict] = {}
        for seed, found in sorted(checked, key=lambda item: item[0]):
            for finding in found:
                entry = grouped.setdefault((finding.check, finding.severity), {
                    "check": finding.check, "severity": finding.severity,
                    "message": finding.message, "seeds": [], "messages": []})
                entry["seeds"].append(seed)
                entry["messages"].append(finding.message)  # its own figures, seed by seed
        findings = sorted(grouped.values(), key=lambda item: item["severity"] != EXCLUDED)
        for finding in findings:
            finding["seed_count"] = len(checked)
        dropped = sorted({seed for finding in findings if finding["severity"] == EXCLUDED
                          for seed in finding["seeds"]})
        if dropped and len(dropped) == len(checked):
            status = EXCLUDED
        elif dropped:
            status = PARTLY_EXCLUDED
        else:
            status = WARNING if findings else HEALTHY
        health[key] = {"status": status, "findings": findings, "excluded_seeds": dropped}
    return dict(sorted(health.items()))


def describe(finding: dict) -> str:
    """"posterior collapse: ... (2 of 3 seeds)", or without seeds when all have it. Where the
    seeds' messages differ (their own figures), the first seed's is quoted as that seed's."""
    seeds, count = finding["seeds"], finding.get("seed_count", len(finding["seeds"]))
    if len(seeds) == count:
        where = "every seed" if count > 1 else ""
    else:
        where = f"{len(seeds)} of {count} seeds"
    message = finding["message"]
    if len(set(finding.get("messages") or [message])) > 1:
        others = ", ".join(str(seed) for seed in seeds[1:])
        message = (f"on seed {seeds[0]} (likewise on seed{'s' * (len(seeds) > 2)} {others}): "
                   f"{message}")
    return message + (f" ({where})" if where else "")


def excluded(health: dict | None, key: str) -> list[dict]:
    """The findings that keep ``key`` from winning: every seed failed (empty when it may win,
    perhaps on fewer seeds: ``dropped_seeds``)."""
    if not health or key not in health or health[key]["status"] != EXCLUDED:
        return []
    return [finding for finding in health[key]["findings"] if finding["severity"] == EXCLUDED]


def dropped_seeds(health: dict | None, key: str) -> list[int]:
    """The seeds of a partly excluded entry whose figures are left out."""
    if not health or key not in health or health[key]["status"] != PARTLY_EXCLUDED:
        return []
    return list(health[key]["excluded_seeds"])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
