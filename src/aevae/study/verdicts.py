"""From per-seed figures to answers: tables per task, verdicts, the source claims, a summary.

Every figure is aggregated over seeds (mean and Student-t interval); models are compared by
paired per-seed differences. A verdict names the winner (best mean), the runner-up, the margin
with its interval and whether the winner was ahead in every seed; when the interval covers zero
there is "no clear winner".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .statistics import paired_difference, t_interval
from .tasks import TASKS, DataInfo, Metric, ModelInfo, Task, lookup, missing_needs

CLEAR = "clear winner"
LEVEL = "no clear winner"
ONE_SEED = "one seed"
NOT_COMPARED = "not compared"

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
# Differences smaller than this share of the figure's size are ties, whatever the interval:
# models that do not depend on the seed (PCA) give zero-width intervals around any difference.
TOLERANCE = 0.005


def negligible(difference: float, first: float, second: float) -> bool:
    return abs(difference) <= TOLERANCE * max(abs(first), abs(second))


def format_value(value: float | None, digits: int = 3) -> str:
    """``digits`` significant digits, plain notation for everyday magnitudes."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if digits == 0:
        return f"{value:.0f}"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 6 or magnitude < -4:
        return f"{value:.{max(digits - 1, 0)}e}"
    decimals = max(digits - 1 - magnitude, 0)
    return f"{value:.{decimals}f}"


def _first_present(metrics: dict, metric: Metric):
    for path in metric.paths:
        value = lookup(metrics, path)
        if value is not None:
            return value
    return None


def _group_reason(metrics_by_seed: dict, metric: Metric) -> str | None:
    """Why a group produced nothing (its own ``reason``), if it says."""
    for metrics in metrics_by_seed.values():
        for group in metric.groups:
            result = metrics.get(group)
            if isinstance(result, dict) and result.get("available") is False:
                return result.get("reason")
    return None


def metric_rows(metric: Metric, runs: dict[str, dict[int, dict]],
                models: dict[str, ModelInfo], data: DataInfo) -> dict[str, dict]:
    """Per roster entry: the per-seed values of ``metric`` with mean, interval and flags, or
    why the figure does not apply. ``runs`` maps entry key -> seed -> evaluation metrics."""
    rows = {}
    for key, by_seed in runs.items():
        reason = missing_needs(metric.needs, data)
        if reason is None and metric.applies is not None:
            reason = metric.applies(models[key], data)
        if reason is not None:
            rows[key] = {"available": False, "reason": reason}
            continue
        values = {}
        for seed, metrics in by_seed.items():
            value = _first_present(metrics, metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                values[seed] = float(value)
        if not values:
            rows[key] = {"available": False,
                         "reason": _group_reason(by_seed, metric) or "not measured"}
            continue
        interval = t_interval(values.values())
        row = {"available": True, "values": values, **interval.to_dict(), "flags": []}
        if metric.caveat is not None and (caveat := metric.caveat(models[key], data)):
            row["caveat"] = caveat
        if metric.spread is not None:
            spreads = [lookup(by_seed[seed], metric.spread) for seed in values]
            spreads = [value for value in spreads if isinstance(value, (int, float))]
            row["spread"] = sum(spreads) / len(spreads) if spreads else None
        if metric.count is not None:
            counts = [lookup(metrics, metric.count) for metrics in by_seed.values()]
            counts = [count for count in counts if isinstance(count, (int, float))]
            if counts and min(counts) < metric.min_count:
                row["flags"].append(f"small sample: {int(min(counts))} examples behind this "
                                    f"figure (at least {metric.min_count} wanted)")
        rows[key] = row
    return rows


def decide(rows: dict[str, dict], direction: str) -> dict:
    """The verdict on one figure: winner, runner-up, paired margin and its interval."""
    candidates = [key for key, row in rows.items() if row["available"]]
    if len(candidates) < 2:
        return {"status": NOT_COMPARED, "reason": "fewer than two models have this figure"}
    sign = 1.0 if direction == "higher" else -1.0
    order = sorted(candidates, key=lambda key: sign * rows[key]["mean"], reverse=True)
    winner, runner_up = order[0], order[1]
    paired = paired_difference(rows[winner]["values"], rows[runner_up]["values"])
    verdict = {"winner": winner, "runner_up": runner_up, "ranking": order}
    if paired is None:
        return {**verdict, "status": NOT_COMPARED,
                "reason": "the two leaders share no seed"}
    interval, differences = paired
    better = [sign * difference > 0 for difference in differences]
    verdict.update({
        "difference": interval.mean,
        "low": interval.low,
        "high": interval.high,
        "seeds": len(differences),
        "seeds_ahead": sum(better),
        "every_seed": all(better),
        "negligible": negligible(interval.mean, rows[winner]["mean"], rows[runner_up]["mean"]),
    })
    if verdict["negligible"]:
        verdict["status"] = LEVEL
    elif interval.low is None:
        verdict["status"] = ONE_SEED
    elif sign * interval.low > 0 and sign * interval.high > 0:
        verdict["status"] = CLEAR
    else:
        verdict["status"] = LEVEL
    return verdict


def task_results(runs: dict[str, dict[int, dict]], models: dict[str, ModelInfo],
                 data: DataInfo, tasks: dict[str, Task] | None = None) -> list[dict]:
    """Every task: skipped with its reason, or its metrics' rows and verdicts."""
    results = []
    for task in (tasks or TASKS).values():
        entry = {"name": task.name, "title": task.title, "question": task.question,
                 "note": task.note}
        reason = missing_needs(task.needs, data)
        if reason is not None:
            results.append({**entry, "skipped": reason, "metrics": []})
            continue
        metrics = []
        for metric in task.metrics:
            reason = missing_needs(metric.needs, data)
            if reason is not None:
                continue
            rows = metric_rows(metric, runs, models, data)
            metrics.append({
                "name": metric.name,
                "label": metric.label,
                "unit": metric.unit,
                "direction": metric.direction,
                "digits": metric.digits,
                "rows": rows,
                "verdict": decide(rows, metric.direction),
            })
        results.append({**entry, "skipped": None, "metrics": metrics})
    return results


# ----- the source discussion's claims --------------------------------------------------------
@dataclass(frozen=True)
class ClaimPart:
    """``first``'s figure against ``second``'s; relation "better" or "at least as good"."""

    text: str
    first: str
    first_metric: tuple[str, str]  # (task, metric)
    second: str
    second_metric: tuple[str, str]
    relation: str = "better"


@dataclass(frozen=True)
class Claim:
    text: str
    parts: tuple[ClaimPart, ...]


CLAIMS = (
    Claim("The VAE samples better from the prior than the AE.", (
        ClaimPart("VAE prior samples vs AE prior samples (Fréchet distance)",
                  "vae", ("prior_sampling", "prior_frechet_distance"),
                  "ae", ("prior_sampling", "prior_frechet_distance")),
    )),
    Claim("The AE reconstructs at least as well as the VAE.", (
        ClaimPart("AE vs VAE reconstruction MSE", "ae", ("compression", "mse"),
                  "vae", ("compression", "mse"), "at least as good"),
    )),
    Claim("The AE's latent space has holes; the VAE's codes match the prior.", (
        ClaimPart("holes between the codes, VAE vs AE", "vae", ("latent_health", "holes"),
                  "ae", ("latent_health", "holes")),
        ClaimPart("codes vs N(0, I), MMD², VAE (aggregate posterior) vs AE",
                  "vae", ("latent_health", "prior_mmd"), "ae", ("latent_health", "prior_mmd")),
    )),
    Claim("VAE interpolations look more like data.", (
        ClaimPart("midpoint distance to the nearest training example, VAE vs AE",
                  "vae", ("interpolation", "midpoint_distance"),
                  "ae", ("interpolation", "midpoint_distance")),
    )),
    Claim("A plain AE suffices for denoising and for separating classes.", (
        ClaimPart("AE vs VAE: PSNR after Gaussian noise", "ae", ("denoising", "denoise_noise"),
                  "vae", ("denoising", "denoise_noise"), "at least as good"),
        ClaimPart("AE vs VAE: linear probe with 10 labels per class",
                  "ae", ("few_labels", "probe_10"), "vae", ("few_labels", "probe_10"),
                  "at least as good"),
        ClaimPart("AE vs VAE: 5-NN accuracy", "ae", ("few_labels", "knn_all"),
                  "vae", ("few_labels", "knn_all"), "at least as good"),
    )),
    Claim("Moving through the VAE's latent space edits data better than the AE's.", (
        ClaimPart("VAE vs AE: edits that show the target class",
                  "vae", ("manipulation", "edit_success"), "ae", ("manipulation", "edit_success")),
        ClaimPart("VAE vs AE: distance of the edits to the nearest training example",
                  "vae", ("manipulation", "edit_realism"), "ae", ("manipulation", "edit_realism"),
                  "at least as good"),
    )),
    Claim("The VAE's stochastic codes give varied yet faithful variants of one input.", (
        ClaimPart("VAE (z ~ q(z|x)) vs AE (input noise): spread of the variations",
                  "vae", ("variation", "variation_diversity"),
                  "ae", ("variation", "variation_diversity")),
        ClaimPart("VAE vs AE: variations that keep the input's class",
                  "vae", ("variation", "variation_faithfulness"),
                  "ae", ("variation", "variation_faithfulness"), "at least as good"),
    )),
    Claim("A density fitted to the AE's codes closes the sampling gap.", (
        ClaimPart("AE ex-post samples vs VAE prior samples (Fréchet distance)",
                  "ae", ("ex_post_sampling", "ex_post_frechet_distance"),
                  "vae", ("prior_sampling", "prior_frechet_distance"), "at least as good"),
    )),
)


def _metric_result(tasks: list[dict], task_name: str, metric_name: str) -> dict | None:
    for task in tasks:
        if task["name"] == task_name:
            for metric in task["metrics"]:
                if metric["name"] == metric_name:
                    return metric
    return None


def _judge_part(part: ClaimPart, tasks: list[dict]) -> dict:
    result = {"text": part.text, "relation": part.relation, "first": part.first,
              "second": part.second}
    first_metric = _metric_result(tasks, *part.first_metric)
    second_metric = _metric_result(tasks, *part.second_metric)
    if first_metric is None or second_metric is None:
        task = part.first_metric[0] if first_metric is None else part.second_metric[0]
        return {**result, "status": NOT_TESTED, "reason": f"the {task} task did not run"}
    rows = (first_metric["rows"].get(part.first), second_metric["rows"].get(part.second))
    for name, row in zip((part.first, part.second), rows):
        if row is None:
            return {**result, "status": NOT_TESTED, "reason": f"{name} is not in the roster"}
        if not row["available"]:
            return {**result, "status": NOT_TESTED, "reason": f"{name}: {row['reason']}"}
    sign = 1.0 if first_metric["direction"] == "higher" else -1.0
    paired = paired_difference(rows[0]["values"], rows[1]["values"])
    result.update({"first_mean": rows[0]["mean"], "second_mean": rows[1]["mean"],
                   "digits": first_metric["digits"], "label": first_metric["label"]})
    if paired is None:
        return {**result, "status": NOT_TESTED, "reason": "no seed in common"}
    interval, differences = paired
    # Oriented so that positive favours the claim's first model.
    favour = sign * interval.mean
    result.update({"difference": interval.mean, "low": interval.low, "high": interval.high,
                   "seeds": len(differences),
                   "seeds_in_favour": sum(sign * value > 0 for value in differences)})
    if negligible(interval.mean, rows[0]["mean"], rows[1]["mean"]):
        tie = HOLDS if part.relation != "better" else INCONCLUSIVE
        return {**result, "status": tie, "reason": "a tie: the difference is under "
                f"{100 * TOLERANCE:g}% of the figure"}
    if interval.low is None:
        return {**result, "status": INCONCLUSIVE, "reason": "one seed: no interval"}
    lowest, highest = sorted((sign * interval.low, sign * interval.high))
    if part.relation == "better":
        status = HOLDS if lowest > 0 else FAILS if highest < 0 else INCONCLUSIVE
    else:  # at least as good: not significantly worse, and not behind on average
        status = FAILS if highest < 0 else HOLDS if favour >= 0 else INCONCLUSIVE
    return {**result, "status": status}


def judge_claims(tasks: list[dict], claims: tuple[Claim, ...] = CLAIMS) -> list[dict]:
    judged = []
    for claim in claims:
        parts = [_judge_part(part, tasks) for part in claim.parts]
        statuses = {part["status"] for part in parts}
        if FAILS in statuses:
            status = FAILS
        elif statuses == {HOLDS}:
            status = HOLDS
        elif NOT_TESTED in statuses and statuses <= {NOT_TESTED, HOLDS}:
            status = NOT_TESTED
        else:
            status = INCONCLUSIVE
        judged.append({"claim": claim.text, "status": status, "parts": parts})
    return judged


# ----- the answer in words -------------------------------------------------------------------
SUMMARY_ORDER = ("prior_sampling", "ex_post_sampling", "compression", "likelihood", "few_labels",
                 "clustering", "anomaly", "denoising", "interpolation", "manipulation",
                 "variation", "latent_health", "disentanglement")


def summary(tasks: list[dict], labels: dict[str, str]) -> list[str]:
    """One sentence per task, from its headline verdict."""
    by_name = {task["name"]: task for task in tasks}
    sentences = []
    for name in SUMMARY_ORDER:
        task = by_name.get(name)
        if task is None or task["skipped"] or not task["metrics"]:
            continue
        metric = task["metrics"][0]
        verdict = metric["verdict"]
        if verdict["status"] == NOT_COMPARED:
            continue
        purpose = TASKS[name].purpose
        winner, runner_up = verdict["winner"], verdict["runner_up"]
        digits = metric["digits"]
        first = format_value(metric["rows"][winner]["mean"], digits)
        second = format_value(metric["rows"][runner_up]["mean"], digits)
        figure = f"{metric['label']} {first} vs {second}"
        if verdict["status"] == ONE_SEED:
            sentences.append(f"To {purpose}, {labels[winner]} leads {labels[runner_up]} "
                             f"({figure}; one seed, so no interval).")
            continue
        margin = (f"difference {format_value(verdict['difference'], digits)} "
                  f"[{format_value(verdict['low'], digits)}, "
                  f"{format_value(verdict['high'], digits)}]")
        if verdict["status"] == CLEAR:
            seeds = ("ahead in every seed" if verdict["every_seed"] else
                     f"ahead in {verdict['seeds_ahead']} of {verdict['seeds']} seeds")
            sentences.append(f"To {purpose}, prefer {labels[winner]}: {figure} for "
                             f"{labels[runner_up]}, the runner-up ({margin}, {seeds}).")
        elif verdict["negligible"]:
            sentences.append(f"To {purpose}, {labels[winner]} and {labels[runner_up]} are "
                             f"level on this data: {figure}, a difference under "
                             f"{100 * TOLERANCE:g}% of the figure.")
        else:
            sentences.append(f"To {purpose}, {labels[winner]} and {labels[runner_up]} are "
                             f"level on this data: {figure}, {margin} covers zero.")
    return sentences
