"""From per-seed figures to answers: tables per task, verdicts, the source claims, a summary.

Every figure is aggregated over seeds (mean and Student-t interval); models are compared by
paired per-seed differences. A verdict names the winner (best mean), the runner-up, the margin
with its interval and whether the winner was ahead in every seed; when the interval covers zero
there is "no clear winner".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .health import describe, dropped_seeds, excluded
from .statistics import paired_difference, step_deviation, t_interval
from .tasks import (
    TASKS,
    DataInfo,
    Guard,
    Metric,
    ModelInfo,
    Task,
    lookup,
    metric_named,
    missing_needs,
)

CLEAR = "clear winner"
LEVEL = "no clear winner"
ONE_SEED = "one seed"
NOT_COMPARED = "not compared"
UNCONTESTED = "uncontested"  # the only entry that passes the health checks and guards

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
PARTLY = "partly tested"  # the parts that ran hold; others could not run
# The smallest difference that counts, as a share of the figure's size (the "tie"): a model
# is clearly better when the whole interval of its lead lies beyond it, and two models tie when
# the interval lies within it either way. (Models that do not depend on the seed, PCA, give
# zero-width intervals around any difference: a tiny one is a tie, not a win.)
TOLERANCE = 0.005
# A log-density's zero moves with the data's units (x in mm instead of m adds d log 1000 nats),
# so a share of it is no yardstick: its ties are absolute, this many nats per data dimension
# (0.39 nats per MNIST image, under the 0.01 bits/dim papers report to).
NATS_TIE_PER_DIMENSION = 0.0005


def tie_size(first: float, second: float, tie: float | None = None) -> float:
    """The largest difference that is a tie: ``tie`` where the figure has an absolute one (see
    ``metric_tie``), else TOLERANCE of the figure's size."""
    return tie if tie is not None else TOLERANCE * max(abs(first), abs(second))


def metric_tie(metric: Metric, data: DataInfo) -> float | None:
    """The absolute tie of a log-density figure on this data, or None (a relative one)."""
    if not metric.log_density or not data.dimensions:
        return None
    return NATS_TIE_PER_DIMENSION * data.dimensions


def against_the_tie(low: float, high: float, margin: float) -> str:
    """Where the interval [low, high] of a lead (positive: the first is ahead) lies against
    the tie ``margin``: "first" or "second" beyond it at every point, "tie" within it either
    way, else "level" (the one rule of every verdict, bottom-line row and claim)."""
    if -margin <= low and high <= margin:
        return "tie"
    if low > margin:
        return "first"
    if high < -margin:
        return "second"
    return "level"


def tie_text(tie: float | None) -> str:
    """The tie in words: "0.5% of the figure", "0.004 nats (0.0005 per data dimension)"."""
    if tie is None:
        return f"{100 * TOLERANCE:g}% of the figure"
    return f"{tie:.3g} nats ({NATS_TIE_PER_DIMENSION:g} per data dimension)"


def tie_reason(low: float, high: float, digits: int, tie: float | None) -> str:
    """Why two figures tie, in words: their interval and the tie it lies within."""
    return (f"the interval [{format_value(low, digits)}, {format_value(high, digits)}] lies "
            f"within {tie_text(tie)} either way")


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
    """Why a group produced nothing (its own ``reason``), or why it left this figure out
    (an ``unmet`` entry beside it, as a label budget no class can meet), if it says."""
    for metrics in metrics_by_seed.values():
        for group in metric.groups:
            result = metrics.get(group)
            if isinstance(result, dict) and result.get("available") is False:
                return result.get("reason")
        for path in metric.paths:
            unmet = lookup(metrics, (*path[:-2], "unmet", path[-1]))
            if isinstance(unmet, str):
                return unmet
    return None


def metric_rows(metric: Metric, runs: dict[str, dict[int, dict]],
                models: dict[str, ModelInfo], data: DataInfo,
                health: dict | None = None) -> dict[str, dict]:
    """Per roster entry: the per-seed values of ``metric`` with mean, interval and flags, or
    why the figure does not apply. ``runs`` maps entry key -> seed -> evaluation metrics.
    Intervals are clipped to the figure's possible range (``clipped`` says so); an entry the
    health checks exclude carries the reasons in ``excluded``."""
    rows = {}
    for key, by_seed in runs.items():
        reason = missing_needs(metric.needs, data)
        if reason is None and metric.applies is not None:
            reason = metric.applies(models[key], data)
        if reason is not None:
            rows[key] = {"available": False, "reason": reason}
            continue
        values, left_out, broken = {}, {}, {}
        dropped = dropped_seeds(health, key)
        for seed, metrics in by_seed.items():
            value = _first_present(metrics, metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                (left_out if seed in dropped else values)[seed] = float(value)
            elif isinstance(value, (int, float)) and seed not in dropped:
                broken[seed] = float(value)  # inf or NaN: the run broke on this figure
        if not values:
            failed = [describe(finding) for finding in excluded(health, key)]
            reason = (_group_reason(by_seed, metric) or ("not finite" if broken else None)
                      or (failed[0] if failed and not by_seed else None) or "not measured")
            rows[key] = {"available": False, "reason": reason}
            continue
        step = None
        if metric.proportion and (counts := _numbers(
                [by_seed[seed] for seed in values], metric.count)) and min(counts) > 0:
            step = 1.0 / min(counts)  # a share of that many: it moves in these steps
        interval = t_interval(values.values(), floor=step_deviation(step or 0.0))
        row = {"available": True, "values": values, **interval.to_dict(), "flags": []}
        if step is not None:
            row["step"] = step
        if left_out:
            row["left_out"] = left_out
            row["flags"].append(f"seed(s) {', '.join(map(str, sorted(left_out)))} left out: "
                                "the run failed a health check")
        bounds = metric.bounds
        if metric.upper is not None:
            if uppers := _numbers([by_seed[seed] for seed in values], metric.upper):
                top = min(uppers) if bounds[1] is None else min(bounds[1], *uppers)
                bounds = (bounds[0], top)
        _clip(row, bounds)
        if metric.caveat is not None and (caveat := metric.caveat(models[key], data)):
            row["caveat"] = caveat
        if metric.spread is not None:
            spreads = _numbers([by_seed[seed] for seed in values], metric.spread)
            row["spread"] = sum(spreads) / len(spreads) if spreads else None
        if metric.count is not None:
            counts = _numbers(by_seed.values(), metric.count)
            if counts and min(counts) < metric.min_count:
                row["flags"].append(f"small sample: {int(min(counts))} examples behind this "
                                    f"figure (at least {metric.min_count} wanted)")
                row["small_sample"] = int(min(counts))
        if metric.baseline is not None:
            _against_baseline(row, metric, [by_seed[seed] for seed in values])
        if blocked := excluded(health, key):
            row["excluded"] = [describe(finding) for finding in blocked]
        if broken:  # the mean of the other seeds would hide the worst one: it wins nothing
            seeds = ", ".join(f"{value:g} on seed {seed}"
                              for seed, value in sorted(broken.items()))
            row["non_finite"] = broken
            row.setdefault("excluded", []).append(f"{metric.label} is not finite ({seeds})")
        rows[key] = row
    for key, row in rows.items():  # the texts name entries by label
        row["name"] = models[key].name
    return rows


def _numbers(measured, path: tuple[str, ...]) -> list[float]:
    """The numbers at ``path`` in each run's metrics, leaving out runs without one."""
    values = [lookup(metrics, path) for metrics in measured]
    return [value for value in values if isinstance(value, (int, float))]


def _against_baseline(row: dict, metric: Metric, measured: list[dict]) -> None:
    """The trivial method's mean on the same runs; an entry no better than it may not win."""
    trivial = [value for value in _numbers(measured, metric.baseline) if math.isfinite(value)]
    if not trivial:
        return
    row["baseline"] = sum(trivial) / len(trivial)
    sign = 1.0 if metric.direction == "higher" else -1.0
    if sign * row["mean"] <= sign * row["baseline"]:
        row["baseline_failure"] = (
            f"no better than {metric.baseline_label}: {metric.label} "
            f"{format_value(row['mean'], metric.digits)} against "
            f"{format_value(row['baseline'], metric.digits)}")
        row.setdefault("guard_failures", []).append(row["baseline_failure"])


def _clip(row: dict, bounds: tuple[float | None, float | None]) -> None:
    """A t interval knows no range: "0.995 [0.971, 1.02]" for a share. Clip it and say so."""
    if row.get("low") is None:
        return
    lowest, highest = bounds  # an unbiased estimate (MMD²) can fall outside: keep its mean in
    if lowest is not None and row["low"] < lowest:
        row["low"], row["clipped"] = min(lowest, row["mean"]), True
    if highest is not None and row["high"] > highest:
        row["high"], row["clipped"] = max(highest, row["mean"]), True


def eligible(row: dict) -> bool:
    """Whether an entry's figure may win: measured, healthy, and passing the task's guards."""
    return row["available"] and not row.get("excluded") and not row.get("guard_failures")


def decide(rows: dict[str, dict], direction: str, tie: float | None = None,
           own_guard: dict[str, str] | None = None) -> dict:
    """The verdict on one figure: winner, runner-up, paired margin and its interval, among the
    entries that may win (``eligible``); the others are listed with why they may not. ``tie``:
    the figure's absolute tie (``metric_tie``), None for a relative one. ``own_guard``: the
    entries failing the guard the task sets on this very figure, with the guard's text; such an
    entry still competes on the figure, but cannot win it by default."""
    available = [key for key, row in rows.items() if row["available"]]
    candidates = [key for key in available if eligible(rows[key])]
    barred = {key: rows[key].get("excluded", []) + rows[key].get("guard_failures", [])
              for key in available if key not in candidates}
    sign = 1.0 if direction == "higher" else -1.0
    order = sorted(candidates, key=lambda key: sign * rows[key]["mean"], reverse=True)
    if len(candidates) < 2:
        if len(candidates) == 1 and barred and order[0] in (own_guard or {}):
            # The others fail another guard, the only one left falls far behind on this very
            # figure: a trade-off, not a win.
            only = order[0]
            return {"status": NOT_COMPARED, "barred": {**barred, only: [own_guard[only]]},
                    "reason": f"a trade-off: {rows[only].get('name', only)}: {own_guard[only]}, "
                    "and every other model "
                    "fails a health check or another of the task's guards"}
        if len(candidates) == 1 and barred:
            return {"status": UNCONTESTED, "winner": order[0], "ranking": order,
                    "barred": barred,
                    "reason": "the only model that passes the health checks and guards"}
        if not barred:
            reason = ("no model has this figure" if not available else
                      "only one model has this figure")
            causes = {row.get("reason") for row in rows.values() if not row["available"]}
            if not available and len(causes) == 1 and None not in causes:
                reason += f" ({causes.pop()})"  # the same cause for every model: say it
        elif all(rows[key].get("baseline_failure") and not rows[key].get("excluded")
                 for key in barred):
            reason = "no model does better than the trivial method"
        elif any(rows[key].get("excluded") or rows[key].get("baseline_failure")
                 for key in barred):
            reason = "no model passes the health checks and guards"
        else:
            reason = "a trade-off: every model fails one of the task's guards"
        return {"status": NOT_COMPARED, "barred": barred, "reason": reason}
    winner = order[0]
    # The runner-up: the next entry that shares a seed with the winner (entries compared on
    # fewer seeds after a failed health check may share none).
    runner_up = next((key for key in order[1:] if set(rows[key]["values"])
                      & set(rows[winner]["values"])), order[1])
    paired = paired_difference(rows[winner]["values"], rows[runner_up]["values"],
                               step=_step(rows[winner], rows[runner_up]))
    if paired is not None and sign * paired[0].mean < 0:
        # Ranked by means over unequal seeds (one left out by a health check), the leader
        # can trail on the seeds the two share: the pair is judged on those.
        first, second = order.index(winner), order.index(runner_up)
        order[first], order[second] = runner_up, winner
        winner, runner_up = runner_up, winner
        paired = paired_difference(rows[winner]["values"], rows[runner_up]["values"],
                                   step=_step(rows[winner], rows[runner_up]))
    verdict = {"winner": winner, "runner_up": runner_up, "ranking": order, "barred": barred}
    if paired is None:
        return {**verdict, "status": NOT_COMPARED,
                "reason": "the two leaders share no seed"}
    interval, differences = paired
    better = [sign * difference > 0 for difference in differences]
    shared = sorted(set(rows[winner]["values"]) & set(rows[runner_up]["values"]))
    means = (_mean(rows[winner]["values"], shared), _mean(rows[runner_up]["values"], shared))
    verdict.update({
        "difference": interval.mean,
        "low": interval.low,
        "high": interval.high,
        "seeds": len(differences),
        "seeds_ahead": sum(better),
        "every_seed": all(better),
    })
    if len(shared) < max(len(rows[winner]["values"]), len(rows[runner_up]["values"])):
        verdict.update({"shared_seeds": shared, "winner_mean": means[0],
                        "runner_up_mean": means[1]})
    if interval.low is None:
        verdict.update(status=ONE_SEED, negligible=False)
        return verdict
    lowest, highest = sorted((sign * interval.low, sign * interval.high))
    side = against_the_tie(lowest, highest, tie_size(*means, tie))
    verdict["negligible"] = side == "tie"
    verdict["status"] = CLEAR if side == "first" else LEVEL  # the winner is never behind
    # Ahead at every point, but perhaps by less than a tie: not a clear win.
    verdict["short_of_tie"] = side == "level" and lowest > 0
    return verdict


def guard_rows(task: Task, runs: dict[str, dict[int, dict]], models: dict[str, ModelInfo],
               data: DataInfo, health: dict | None,
               own: dict[str, dict] | None = None) -> list[dict]:
    """Each guard of ``task`` with every entry's mean on its figure, and the bar the best
    healthy entry sets. ``own``: the rows of the task's own figures, by name, already made."""
    guards = []
    for guard in task.guards:
        metric = metric_named(*guard.metric)
        if missing_needs(metric.needs, data) is not None:
            continue
        rows = (own or {}).get(metric.name) if guard.metric[0] == task.name else None
        if rows is None:
            rows = metric_rows(metric, runs, models, data, health)
        means = {key: row["mean"] for key, row in rows.items() if row["available"]}
        healthy = [key for key in means if not rows[key].get("excluded")]
        sign = 1.0 if metric.direction == "higher" else -1.0
        best = max(healthy, key=lambda key: sign * means[key]) if healthy else None
        guards.append({
            "metric": list(guard.metric), "label": metric.label, "digits": metric.digits,
            "direction": metric.direction, "why": guard.why, "means": means, "best": best,
            "names": {key: models[key].name for key in means},
            "values": {key: rows[key]["values"] for key in means},
            "ratio": guard.ratio, "difference": guard.difference,
            "bar": guard.bar(means[best], metric.direction) if best is not None else None,
            "failing": sorted(key for key in healthy
                              if not guard.passes(means[key], means[best], metric.direction)),
        })
    return guards


def _guard_text(guard: dict, key: str) -> str:
    best = guard["best"]
    return (f"{guard['why']}: {guard['label']} "
            f"{format_value(guard['means'][key], guard['digits'])} against "
            f"{format_value(guard['means'][best], guard['digits'])} for "
            f"{(guard.get('names') or {}).get(best, best)}")


def task_results(runs: dict[str, dict[int, dict]], models: dict[str, ModelInfo],
                 data: DataInfo, tasks: dict[str, Task] | None = None,
                 health: dict | None = None) -> list[dict]:
    """Every task: skipped with its reason, or its metrics' rows and verdicts. An entry the
    health checks exclude, or that fails one of the task's guards on another figure, wins none
    of the task's figures."""
    results = []
    for task in (tasks or TASKS).values():
        entry = {"name": task.name, "title": task.title, "question": task.question,
                 "note": task.note, "goal": task.goal, "purpose": task.purpose}
        reason = missing_needs(task.needs, data)
        if reason is not None:
            results.append({**entry, "skipped": reason, "metrics": [], "guards": []})
            continue
        measured = [metric for metric in task.metrics
                    if missing_needs(metric.needs, data) is None]
        own = {metric.name: metric_rows(metric, runs, models, data, health)
               for metric in measured}
        guards = guard_rows(task, runs, models, data, health, own)
        metrics = []
        for metric in measured:
            rows = own[metric.name]
            own_guard = {}
            for guard in guards:
                if tuple(guard["metric"]) == (task.name, metric.name):
                    # A figure does not bar its own entries (the figure itself ranks them), but
                    # an entry far behind on it cannot win it by default.
                    own_guard.update({key: _guard_text(guard, key) for key in guard["failing"]})
                    continue
                for key in guard["failing"]:
                    if key in rows and rows[key]["available"]:
                        rows[key].setdefault("guard_failures", []).append(
                            _guard_text(guard, key))
            metrics.append({
                "name": metric.name,
                "label": metric.label,
                "short": metric.short or metric.label,
                "unit": metric.unit,
                "direction": metric.direction,
                "digits": metric.digits,
                "bounds": list(metric.bounds),
                "rows": rows,
                "tie": (tie := metric_tie(metric, data)),
                "verdict": decide(rows, metric.direction, tie, own_guard),
            })
        results.append({**entry, "skipped": None, "metrics": metrics, "guards": guards})
    return results


def compare_pair(task: dict, metric: dict, first: str, second: str) -> dict:
    """``first`` against ``second`` on one figure of a task result, by the verdicts' rules:
    health checks first, then the task's guards judged between the two (the better of the pair
    sets the bar), then the paired difference. ``outcome`` is "first", "second", "level",
    "one seed" or "not compared"; ``by_default`` marks a result decided by a check, not by the
    figure."""
    result = {"first": first, "second": second, "label": metric["label"],
              "digits": metric["digits"], "direction": metric["direction"]}
    rows = (metric["rows"].get(first), metric["rows"].get(second))
    names = {key: (row or {}).get("name", key) for key, row in zip((first, second), rows)}
    for key, row in zip((first, second), rows):
        if row is None:
            return {**result, "outcome": "not compared", "reason": f"{key} is not in the roster"}
        if not row["available"]:
            return {**result, "outcome": "not compared",
                    "reason": f"{names[key]}: {row['reason']}"}
    shared = sorted(set(rows[0]["values"]) & set(rows[1]["values"]))
    if shared:  # the pair is compared on the seeds both have: show the means on those
        result.update({"first_mean": _mean(rows[0]["values"], shared),
                       "second_mean": _mean(rows[1]["values"], shared)})
        if len(shared) < max(len(rows[0]["values"]), len(rows[1]["values"])):
            result["shared_seeds"] = shared
    else:
        result.update({"first_mean": rows[0]["mean"], "second_mean": rows[1]["mean"]})
    sick = [(name, row["excluded"]) for name, row in zip((first, second), rows)
            if row.get("excluded")]
    if len(sick) == 2:
        return {**result, "outcome": "not compared",
                "reason": "; ".join(f"{names[key]}: {reasons[0]}" for key, reasons in sick)}
    if sick:
        key, reasons = sick[0]
        other = second if key == first else first
        if failure := metric["rows"][other].get("baseline_failure"):
            # The other one is no better than the trivial method: it wins nothing by default.
            return {**result, "outcome": "not compared",
                    "reason": f"neither wins: {names[key]}: {reasons[0]}; "
                    f"{names[other]}: {failure}"}
        return {**result, "outcome": "second" if key == first else "first",
                "by_default": "health", "reason": f"{names[key]}: {reasons[0]}"}
    failing = {first: [], second: []}
    own = {first: [], second: []}  # the guard on this very figure (see below)
    for name, row in zip((first, second), rows):
        if row.get("baseline_failure"):
            failing[name].append(row["baseline_failure"])
    for guard in task.get("guards", []):
        is_own = tuple(guard["metric"]) == (task["name"], metric["name"])
        means = guard["means"]
        if first not in means or second not in means:
            continue
        values = guard.get("values") or {}
        shared_seeds = set(values.get(first, {})) & set(values.get(second, {}))
        if shared_seeds and any(set(values[key]) != shared_seeds for key in (first, second)):
            # Judged between the two on the seeds both have, as the figure is.
            means = {key: _mean(values[key], sorted(shared_seeds)) for key in (first, second)}
        sign = 1.0 if guard["direction"] == "higher" else -1.0
        better = max((first, second), key=lambda key: sign * means[key])
        worse = second if better == first else first
        pair_guard = {**guard, "best": better, "means": means}
        spec = Guard(tuple(guard["metric"]), guard["why"], ratio=guard.get("ratio"),
                     difference=guard.get("difference"))
        if not spec.passes(means[worse], means[better], guard["direction"]):
            (own if is_own else failing)[worse].append(_guard_text(pair_guard, worse))
    figure = _paired_outcome(result, rows, metric["direction"], metric.get("tie"))
    figure["figure_outcome"] = figure["outcome"]
    figure["guard_failures"] = {key: texts for key, texts in failing.items() if texts}
    if failing[first] and failing[second]:
        both = f"{names[first]}: {failing[first][0]}; {names[second]}: {failing[second][0]}"
        if all(failing[name][0] == row.get("baseline_failure")
               for name, row in zip((first, second), rows)):
            return {**figure, "outcome": "not compared", "reason": f"neither wins: {both}"}
        return {**figure, "outcome": "level", "by_default": "guard",
                "reason": f"a trade-off: {both}"}
    if failing[first] or failing[second]:
        loser = first if failing[first] else second
        winner = second if loser == first else first
        if own[winner]:
            # The other fails another guard, but this one falls far behind on the figure
            # itself: a trade-off, not a win by default. (Alone, the figure's own guard
            # decides nothing: the paired interval does.)
            return {**figure, "outcome": "level", "by_default": "guard",
                    "reason": f"a trade-off: {names[loser]}: {failing[loser][0]}; "
                    f"{names[winner]}: {own[winner][0]}"}
        note = f"{names[loser]}: {failing[loser][0]}"
        if figure["outcome"] == ("first" if winner == first else "second"):
            # The figure decides; the guard agrees.
            return {**figure, "guard_note": note,
                    "guard_failure": {"model": names[loser], "text": failing[loser][0]}}
        # As in the verdicts: a model that fails a guard cannot win, so the other does.
        return {**figure, "outcome": "first" if winner == first else "second",
                "by_default": "guard", "reason": note}
    return figure


def _step(*rows: dict) -> float:
    """The coarser step of two rows' figures (0 for figures that do not move in steps)."""
    return max(row.get("step") or 0.0 for row in rows)


def _mean(values: dict, seeds: list) -> float:
    return sum(values[seed] for seed in seeds) / len(seeds)


def _paired_outcome(result: dict, rows: tuple[dict, dict], direction: str,
                    tie: float | None) -> dict:
    """The two entries' paired per-seed difference on the figure alone."""
    sign = 1.0 if direction == "higher" else -1.0
    first, second = result["first"], result["second"]
    paired = paired_difference(rows[0]["values"], rows[1]["values"], step=_step(*rows))
    if paired is None:
        return {**result, "outcome": "not compared", "reason": "no seed in common"}
    interval, differences = paired
    result = {**result, "difference": interval.mean, "low": interval.low, "high": interval.high,
              "seeds": len(differences),
              "seeds_in_favour": sum(sign * value > 0 for value in differences),
              "seeds_against": sum(sign * value < 0 for value in differences)}
    margin = tie_size(result["first_mean"], result["second_mean"], tie)
    result["tie_size"] = margin
    if interval.low is None:
        return {**result, "outcome": "one seed", "reason": "one seed: no interval",
                **({"leader": first if sign * interval.mean > 0 else second}
                   if interval.mean != 0 else {})}
    # The claims read the interval's two ends, from the first model's side, against the tie.
    lowest, highest = sorted((sign * interval.low, sign * interval.high))
    result.update(worst_case=lowest, best_case=highest)
    side = against_the_tie(lowest, highest, margin)
    if side == "tie":
        tied = "a tie: " + tie_reason(interval.low, interval.high, result["digits"], tie)
        return {**result, "outcome": "level", "negligible": True, "reason": tied,
                "tie_reason": tied}
    if side in ("first", "second"):
        return {**result, "outcome": side}
    reason = ("the interval covers zero" if lowest <= 0 <= highest else
              f"the interval does not clear a tie ({tie_text(tie)})")
    return {**result, "outcome": "level", "reason": reason,
            "leader": first if sign * interval.mean > 0 else second}


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


def _metric_result(tasks: list[dict], task_name: str, metric_name: str
                   ) -> tuple[dict, dict] | None:
    for task in tasks:
        if task["name"] == task_name:
            for metric in task["metrics"]:
                if metric["name"] == metric_name:
                    return task, metric
    return None


def _judge_part(part: ClaimPart, tasks: list[dict], roles: dict[str, str]) -> dict:
    """One part of a claim, by ``compare_pair``: the verdicts' own health checks and guards."""
    first, second = roles.get(part.first, part.first), roles.get(part.second, part.second)
    result = {"text": part.text, "relation": part.relation, "first": first, "second": second}
    found = (_metric_result(tasks, *part.first_metric),
             _metric_result(tasks, *part.second_metric))
    if None in found:
        task = part.first_metric[0] if found[0] is None else part.second_metric[0]
        return {**result, "status": NOT_TESTED, "reason": f"the {task} task did not run"}
    (first_task, first_metric), (_, second_metric) = found
    if first_metric is second_metric:
        compared = compare_pair(first_task, first_metric, first, second)
    else:  # two figures of the same kind from two tasks (ex-post against prior samples)
        merged = {**first_metric, "rows": {first: first_metric["rows"].get(first),
                                           second: second_metric["rows"].get(second)}}
        merged["rows"] = {key: row for key, row in merged["rows"].items() if row is not None}
        compared = compare_pair({"name": "", "guards": []}, merged, first, second)
        # The pair's figures come from two tasks, so their guards cannot be judged between
        # them: the first model's failures of its own task's guards count instead.
        if own := (merged["rows"].get(first) or {}).get("guard_failures"):
            compared["guard_failures"] = {**compared.get("guard_failures", {}), first: own}
    result.update({key: compared[key] for key in (
        "first_mean", "second_mean", "digits", "label", "difference", "low", "high", "seeds",
        "seeds_in_favour") if key in compared})
    outcome = compared["outcome"]
    reason = compared.get("reason")
    if compared.get("by_default") == "health":  # a failed run says nothing about the claim
        return {**result, "status": NOT_TESTED, "reason": reason}
    if compared.get("seeds") == 1:  # no interval: not even a tie or a guard settles it
        return {**result, "status": INCONCLUSIVE, "reason": "one seed in common: no interval"}
    # A guard counts against the model claimed to be better (its lead on the figure means
    # nothing when it fails the guard), never for it: the other's weakness on another figure
    # does not make it better on this one. That holds when both fail (no better than the
    # trivial method, the first model is not "better" or "as good" in any useful sense).
    failures = compared.get("guard_failures", {})
    name = (first_metric["rows"].get(first) or {}).get("name", first)  # for the reasons
    if failures.get(first):
        return {**result, "status": FAILS, "reason": f"{name}: {failures[first][0]}"}
    if outcome == "not compared":
        return {**result, "status": NOT_TESTED, "reason": reason}
    if compared.get("worst_case") is None:  # no interval
        return {**result, "status": INCONCLUSIVE, "reason": None if failures else reason}
    return {**result, **_against_the_tie(part.relation, name, compared)}


def _against_the_tie(relation: str, first: str, compared: dict) -> dict:
    """A claim part's status from the interval of the first model's lead [worst, best] and
    the tie m. "Better" is a minimum-effect test: it holds when the whole interval lies beyond
    m, fails when it lies below m (the first is shown not to be better by more than a tie,
    ties included), and is inconclusive otherwise. "At least as good" is a non-inferiority
    test: it holds when the interval lies above -m, fails when it lies below -m."""
    worst, best, margin = compared["worst_case"], compared["best_case"], compared["tie_size"]
    digits = compared["digits"]
    tie = format_value(margin, digits)
    if relation == "better":
        if worst > margin:
            return {"status": HOLDS}
        if best <= margin:
            if worst >= -margin:
                reason = compared.get("tie_reason") or (
                    f"a lead of at most a tie ({tie}): the interval rules out more")
            else:
                reason = None if best < 0 else (
                    f"the interval rules out a lead larger than a tie ({tie})")
            return {"status": FAILS, **({"reason": reason} if reason else {})}
        return {"status": INCONCLUSIVE,
                **({"reason": f"the interval does not clear a tie ({tie})"} if worst > 0
                   else {})}
    if worst >= -margin:
        return {"status": HOLDS, **({} if worst > 0 else {
            "reason": f"no worse: the interval rules out a deficit larger than a tie ({tie})"})}
    if best < -margin:
        return {"status": FAILS}
    return {"status": INCONCLUSIVE, "reason": (
        f"the interval allows {first} to be worse by {format_value(-worst, digits)}, more than "
        f"a tie ({tie})")}


def judge_claims(tasks: list[dict], claims: tuple[Claim, ...] = CLAIMS,
                 roles: dict[str, str] | None = None) -> list[dict]:
    """Each claim with its parts judged. ``roles`` maps the claims' model names ("ae", "vae")
    to roster entries (a sweep's "ae:latent_dim=2"); by default they are the entries' keys.
    A claim holds when every part holds, fails when any part fails, and is "partly tested"
    when the parts that ran hold and others could not run."""
    roles = roles or {}
    judged = []
    for claim in claims:
        parts = [_judge_part(part, tasks, roles) for part in claim.parts]
        statuses = [part["status"] for part in parts]
        tested = [status for status in statuses if status != NOT_TESTED]
        if FAILS in statuses:
            status = FAILS
        elif not tested:
            status = NOT_TESTED
        elif set(tested) == {HOLDS}:
            status = HOLDS if len(tested) == len(parts) else PARTLY
        else:
            status = INCONCLUSIVE
        judged.append({"claim": claim.text, "status": status, "parts": parts,
                       "parts_tested": len(tested)})
    return judged


# ----- the answer in words -------------------------------------------------------------------
def health_sentences(health: dict | None, labels: dict[str, str]) -> list[str]:
    """One sentence per entry with a health finding: excluded ones first."""
    from .health import EXCLUDED, PARTLY_EXCLUDED

    sentences = []
    for key, record in (health or {}).items():
        findings = record["findings"]
        if not findings:
            continue
        text = "; ".join(describe(finding) for finding in findings)
        if record["status"] == EXCLUDED:
            sentences.append(f"{labels.get(key, key)} is not compared: {text}. Its figures are "
                             "shown, marked, and win nothing.")
        elif record["status"] == PARTLY_EXCLUDED:
            seeds = ", ".join(map(str, record["excluded_seeds"]))
            sentences.append(f"{labels.get(key, key)} is compared on its other seeds: {text}. "
                             f"Seed(s) {seeds} are left out of its figures, and the pairs "
                             "it is compared with use the same seeds.")
        else:
            sentences.append(f"{labels.get(key, key)}: {text}.")
    return sorted(sentences, key=lambda sentence: ("is not compared" not in sentence,
                                                   "other seeds" not in sentence))


def _passed_over(metric: dict, verdict: dict, labels: dict[str, str]) -> str:
    """Barred entries whose figure beats the winner's: said, so a reader knows why."""
    winner = verdict.get("winner")
    if winner is None or not verdict.get("barred"):
        return ""
    sign = 1.0 if metric["direction"] == "higher" else -1.0
    best = metric["rows"][winner]["mean"]
    ahead = []
    for key, reasons in verdict.get("barred", {}).items():
        row = metric["rows"][key]
        if sign * row["mean"] > sign * best:
            why = ("health check failed" if row.get("excluded") and not row.get("guard_failures")
                   and not row.get("non_finite") else reasons[-1] if row.get("non_finite")
                   else reasons[0])
            ahead.append(f"{labels.get(key, key)} "
                         f"({format_value(row['mean'], metric['digits'])}: {why})")
    if not ahead:
        return ""
    return " Ahead on the figure but not compared: " + "; ".join(ahead) + "."


def verdict_sentence(task: dict, labels: dict[str, str]) -> str:
    """The task's verdict in words, from its primary figure."""
    purpose = task.get("purpose") or TASKS[task["name"]].purpose
    metric = task["metrics"][0]
    verdict = metric["verdict"]
    digits = metric["digits"]
    if verdict["status"] == NOT_COMPARED:
        barred = verdict.get("barred") or {}
        which = "; ".join(f"{labels.get(key, key)}: {reasons[0]}"
                          for key, reasons in barred.items() if reasons)
        return f"To {purpose}: no verdict, {verdict['reason']}" + (
            f" ({which})." if which else ".")
    winner = verdict["winner"]
    first = format_value(verdict.get("winner_mean", metric["rows"][winner]["mean"]), digits)
    if verdict["status"] == UNCONTESTED:
        barred = verdict["barred"]
        sick = [labels.get(key, key) for key in barred if metric["rows"][key].get("excluded")]
        guarded = [labels.get(key, key) for key in barred
                   if not metric["rows"][key].get("excluded")]
        why = "; ".join(part for part in (
            f"{', '.join(sick)} failed a health check" if sick else "",
            f"{', '.join(guarded)} {'fails' if len(guarded) == 1 else 'fail'} one of the "
            "task's guards (see the task's table)"
            if guarded else "") if part)
        return (f"To {purpose}, {labels[winner]} by default ({metric['label']} {first}): the "
                f"only model that passes the health checks and guards ({why}).")
    runner_up = verdict["runner_up"]
    second = format_value(verdict.get("runner_up_mean", metric["rows"][runner_up]["mean"]),
                          digits)
    figure = f"{metric['label']} {first} vs {second}"
    if shared := verdict.get("shared_seeds"):
        figure += (f" on the {len(shared)} seeds both have" if len(shared) > 1 else
                   f" on seed {shared[0]}, the only one both have")
    after = _passed_over(metric, verdict, labels)
    if verdict["status"] == ONE_SEED:
        why = "so no interval" if shared else "one seed, so no interval"
        if verdict["difference"] == 0:  # the same figure: no lead to speak of
            return (f"To {purpose}, {labels[winner]} and {labels[runner_up]} are equal on the "
                    f"one seed ({figure}; {why}).{after}")
        return f"To {purpose}, {labels[winner]} leads {labels[runner_up]} ({figure}; {why}).{after}"
    margin = (f"difference {format_value(verdict['difference'], digits)} "
              f"[{format_value(verdict['low'], digits)}, "
              f"{format_value(verdict['high'], digits)}]")
    if verdict["status"] == CLEAR:
        seeds = ("ahead in every seed" if verdict["every_seed"] else
                 f"ahead in {verdict['seeds_ahead']} of {verdict['seeds']} seeds")
        return (f"To {purpose}, prefer {labels[winner]}: {figure} for {labels[runner_up]}, the "
                f"runner-up ({margin}, {seeds}).{after}")
    if verdict["negligible"]:
        return (f"To {purpose}, {labels[winner]} and {labels[runner_up]} tie on this data: "
                f"{figure}, " + tie_reason(verdict["low"], verdict["high"], digits,
                                           metric.get("tie")) + f".{after}")
    if verdict.get("short_of_tie"):
        return (f"To {purpose}, {labels[winner]} leads {labels[runner_up]} by less than this "
                f"data can call clear: {figure}, {margin} does not clear a tie "
                f"({tie_text(metric.get('tie'))}).{after}")
    return (f"To {purpose}, {labels[winner]} and {labels[runner_up]} are level on this data: "
            f"{figure}, {margin} covers zero.{after}")


def summary(tasks: list[dict], labels: dict[str, str]) -> list[str]:
    """One sentence per task that ran, in the registry's order, from its primary verdict."""
    return [verdict_sentence(task, labels) for task in tasks
            if not task.get("skipped") and task["metrics"]]
