"""The study's statistics and verdicts on constructed result tables: intervals against scipy,
clear winners, ties, disagreeing seeds, the claims and the summary sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from aevae.study.roster import RosterEntry, parse_roster
from aevae.study.statistics import paired_difference, t_interval
from aevae.study.tasks import TASKS, DataInfo, Metric, ModelInfo, Task
from aevae.study.verdicts import (
    CLEAR,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    LEVEL,
    NOT_TESTED,
    ONE_SEED,
    compare_pair,
    decide,
    format_value,
    judge_claims,
    metric_rows,
    summary,
    task_results,
)

DATA = DataInfo(kind="images", values="unit-interval", labels=True, likelihood="bernoulli")


def model(key, has_likelihood=True, likelihood="bernoulli"):
    return ModelInfo(key=key, model=key, has_likelihood=has_likelihood, likelihood=likelihood,
                     trains_prior=has_likelihood)


# ----- intervals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[1.0, 2.0], [0.3, 0.1, 0.7], [5.0, 5.5, 4.0, 6.2, 5.1]])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(values, confidence):
    interval = t_interval(values, confidence)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)
    assert interval.count == len(values)
    assert interval.standard_deviation == pytest.approx(np.std(values, ddof=1))


def test_t_interval_of_one_value_has_no_interval_and_skips_missing():
    interval = t_interval([2.5, None, math.nan])
    assert (interval.mean, interval.low, interval.high, interval.count) == (2.5, None, None, 1)
    assert interval.covers(100.0)
    with pytest.raises(ValueError, match="at least one finite"):
        t_interval([None, math.inf])


def test_paired_difference_uses_shared_seeds_only():
    first = {0: 1.0, 1: 2.0, 2: 4.0, 3: 9.0}
    second = {0: 0.5, 1: 1.0, 2: 3.0}
    interval, differences = paired_difference(first, second)
    assert differences == [0.5, 1.0, 1.0]
    expected = stats.t.interval(0.95, 2, loc=np.mean(differences), scale=stats.sem(differences))
    assert (interval.low, interval.high) == pytest.approx(expected)
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


# ----- verdicts ----------------------------------------------------------------------------------
def rows_of(values: dict[str, list[float]]) -> dict:
    runs = {key: {seed: {"g": {"v": value}} for seed, value in enumerate(seeds)}
            for key, seeds in values.items()}
    metric = Metric("v", "value", (("g", "v"),), "higher")
    return metric_rows(metric, runs, {key: model(key) for key in values}, DATA)


def test_differences_that_cancel_have_a_mean_of_exactly_zero():
    # A probe's accuracies (multiples of 1/360) whose differences sum to 3.7e-17 in floating
    # point, not to zero.
    first = {0: 313 / 360, 1: 319 / 360, 2: 298 / 360}
    second = {0: 312 / 360, 1: 311 / 360, 2: 307 / 360}
    assert sum(first[seed] - second[seed] for seed in first) != 0.0
    interval, _ = paired_difference(first, second)
    assert interval.mean == 0.0 and interval.low == -interval.high
    assert paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0 - 1e-9})[0].mean != 0.0


def test_clear_winner_in_every_seed():
    rows = rows_of({"a": [0.90, 0.91, 0.92], "b": [0.80, 0.82, 0.81], "c": [0.5, 0.5, 0.6]})
    verdict = decide(rows, "higher")
    assert verdict["status"] == CLEAR
    assert (verdict["winner"], verdict["runner_up"]) == ("a", "b")
    assert verdict["every_seed"] and verdict["seeds_ahead"] == 3
    assert verdict["difference"] == pytest.approx(0.1)
    assert 0 < verdict["low"] < verdict["difference"] < verdict["high"]
    assert verdict["ranking"] == ["a", "b", "c"]


def test_lower_is_better_picks_the_smallest():
    rows = rows_of({"a": [10.0, 11.0, 10.5], "b": [20.0, 21.0, 19.0]})
    verdict = decide(rows, "lower")
    assert verdict["winner"] == "a" and verdict["status"] == CLEAR
    assert verdict["high"] < 0  # a - b, negative: a is lower


def test_tie_is_no_clear_winner():
    rows = rows_of({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]})
    verdict = decide(rows, "higher")
    assert verdict["status"] == LEVEL and verdict["seeds_ahead"] == 0


def test_disagreeing_seeds_are_no_clear_winner():
    # a wins two seeds by a little and loses one by a lot less than its mean lead... but the
    # paired interval still covers zero.
    rows = rows_of({"a": [0.9, 0.7, 0.95], "b": [0.8, 0.8, 0.8]})
    verdict = decide(rows, "higher")
    assert verdict["winner"] == "a"
    assert verdict["status"] == LEVEL
    assert not verdict["every_seed"] and verdict["seeds_ahead"] == 2
    assert verdict["low"] < 0 < verdict["high"]


def test_a_negligible_difference_is_a_tie_even_with_a_zero_width_interval():
    # Seed-independent models (PCA) repeat the same figure: any difference has zero spread.
    rows = rows_of({"pca": [0.9981, 0.9981, 0.9981], "ppca": [0.9980, 0.9980, 0.9980]})
    verdict = decide(rows, "higher")
    assert verdict["low"] == verdict["high"] == pytest.approx(1e-4)
    assert verdict["negligible"] and verdict["status"] == LEVEL
    sentences = summary([{"name": "anomaly", "skipped": None, "metrics": [
        {"label": "AUROC", "digits": 3, "rows": rows, "verdict": verdict}]}],
        {"pca": "pca", "ppca": "ppca"})
    assert sentences == ["To detect anomalies, pca and ppca tie on this data: AUROC 0.998 vs "
                         "0.998, the interval [1.00e-04, 1.00e-04] lies within 0.5% of the figure "
                         "either way."]


def test_a_small_mean_difference_with_a_wide_interval_is_no_tie():
    # Level on average, but the seeds disagree by far more than a tie: nothing is shown.
    rows = rows_of({"a": [0.90, 0.80, 0.851], "b": [0.80, 0.90, 0.85]})
    verdict = decide(rows, "higher")
    assert abs(verdict["difference"]) < 0.005 * 0.85 and verdict["low"] < -0.1
    assert not verdict["negligible"] and verdict["status"] == LEVEL
    sentence = summary([{"name": "anomaly", "skipped": None, "metrics": [
        {"label": "AUROC", "digits": 3, "rows": rows, "verdict": verdict}]}],
        {"a": "a", "b": "b"})[0]
    assert sentence.endswith("covers zero.") and "tie" not in sentence
    # One seed shows no tie either.
    assert not decide(rows_of({"a": [0.85], "b": [0.8501]}), "higher")["negligible"]


def test_one_seed_has_no_interval():
    verdict = decide(rows_of({"a": [0.9], "b": [0.8]}), "higher")
    assert verdict["status"] == ONE_SEED and verdict["low"] is None


def test_figures_that_do_not_apply_say_why():
    runs = {"ae": {0: {"likelihood": {"available": False, "reason": "deterministic"}}},
            "vae": {0: {"likelihood": {"available": True, "log_likelihood": -90.0,
                                       "log_likelihood_standard_error": 0.5, "examples": 50}}},
            "ppca": {0: {"likelihood": {"available": True, "log_likelihood": -80.0}}}}
    metric = next(metric for metric in _task("likelihood").metrics
                  if metric.name == "log_likelihood")
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae"),
              "ppca": model("ppca", likelihood="gaussian")}
    rows = metric_rows(metric, runs, models, DATA)
    assert rows["ae"] == {"available": False, "name": "ae",
                          "reason": "no likelihood: a deterministic model defines no p(x)"}
    assert not rows["ppca"]["available"] and "not comparable" in rows["ppca"]["reason"]
    assert rows["vae"]["spread"] == 0.5
    assert rows["vae"]["flags"] and "small sample: 50" in rows["vae"]["flags"][0]
    assert decide(rows, "higher")["status"] == "not compared"
    gaussian = DataInfo(kind="tabular", values="real", labels=False,
                        likelihood="gaussian-learned")
    assert metric_rows(metric, runs, models, gaussian)["ppca"]["available"]


def _task(name):
    from aevae.study.tasks import TASKS

    return TASKS[name]


def test_tasks_that_need_labels_are_skipped_with_the_reason():
    unlabelled = DataInfo(kind="tabular", values="real", labels=False, likelihood="gaussian")
    results = task_results({"a": {0: {}}}, {"a": model("a")}, unlabelled)
    skipped = {task["name"]: task["skipped"] for task in results}
    assert skipped["few_labels"] == "the data has no labels"
    assert skipped["denoising"].startswith("its corruptions and PSNR")
    assert skipped["compression"] is None
    compression = next(task for task in results if task["name"] == "compression")
    assert [metric["name"] for metric in compression["metrics"]] == ["mse", "reconstruction_nll"]


def test_a_new_task_is_one_registry_entry():
    custom = Task("custom", "Custom", "Is a bigger number better?", "test the registry",
                  (Metric("number", "a number", (("custom_group", "number"),), "higher"),))
    runs = {key: {seed: {"custom_group": {"number": value + seed}} for seed in range(3)}
            for key, value in (("a", 10.0), ("b", 1.0))}
    results = task_results(runs, {"a": model("a"), "b": model("b")}, DATA, {"custom": custom})
    verdict = results[0]["metrics"][0]["verdict"]
    assert verdict["winner"] == "a" and verdict["status"] == CLEAR


@pytest.mark.parametrize("units", [0.0, -1e5], ids=["as-given", "other-units"])
def test_a_log_density_ties_in_nats_per_dimension_whatever_the_data_units(units):
    """log p(x)'s zero moves with the data's units (every model's figure shifts by d log c), so
    a share of the figure is no yardstick: 0.3 nats on 8 dimensions is a real lead and 0.002
    a tie, in any units (a 0.5% tie would call both ties at -100,000)."""
    data = DataInfo(kind="tabular", values="real", labels=False, likelihood="gaussian",
                    dimensions=8)
    models = {key: model(key, likelihood="gaussian") for key in ("a", "b", "c")}

    def verdict(gap):
        runs = {key: {seed: {"likelihood": {"log_likelihood": units - 10.0 - lag + 0.01 * seed,
                                            "examples": 1000}} for seed in range(3)}
                for key, lag in (("a", 0.0), ("b", gap), ("c", 5.0))}
        likelihood = next(task for task in task_results(runs, models, data)
                          if task["name"] == "likelihood")
        metric = likelihood["metrics"][0]
        assert metric["tie"] == pytest.approx(0.004)
        return metric["verdict"], summary([likelihood], {key: key for key in models})[0]

    lead, _ = verdict(0.3)
    assert lead["status"] == CLEAR and lead["winner"] == "a"
    tie, sentence = verdict(0.002)
    assert tie["negligible"] and tie["status"] == LEVEL
    assert sentence.endswith("lies within 0.004 nats (0.0005 per data dimension) either "
                             "way.")


# ----- claims and summary ------------------------------------------------------------------------
def study_tasks(ae_fd, vae_fd, ae_mse, vae_mse):
    runs = {
        "ae": {seed: {"generation": {"prior": {"frechet_distance": {"value": value}},
                                     "reference_images": 1000},
                      "reconstruction": {"mse": {"value": mse}}}
               for seed, (value, mse) in enumerate(zip(ae_fd, ae_mse))},
        "vae": {seed: {"generation": {"prior": {"frechet_distance": {"value": value}},
                                      "reference_images": 1000},
                       "reconstruction": {"mse": {"value": mse}}}
                for seed, (value, mse) in enumerate(zip(vae_fd, vae_mse))},
    }
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    return task_results(runs, models, DATA)


def test_claims_hold_fail_or_stay_inconclusive():
    tasks = study_tasks(ae_fd=[400, 420, 410], vae_fd=[30, 32, 31], ae_mse=[0.010, 0.011, 0.012],
                        vae_mse=[0.020, 0.021, 0.019])
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    sampling = claims["The VAE samples better from the prior than the AE."]
    assert sampling["status"] == HOLDS
    assert sampling["parts"][0]["seeds_in_favour"] == 3
    assert claims["The AE reconstructs at least as well as the VAE."]["status"] == HOLDS
    # Tasks that did not run leave their claims untested, with the reason.
    holes = claims["The AE's latent space has holes; the VAE's codes match the prior."]
    assert holes["status"] == NOT_TESTED
    assert holes["parts"][0]["reason"] == "vae: not measured"

    reversed_tasks = study_tasks(ae_fd=[30, 32, 31], vae_fd=[400, 420, 410],
                                 ae_mse=[0.020, 0.021, 0.019], vae_mse=[0.010, 0.011, 0.012])
    claims = {claim["claim"]: claim for claim in judge_claims(reversed_tasks)}
    assert claims["The VAE samples better from the prior than the AE."]["status"] == FAILS
    assert claims["The AE reconstructs at least as well as the VAE."]["status"] == FAILS

    noisy = study_tasks(ae_fd=[100, 50, 80], vae_fd=[60, 90, 70], ae_mse=[0.02, 0.01, 0.016],
                        vae_mse=[0.011, 0.02, 0.0125])
    claims = {claim["claim"]: claim for claim in judge_claims(noisy)}
    assert claims["The VAE samples better from the prior than the AE."]["status"] == INCONCLUSIVE
    # Behind on average but not significantly: "at least as good" is inconclusive.
    assert claims["The AE reconstructs at least as well as the VAE."]["status"] == INCONCLUSIVE
    tied = study_tasks(ae_fd=[100, 101, 102], vae_fd=[100.1, 101.1, 102.1],
                       ae_mse=[0.0100, 0.0110, 0.0120], vae_mse=[0.01001, 0.01101, 0.01201])
    claims = {claim["claim"]: claim for claim in judge_claims(tied)}
    # Shown to tie: "at least as good" holds, "better" does not.
    assert claims["The AE reconstructs at least as well as the VAE."]["status"] == HOLDS
    sampling = claims["The VAE samples better from the prior than the AE."]
    assert sampling["status"] == FAILS
    assert sampling["parts"][0]["reason"].startswith("a tie: the interval [")


def test_summary_sentences_follow_the_verdicts():
    tasks = study_tasks(ae_fd=[400, 420, 410], vae_fd=[30, 32, 31], ae_mse=[0.02, 0.01, 0.013],
                        vae_mse=[0.011, 0.02, 0.0125])
    sentences = summary(tasks, {"ae": "AE", "vae": "VAE"})
    sampling = next(sentence for sentence in sentences if "sampling the prior" in sentence)
    assert sampling.startswith("To generate new examples by sampling the prior, prefer VAE:")
    assert "ahead in every seed" in sampling
    compression = next(sentence for sentence in sentences if "compress" in sentence)
    assert "are level on this data" in compression and "covers zero" in compression


def test_format_value():
    assert format_value(0.024551, 4) == "0.02455"
    assert format_value(433.3, 4) == "433.3"
    assert format_value(-27.2, 3) == "-27.2"
    assert format_value(8, 0) == "8"
    assert format_value(None) == "n/a" and format_value(math.nan) == "n/a"
    assert format_value(1.5e-7, 3) == "1.50e-07"


# ----- roster ----------------------------------------------------------------------------
def test_roster_parsing():
    entries = parse_roster("vae, beta_vae:beta=2,iwae:importance_samples=5,ae:hidden=[64,32]")
    assert [entry.model for entry in entries] == ["vae", "beta_vae", "iwae", "ae"]
    assert entries[1].options == {"beta": 2} and entries[3].options == {"hidden": [64, 32]}
    assert entries[1].key == "beta_vae:beta=2" and entries[1].label == "beta_vae (beta=2)"
    assert RosterEntry("ae", {"hidden": [64, 32]}).label == "ae (hidden=64x32)"
    with pytest.raises(ValueError, match="unknown model 'nonsense'"):
        parse_roster("vae,nonsense")
    with pytest.raises(ValueError, match="expected name:key=value"):
        parse_roster("vae:beta")
    with pytest.raises(ValueError, match="appears twice"):
        parse_roster("vae,vae")
    with pytest.raises(ValueError, match="empty"):
        parse_roster(" , ")


# ----- health checks, guards, the bottom line ---------------------------------------------------
def _set(metrics: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        metrics = metrics.setdefault(key, {})
    metrics[path[-1]] = value


def full_metrics(overrides: dict[tuple[str, str], float] | None = None, seed: int = 0) -> dict:
    """An evaluation result with every registered figure (and its count) present: 0.5 plus a
    seed jitter, or the value ``overrides`` gives per (task, metric)."""
    from aevae.study.tasks import TASKS

    metrics: dict = {}
    for task in TASKS.values():
        for metric in task.metrics:
            value = (overrides or {}).get((task.name, metric.name), 0.5)
            _set(metrics, metric.paths[0], value + 0.001 * seed)
            if metric.count is not None:
                _set(metrics, metric.count, 5000)
    _set(metrics, ("latent", "active_units", "n_dimensions"), 8)
    _set(metrics, ("latent", "active_units", "value"), 8)
    _set(metrics, ("reconstruction", "mean_baseline_mse"), 10.0)
    _set(metrics, ("reconstruction", "rate"), 20.0)
    return metrics


def healthy_record(epochs_run=30, best=25, cap=60, patience=8):
    losses = [100.0 - epoch for epoch in range(1, best + 1)] + [100.0 - best] * (epochs_run - best)
    return {"epochs_run": epochs_run, "best_epoch": best,
            "training": {"epochs": cap, "patience": patience},
            "history": {"validation_loss": losses}}


FACTORS = DataInfo(kind="images", values="unit-interval", labels=True, likelihood="bernoulli",
                   factors=True)


def studied(figures: dict[str, dict[tuple[str, str], float]], records=None, seeds=3):
    from aevae.study.health import assess

    runs = {key: {seed: full_metrics(values, seed) for seed in range(seeds)}
            for key, values in figures.items()}
    models = {key: model(key) for key in figures}
    records = records or {}
    for key, metrics_by_seed in runs.items():  # collapsed entries: no active unit
        if figures[key].get(("latent", "collapsed")):
            for metrics in metrics_by_seed.values():
                metrics["latent"]["active_units"]["value"] = 0
    health = assess({key: {seed: (records.get(key, healthy_record()), metrics)
                           for seed, metrics in by_seed.items()}
                     for key, by_seed in runs.items()}, models)
    return task_results(runs, models, FACTORS, health=health), health


def _verdict(tasks, task, metric=None):
    entry = next(item for item in tasks if item["name"] == task)
    found = entry["metrics"][0] if metric is None else next(
        item for item in entry["metrics"] if item["name"] == metric)
    return found["verdict"], found


def test_a_collapsed_model_with_the_best_holes_score_wins_nothing():
    tasks, health = studied({
        "ae": {("latent_health", "holes"): 0.45},
        "vae": {("latent_health", "holes"): 0.40},
        "beta_vae": {("latent_health", "holes"): 0.05, ("latent_health", "prior_mmd"): 0.0,
                     ("interpolation", "midpoint_distance"): 0.1, ("latent", "collapsed"): 1},
    })
    assert health["beta_vae"]["status"] == "excluded"
    assert "0 of 8 latent units active" in health["beta_vae"]["findings"][0]["message"]
    verdict, metric = _verdict(tasks, "latent_health")
    assert verdict["winner"] == "vae" and "beta_vae" in verdict["barred"]
    assert metric["rows"]["beta_vae"]["excluded"]
    for name in ("prior_mmd",):
        assert _verdict(tasks, "latent_health", name)[0]["winner"] != "beta_vae"
    assert _verdict(tasks, "interpolation")[0]["winner"] != "beta_vae"
    # No figure of any task goes to it, and the sentences say why it was passed over.
    assert all(metric["verdict"].get("winner") != "beta_vae"
               for task in tasks for metric in task["metrics"])
    sentence = next(line for line in summary(tasks, {"ae": "ae", "vae": "vae",
                                                     "beta_vae": "beta_vae"})
                    if "latent space" in line)
    assert "not compared: beta_vae (0.0510: health check failed)" in sentence


def test_a_run_still_improving_at_the_cap_is_flagged_and_a_converged_one_is_not():
    from aevae.study.health import WARNING, check_run

    rising = {"epochs_run": 60, "best_epoch": 60, "training": {"epochs": 60, "patience": 8},
              "history": {"validation_loss": [100.0 - epoch for epoch in range(60)]}}
    findings = check_run(rising, full_metrics(), model("ae"))
    assert [finding.check for finding in findings] == ["still improving"]
    assert findings[0].severity == WARNING and "60-epoch cap" in findings[0].message
    # Hit the cap, but flat for its last epochs: not flagged.
    flat = {**rising, "history": {"validation_loss": [100.0 - min(epoch, 30) - 1e-6 * epoch
                                                      for epoch in range(60)]}}
    assert check_run(flat, full_metrics(), model("ae")) == []
    assert check_run(healthy_record(), full_metrics(), model("ae")) == []
    worse = {"epochs_run": 9, "best_epoch": 1, "training": {"epochs": 60, "patience": 8},
             "history": {"validation_loss": [1.0 + epoch for epoch in range(9)]}}
    assert check_run(worse, full_metrics(), model("ae"))[0].check == "stopped at epoch 1"


def test_reconstructing_the_mean_and_a_failed_run_are_excluded():
    from aevae.study.health import EXCLUDED, assess, check_run

    metrics = full_metrics({("compression", "mse"): 0.99})
    metrics["reconstruction"]["mean_baseline_mse"] = 1.0
    findings = check_run(healthy_record(), metrics, model("vae"))
    assert findings[0].check == "no better than the mean" and findings[0].severity == EXCLUDED
    health = assess({"vae": {0: (healthy_record(), full_metrics())}}, {"vae": model("vae")},
                    failures={"vae": {1: "TrainingDivergedError: loss is nan"}})
    # One seed of two failed: compared on the other, which the answer says.
    assert health["vae"]["status"] == "partly excluded"
    assert health["vae"]["findings"][0]["seeds"] == [1]
    assert health["vae"]["excluded_seeds"] == [1]
    everything = assess({}, {"vae": model("vae")}, failures={"vae": {0: "nan", 1: "nan"}})
    assert everything["vae"]["status"] == EXCLUDED


def test_a_partly_failed_entry_is_compared_on_its_healthy_seeds():
    from aevae.study.health import assess

    runs = {key: {seed: full_metrics({("compression", "mse"): 0.4 if key == "ae" else 0.3},
                                     seed) for seed in range(3)} for key in ("ae", "vae")}
    runs["vae"][2]["latent"]["active_units"]["value"] = 0  # seed 2 collapsed
    runs["vae"][2]["reconstruction"]["mse"]["value"] = 9.0
    models = {key: model(key) for key in runs}
    health = assess({key: {seed: (healthy_record(), metrics) for seed, metrics in seeds.items()}
                     for key, seeds in runs.items()}, models)
    tasks = task_results(runs, models, FACTORS, health=health)
    verdict, metric = _verdict(tasks, "compression")
    assert metric["rows"]["vae"]["values"] == {0: 0.3, 1: 0.301}
    assert "seed(s) 2 left out" in metric["rows"]["vae"]["flags"][0]
    assert verdict["winner"] == "vae" and verdict["seeds"] == 2


def test_variants_with_high_spread_and_low_faithfulness_do_not_win():
    tasks, _ = studied({
        "ae": {("variation", "variation_diversity"): 1.0,
               ("variation", "variation_faithfulness"): 0.91},
        "vae": {("variation", "variation_diversity"): 1.8,
                ("variation", "variation_faithfulness"): 0.68},
        "rae": {("variation", "variation_diversity"): 0.9,
                ("variation", "variation_faithfulness"): 0.90},
    })
    verdict, metric = _verdict(tasks, "variation")
    assert verdict["winner"] == "ae"
    assert "keep the input's class" in metric["rows"]["vae"]["guard_failures"][0]
    # The claim reads the same guard: the VAE's variants are not "varied yet faithful".
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    varied = claims["The VAE's stochastic codes give varied yet faithful variants of one input."]
    assert varied["status"] == FAILS
    assert "keep the input's class" in varied["parts"][0]["reason"]
    # And so does the bottom line.
    from aevae.study.answer import bottom_line

    row = next(row for row in bottom_line(tasks, {"ae": "ae", "vae": "vae"})
               if row["task"] == "variation")
    assert row["better"] == "ae" and row["by_default"] == "guard"


def test_every_registered_task_has_a_verdict_sentence_and_a_bottom_line_row():
    from aevae.study.answer import bottom_line
    from aevae.study.tasks import TASKS

    tasks, _ = studied({"ae": {}, "vae": {("compression", "mse"): 0.6}})
    sentences = summary(tasks, {"ae": "ae", "vae": "vae"})
    assert len(sentences) == len(TASKS)
    for task, sentence in zip(TASKS.values(), sentences):
        assert sentence.startswith(f"To {task.purpose}"), (task.name, sentence)
    rows = bottom_line(tasks, {"ae": "ae", "vae": "vae"})
    assert [row["task"] for row in rows] == list(TASKS)
    assert all(row["goal"] for row in rows)
    compression = rows[0]
    assert compression["better"] == "ae" and compression["outcome"] == "first"
    assert compression["high"] < 0  # the better minus the other: MSE, lower is better


def test_a_partly_tested_claim_says_so():
    from aevae.study.verdicts import PARTLY

    tasks, _ = studied({
        "ae": {("few_labels", "probe_10"): 0.9, ("few_labels", "knn_all"): 0.9},
        "vae": {("few_labels", "probe_10"): 0.8, ("few_labels", "knn_all"): 0.8}})
    tasks = [task for task in tasks if task["name"] != "denoising"]  # as on real-valued data
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    plain = claims["A plain AE suffices for denoising and for separating classes."]
    assert plain["status"] == PARTLY and plain["parts_tested"] == 2
    assert [part["status"] for part in plain["parts"]] == [NOT_TESTED, HOLDS, HOLDS]


def test_intervals_are_clipped_to_the_figures_range():
    rows = metric_rows(Metric("p", "precision", (("g", "v"),), "higher", bounds=(0.0, 1.0)),
                       {"a": {0: {"g": {"v": 0.999}}, 1: {"g": {"v": 0.95}},
                              2: {"g": {"v": 1.0}}}}, {"a": model("a")}, DATA)
    assert rows["a"]["high"] == 1.0 and rows["a"]["clipped"]
    assert rows["a"]["low"] < rows["a"]["mean"] < 1.0


def test_sweeps_match_ae_and_vae_per_value():
    from aevae.study.answer import matchings
    from aevae.study.roster import PRESETS

    def roster(text):
        return [{"key": entry.key, "model": entry.model, "options": entry.options}
                for entry in parse_roster(text)]

    latent = matchings(roster(PRESETS["latent-sweep"]["models"]),
                       {"sweep": "latent_dim"})
    assert [pair["label"] for pair in latent] == [f"latent_dim={size}" for size in
                                                  (2, 4, 8, 16, 32)]
    assert latent[0]["roles"] == {"ae": "ae:latent_dim=2", "vae": "vae:latent_dim=2"}
    beta = matchings(roster(PRESETS["beta-sweep"]["models"]), {"sweep": "beta"})
    assert beta and all(pair["roles"]["ae"] == "ae" for pair in beta)
    assert beta[0]["roles"]["vae"] == "beta_vae:beta=0.25"
    assert matchings(roster("ae,vae,rae"), None)[0]["roles"] == {"ae": "ae", "vae": "vae"}
    assert matchings(roster("ae:latent_dim=4,vae:latent_dim=4"), None)[0]["roles"] == {
        "ae": "ae:latent_dim=4", "vae": "vae:latent_dim=4"}
    assert matchings(roster("pca,vae"), None) == []


def test_a_guard_counts_against_the_claimed_model_never_for_it():
    # The AE's variants barely spread (it fails the spread guard), but that does not make the
    # VAE's far less faithful variants "at least as faithful".
    tasks, _ = studied({
        "ae": {("variation", "variation_diversity"): 0.4,
               ("variation", "variation_faithfulness"): 0.99},
        "vae": {("variation", "variation_diversity"): 3.4,
                ("variation", "variation_faithfulness"): 0.70}})
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    spread, faithful = claims["The VAE's stochastic codes give varied yet faithful variants of "
                              "one input."]["parts"]
    assert spread["status"] == FAILS and "keep the input's class" in spread["reason"]
    assert faithful["status"] == FAILS and "reason" not in faithful


# ----- unequal seeds, broken figures, one seed in common -----------------------------------------
def test_a_leader_on_unequal_seeds_that_trails_on_the_shared_ones_does_not_win():
    # b's extra seed (a's was left out) lifts b's mean; on the seeds both have, b is clearly
    # better, and the verdict must say so, not "a and b are level".
    runs = {"a": {0: {"g": {"v": 5.0}}, 1: {"g": {"v": 5.1}}},
            "b": {0: {"g": {"v": 4.0}}, 1: {"g": {"v": 4.0}}, 2: {"g": {"v": 8.0}}}}
    rows = metric_rows(Metric("v", "MSE", (("g", "v"),), "lower"), runs,
                       {key: model(key) for key in runs}, DATA)
    assert rows["a"]["mean"] < rows["b"]["mean"]
    verdict = decide(rows, "lower")
    assert (verdict["winner"], verdict["runner_up"], verdict["ranking"]) == ("b", "a", ["b", "a"])
    assert verdict["status"] == CLEAR and verdict["every_seed"] and verdict["high"] < 0
    assert (verdict["winner_mean"], verdict["runner_up_mean"]) == (4.0, pytest.approx(5.05))
    [sentence] = summary([{"name": "compression", "skipped": None, "metrics": [
        {"label": "MSE", "digits": 3, "rows": rows, "verdict": verdict}]}], {"a": "a", "b": "b"})
    assert sentence.startswith("To compress data and reconstruct it, prefer b: MSE 4.00 vs "
                               "5.05 on the 2 seeds both have for a, the runner-up (")


def test_a_figure_that_is_not_finite_on_one_seed_wins_nothing():
    runs = {"ae": {0: {"g": {"v": 0.30}}, 1: {"g": {"v": 0.31}}, 2: {"g": {"v": math.inf}}},
            "pca": {0: {"g": {"v": 0.40}}, 1: {"g": {"v": 0.41}}, 2: {"g": {"v": 0.40}}},
            "vae": {seed: {"g": {"v": math.nan}} for seed in range(3)}}
    rows = metric_rows(Metric("v", "MSE", (("g", "v"),), "lower"), runs,
                       {key: model(key) for key in runs}, DATA)
    assert rows["ae"]["non_finite"] == {2: math.inf}
    assert rows["ae"]["excluded"] == ["MSE is not finite (inf on seed 2)"]
    assert rows["vae"] == {"available": False, "name": "vae", "reason": "not finite"}
    verdict = decide(rows, "lower")
    assert verdict["status"] == "uncontested" and verdict["winner"] == "pca"
    assert "ae" in verdict["barred"]
    rows["vae"] = rows["pca"]  # a second healthy model: the verdict names why ae is passed over
    [sentence] = summary([{"name": "compression", "skipped": None, "metrics": [
        {"label": "MSE", "digits": 3, "direction": "lower", "rows": rows,
         "verdict": decide(rows, "lower")}]}], {key: key for key in rows})
    assert "not compared: ae (0.305: MSE is not finite (inf on seed 2))" in sentence


def test_a_model_whose_every_run_failed_is_named_with_the_failure():
    from aevae.study.health import assess
    from aevae.study.verdicts import compare_pair

    runs = {key: {seed: full_metrics(seed=seed) for seed in range(2)} for key in ("ae",)}
    models = {key: model(key) for key in ("ae", "vae")}
    health = assess({"ae": {seed: (healthy_record(), metrics)
                            for seed, metrics in runs["ae"].items()}}, models,
                    failures={"vae": {0: "loss is nan", 1: "loss is nan"}})
    tasks = task_results({**runs, "vae": {}}, models, FACTORS, health=health)
    task = next(task for task in tasks if task["name"] == "compression")
    row = task["metrics"][0]["rows"]["vae"]
    assert row == {"available": False, "name": "vae",
                   "reason": "training failed (loss is nan) (every seed)"}
    compared = compare_pair(task, task["metrics"][0], "ae", "vae")
    assert compared["reason"] == "vae: training failed (loss is nan) (every seed)"


def test_health_is_checked_whatever_tasks_the_study_runs():
    from aevae.study.runner import HEALTH_GROUPS, metric_groups
    from aevae.study.tasks import TASKS

    for name in TASKS:
        groups = set(metric_groups(FACTORS, {name: TASKS[name]}))
        assert groups >= HEALTH_GROUPS, name


def test_one_seed_in_common_leaves_every_claim_inconclusive():
    # A tie on one seed is no evidence of "at least as good".
    tasks = study_tasks(ae_fd=[100.0], vae_fd=[100.1], ae_mse=[0.1000], vae_mse=[0.1002])
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    for text in ("The AE reconstructs at least as well as the VAE.",
                 "The VAE samples better from the prior than the AE."):
        assert claims[text]["status"] == INCONCLUSIVE
        assert claims[text]["parts"][0]["reason"] == "one seed in common: no interval"


def test_the_ex_post_claim_fails_when_the_ae_fails_its_own_tasks_guard():
    tasks, _ = studied({
        "ae": {("ex_post_sampling", "ex_post_frechet_distance"): 20.0,
               ("ex_post_sampling", "ex_post_recall"): 0.05,
               ("prior_sampling", "prior_frechet_distance"): 300.0},
        "vae": {("ex_post_sampling", "ex_post_frechet_distance"): 40.0,
                ("ex_post_sampling", "ex_post_recall"): 0.6,
                ("prior_sampling", "prior_frechet_distance"): 50.0}})
    ex_post = next(task for task in tasks if task["name"] == "ex_post_sampling")
    assert ex_post["metrics"][0]["rows"]["ae"].get("guard_failures"), ex_post["guards"]
    claims = {claim["claim"]: claim for claim in judge_claims(tasks)}
    [part] = claims["A density fitted to the AE's codes closes the sampling gap."]["parts"]
    assert part["status"] == FAILS and part["reason"].startswith("ae: ")


def test_a_clipped_interval_keeps_its_mean():
    rows = metric_rows(Metric("m", "MMD²", (("g", "v"),), "lower", bounds=(0.0, None)),
                       {"a": {0: {"g": {"v": -0.0004}}, 1: {"g": {"v": -0.0002}}}},
                       {"a": model("a")}, DATA)
    assert rows["a"]["clipped"] and rows["a"]["low"] <= rows["a"]["mean"] < 0


def test_a_seed_on_which_the_pair_is_equal_counts_for_neither():
    from aevae.study.answer import bottom_line

    tasks = study_tasks(ae_fd=[400, 420, 410], vae_fd=[30, 32, 31],
                        ae_mse=[0.012, 0.013, 0.012], vae_mse=[0.010, 0.011, 0.012])
    compression = next(row for row in bottom_line(tasks, {"ae": "ae", "vae": "vae"})
                       if row["task"] == "compression")
    assert compression["leader"] == "vae"
    assert (compression["seeds"], compression["seeds_in_favour"]) == (3, 2)


# ----- trade-offs, trivial baselines, one seed ---------------------------------------------
def sampling_runs(figures: dict[str, tuple[float, float, float]]) -> dict:
    """entry -> seed -> prior samples' (FD, precision, recall), a little seed noise."""
    return {key: {seed: {"generation": {"reference_images": 1000, "prior": {
        "frechet_distance": {"value": fd + seed}, "precision_recall": {
            "precision": precision + 0.001 * seed, "recall": recall + 0.001 * seed}}}}
        for seed in range(3)} for key, (fd, precision, recall) in figures.items()}


def test_a_model_far_behind_on_a_figure_does_not_win_it_because_the_other_fails_a_guard():
    """precision and recall guard each other: ae covers the data (recall 0.9) with samples
    that rarely look like data (precision 0.15); vae the reverse. On the precision figure ae
    would be "the only model that passes the guards", with by far the lowest precision."""
    runs = sampling_runs({"ae": (400.0, 0.15, 0.90), "vae": (60.0, 0.78, 0.03)})
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    task = next(task for task in task_results(runs, models, DATA)
                if task["name"] == "prior_sampling")
    figures = {metric["name"]: metric for metric in task["metrics"]}
    for name in ("prior_precision", "prior_recall"):
        verdict = figures[name]["verdict"]
        assert verdict["status"] == "not compared", verdict
        assert verdict["reason"].startswith("a trade-off: ")
    pair = compare_pair(task, figures["prior_precision"], "ae", "vae")
    assert pair["outcome"] == "level" and pair["by_default"] == "guard"
    assert pair["reason"].startswith("a trade-off: ")
    # With no trade-off the figure's own guard decides nothing by itself: the interval does.
    fair = sampling_runs({"ae": (400.0, 0.15, 0.90), "vae": (60.0, 0.78, 0.85)})
    task = next(task for task in task_results(fair, models, DATA)
                if task["name"] == "prior_sampling")
    precision = next(m for m in task["metrics"] if m["name"] == "prior_precision")
    assert compare_pair(task, precision, "ae", "vae")["outcome"] == "second"
    assert "by_default" not in compare_pair(task, precision, "ae", "vae")


def test_a_model_no_better_than_the_trivial_fill_wins_nothing_with_the_figure():
    unlabelled = DataInfo(kind="tabular", values="real", labels=False, likelihood="gaussian")
    runs = {key: {seed: {"imputation": {"examples": 500, "by_fraction": {
        "0.2": {"rmse": rmse + 0.01 * seed, "mean_imputation_rmse": 0.88 + 0.01 * seed},
        "0.5": {"rmse": rmse + 0.01 * seed, "mean_imputation_rmse": 0.90 + 0.01 * seed}}}}
        for seed in range(3)} for key, rmse in (("ae", 1.93), ("vae", 2.4))}
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    task = next(task for task in task_results(runs, models, unlabelled)
                if task["name"] == "imputation")
    metric = task["metrics"][0]
    assert metric["rows"]["ae"]["baseline"] == pytest.approx(0.89)
    assert metric["rows"]["ae"]["baseline_failure"] == (
        "no better than filling in the training mean: RMSE on the missing entries, 20% "
        "missing 1.940 against 0.8900")
    assert metric["verdict"]["status"] == "not compared"  # neither beats the mean
    pair = compare_pair(task, metric, "ae", "vae")
    assert pair["outcome"] == "not compared" and pair["reason"].startswith("neither wins: ae: no "
                                                                            "better than")
    from aevae.study.answer import bottom_line, margin_text

    [row] = bottom_line([task], {"ae": "ae", "vae": "vae"})
    assert margin_text(row) == "" and row["reason"].startswith("neither wins")


def test_in_short_names_what_the_figures_did_not_decide():
    from aevae.study.answer import in_short

    roles, labels = {"ae": "ae", "vae": "vae"}, {"ae": "ae", "vae": "vae"}

    def row(goal, outcome, better=None, by_default=None):
        return {"goal": goal, "outcome": outcome, "better": better, "by_default": by_default}

    assert in_short([row("compress", "first", "ae"), row("generate", "second", "vae"),
                     row("cluster", "level")], labels, roles) == (
        "vae for: generate; ae for: compress; no clear difference for: cluster.")
    collapsed = [row("compress", "first", "ae", "health"), row("generate", "first", "ae",
                                                               "health")]
    assert in_short(collapsed, labels, roles) == (
        "the figures decided no goal: by default, the other failing a health check or guard "
        "(the figure did not decide): ae for compress, generate.")
    one_seed = [row("compress", "one seed", "ae"), row("generate", "one seed", "vae")]
    assert in_short(one_seed, labels, roles) == (
        "the figures decided no goal: one seed, so nothing tested, for: compress, generate.")
    assert in_short([row("compress", "not compared")], labels, roles) == (
        "the figures decided no goal: not compared for: compress.")
    assert in_short([row("generate", "level", None, "guard")], labels, roles) == (
        "the figures decided no goal: a trade-off, each failing a guard the other passes, "
        "for: generate.")


def test_a_health_finding_on_several_seeds_quotes_each_seed_as_its_own():
    from aevae.study.health import describe

    finding = {"message": "reconstructs no better than the training mean (MSE 0.0771 against "
               "0.0772 for the mean)", "seeds": [0, 1, 2], "seed_count": 3,
               "messages": ["reconstructs no better than the training mean (MSE 0.0771 "
                            "against 0.0772 for the mean)", "... (MSE 0.0779 ...)",
                            "... (MSE 0.0770 ...)"]}
    assert describe(finding) == (
        "on seed 0 (likewise on seeds 1, 2): reconstructs no better than the training mean "
        "(MSE 0.0771 against 0.0772 for the mean) (every seed)")
    same = {**finding, "messages": [finding["message"]] * 3}
    assert describe(same) == finding["message"] + " (every seed)"


def test_active_units_intervals_stay_within_the_code_size():
    runs = {"vae": {seed: {"latent": {"active_units": {"value": value, "n_dimensions": 8}}}
                    for seed, value in enumerate([6, 8, 8])}}
    metric = next(metric for task in TASKS.values() for metric in task.metrics
                  if metric.name == "active_units")
    row = metric_rows(metric, runs, {"vae": model("vae")}, DATA)["vae"]
    assert row["high"] == 8 and row["clipped"] and row["low"] < row["mean"] < 8
    assert format_value(row["mean"], metric.digits) == "7.3"


def test_the_best_of_the_roster_on_one_seed_is_not_called_level():
    from aevae.report.text import _best_text

    row = {"best": "pca", "best_value": 0.817, "digits": 3, "best_status": ONE_SEED}
    assert _best_text(row, {"pca": "pca"}) == "pca 0.817 (one seed: untested)"


def test_constant_data_is_refused_by_the_study(tmp_path, capsys):
    from aevae.cli import main

    np.save(tmp_path / "ones.npy", np.ones((200, 6), dtype=np.float32))
    assert main(["compare", "--data", str(tmp_path / "ones.npy"), "--models", "ae,vae",
                 "--out", str(tmp_path / "study")]) == 2
    assert "ones: every value is 1, so there is nothing to learn or compare" in (
        capsys.readouterr().err)


def test_small_data_waits_as_many_more_epochs_before_stopping_early():
    from aevae.study.settings import BUDGETS, StudySettings

    quick = BUDGETS["quick"]
    assert quick.epoch_cap(250) == 250 and quick.patience_within(250) == 34  # 4 steps an epoch
    assert quick.training_config(250, seed=0, device="cpu").patience == 34
    assert quick.patience_within(quick.epoch_cap(1437)) == 8  # digits: the budget's own
    given = StudySettings(patience=5).training_budget  # --patience is taken as given
    assert given.patience_within(given.epoch_cap(250)) == 5


# ----- "at least as good" is non-inferiority ----------------------------------------------------
def test_at_least_as_good_needs_the_interval_to_rule_out_more_than_a_tie():
    claim = "The AE reconstructs at least as well as the VAE."
    # Ahead on the mean, but the interval allows a deficit of about 20%: not shown.
    wide = study_tasks(ae_fd=[1, 1, 1], vae_fd=[1, 1, 1], ae_mse=[0.0100, 0.0130, 0.0080],
                       vae_mse=[0.0120, 0.0100, 0.0100])
    part = {c["claim"]: c for c in judge_claims(wide)}[claim]["parts"][0]
    assert part["status"] == INCONCLUSIVE
    assert part["reason"].startswith("the interval allows ae to be worse by ")
    assert part["reason"].endswith("more than a tie (5.333e-05)")
    # Level on the mean (a tie) with a wide interval: the same.
    tied_wide = study_tasks(ae_fd=[1, 1, 1], vae_fd=[1, 1, 1], ae_mse=[0.0100, 0.0140, 0.0120],
                            vae_mse=[0.0120, 0.0120, 0.0120])
    part = {c["claim"]: c for c in judge_claims(tied_wide)}[claim]["parts"][0]
    assert part["status"] == INCONCLUSIVE
    # Behind by a hair in every seed, within a tie (0.5% of the figure): no worse.
    close = study_tasks(ae_fd=[1, 1, 1], vae_fd=[1, 1, 1], ae_mse=[0.01002, 0.01101, 0.01201],
                        vae_mse=[0.0100, 0.0110, 0.0120])
    part = {c["claim"]: c for c in judge_claims(close)}[claim]["parts"][0]
    assert part["status"] == HOLDS and part["reason"].startswith("no worse")
    # Behind by more than a tie in every seed: clearly worse.
    behind = study_tasks(ae_fd=[1, 1, 1], vae_fd=[1, 1, 1], ae_mse=[0.0110, 0.0121, 0.0132],
                         vae_mse=[0.0100, 0.0110, 0.0120])
    assert {c["claim"]: c for c in judge_claims(behind)}[claim]["status"] == FAILS


def test_a_claimed_model_no_better_than_the_trivial_method_fails_its_part():
    # Both models leave the noisy input worse than it was: the AE does not "suffice for
    # denoising", whatever the VAE does.
    from aevae.study.health import assess

    runs = {key: {seed: full_metrics({("denoising", "denoise_noise"): psnr}, seed)
                  for seed in range(3)} for key, psnr in (("ae", 9.0), ("vae", 8.0))}
    for by_seed in runs.values():
        for metrics in by_seed.values():
            _set(metrics, ("denoising", "gaussian_noise", "0.3", "corrupted_psnr"), 10.5)
    models = {key: model(key) for key in runs}
    health = assess({key: {seed: (healthy_record(), metrics) for seed, metrics in by_seed.items()}
                     for key, by_seed in runs.items()}, models)
    tasks = task_results(runs, models, FACTORS, health=health)
    for task in tasks:
        for metric in task["metrics"]:
            if metric["name"] == "denoise_noise":
                for row in metric["rows"].values():
                    assert row["baseline_failure"].startswith("no better than the noisy input")
    claims = {c["claim"]: c for c in judge_claims(tasks)}
    denoising = claims["A plain AE suffices for denoising and for separating classes."]
    part = next(p for p in denoising["parts"] if "PSNR" in p["text"])
    assert part["status"] == FAILS and part["reason"].startswith("ae: no better than")
    assert denoising["status"] == FAILS


def test_a_guard_between_two_is_judged_on_the_seeds_they_share():
    """The VAE's seed 2 collapsed (left out): the AE's recall is then compared on seeds 0 and 1,
    where it covers under half as much as the VAE's (0.2 against 0.5), not on its mean over
    all three (0.47, lifted by seed 2)."""
    from aevae.study.health import assess

    recall = {"ae": (0.2, 0.2, 1.0), "vae": (0.5, 0.5, 0.5)}
    runs = {key: {seed: full_metrics({("prior_sampling", "prior_recall"): recall[key][seed],
                                      ("prior_sampling", "prior_frechet_distance"):
                                      30.0 if key == "ae" else 40.0}, seed)
                  for seed in range(3)} for key in ("ae", "vae")}
    runs["vae"][2]["latent"]["active_units"]["value"] = 0  # seed 2 collapsed
    models = {key: model(key) for key in runs}
    health = assess({key: {seed: (healthy_record(), metrics) for seed, metrics in seeds.items()}
                     for key, seeds in runs.items()}, models)
    tasks = task_results(runs, models, FACTORS, health=health)
    task = next(task for task in tasks if task["name"] == "prior_sampling")
    pair = compare_pair(task, task["metrics"][0], "ae", "vae")
    assert pair["outcome"] == "second" and pair["by_default"] == "guard"
    assert "recall 0.201 against 0.500 for vae" in pair["reason"]


def test_more_seeds_of_a_small_lead_never_turn_a_failed_claim_into_a_held_one():
    """With the tie at 0.5 (0.5% of FD ~100): a precise lead of 0.3 is shown to be under a tie,
    so "the VAE samples better" fails; the same mean with noisier seeds cannot tell, so it is
    inconclusive (it held before: the noisy interval excluded zero). Only a lead whose whole
    interval clears the tie holds, and the verdict calls only that a clear winner."""
    claim = "The VAE samples better from the prior than the AE."
    ae = [100.0, 101.0, 102.0]
    statuses = {}
    for name, leads in (("precise", (0.29, 0.30, 0.31)), ("noisy", (0.2, 0.3, 0.4)),
                        ("large", (4.9, 5.0, 5.1))):
        tasks = study_tasks(ae_fd=ae, vae_fd=[a - lead for a, lead in zip(ae, leads)],
                            ae_mse=[0.01] * 3, vae_mse=[0.01] * 3)
        statuses[name] = {c["claim"]: c for c in judge_claims(tasks)}[claim]["status"]
        verdict = next(task for task in tasks if task["name"] == "prior_sampling")[
            "metrics"][0]["verdict"]
        assert (verdict["status"] == CLEAR) == (name == "large")
    assert statuses == {"precise": FAILS, "noisy": INCONCLUSIVE, "large": HOLDS}


def test_at_least_as_good_fails_only_when_a_deficit_beyond_a_tie_is_shown():
    claim = "The AE reconstructs at least as well as the VAE."
    vae = [0.0100, 0.0110, 0.0120]  # tie 0.5% of ~0.011: 5.5e-05
    cases = {"within": (4.4e-05, 4.5e-05, 4.6e-05),  # a deficit, but inside the tie
             "straddling": (4e-05, 5e-05, 6e-05),    # shown a deficit, maybe beyond the tie
             "beyond": (2e-04, 2.1e-04, 2.2e-04)}    # a deficit beyond the tie
    statuses = {}
    for name, deficits in cases.items():
        tasks = study_tasks(ae_fd=[1] * 3, vae_fd=[1] * 3, vae_mse=vae,
                            ae_mse=[v + d for v, d in zip(vae, deficits)])
        statuses[name] = {c["claim"]: c for c in judge_claims(tasks)}[claim]["status"]
    assert statuses == {"within": HOLDS, "straddling": INCONCLUSIVE, "beyond": FAILS}


def test_a_preset_whose_roster_was_replaced_still_pairs_ae_and_vae():
    from aevae.study.answer import matchings

    roster = [{"key": key, "model": key, "options": {}} for key in ("ae", "vae")]
    [pair] = matchings(roster, {"sweep": "latent_dim"})
    assert pair["roles"] == {"ae": "ae", "vae": "vae"}
    swept = [{"key": f"{model}:latent_dim={size}", "model": model,
              "options": {"latent_dim": size}} for model in ("ae", "vae") for size in (2, 4)]
    assert [pair["value"] for pair in matchings(swept, {"sweep": "latent_dim"})] == [2, 4]


def test_a_bottom_line_row_names_a_better_model_only_where_it_answers():
    tasks = study_tasks(ae_fd=[100, 50, 80], vae_fd=[60, 90, 70], ae_mse=[0.010, 0.011, 0.012],
                        vae_mse=[0.020, 0.021, 0.019])
    from aevae.study.answer import bottom_line

    rows = {row["task"]: row for row in bottom_line(tasks, {"ae": "ae", "vae": "vae"})}
    assert rows["compression"]["better"] == "ae"
    sampling = rows["prior_sampling"]
    assert sampling["outcome"] == "level" and sampling["better"] is None
    assert sampling["leader"] == "vae"  # ahead on the mean (73.3 against 76.7), no more


def test_equal_figures_on_one_seed_are_no_lead():
    """pca "led" ppca with the same figure (0.844 vs 0.844) on a one-seed study."""
    from aevae.study.answer import bottom_line, row_verdict

    rows = rows_of({"pca": [0.844], "ppca": [0.844]})
    verdict = decide(rows, "higher")
    sentence = summary([{"name": "anomaly", "skipped": None, "metrics": [
        {"label": "AUROC", "digits": 3, "rows": rows, "verdict": verdict}]}],
        {"pca": "pca", "ppca": "ppca"})[0]
    assert "are equal on the one seed" in sentence and "leads" not in sentence
    tasks = study_tasks(ae_fd=[100.0], vae_fd=[90.0], ae_mse=[0.1], vae_mse=[0.1])
    row = next(row for row in bottom_line(tasks, {"ae": "ae", "vae": "vae"})
               if row["task"] == "compression")
    assert row["better"] is None and row_verdict(row, {}, {"ae": "ae", "vae": "vae"}) == (
        "equal (one seed)")


def test_a_sweep_s_cells_decided_by_a_check_point_to_their_reason():
    from aevae.report.text import study_text, sweep_rows

    def answer(size, generate):
        roles = {"ae": f"ae:latent_dim={size}", "vae": f"vae:latent_dim={size}"}
        return {"label": f"latent_dim={size}", "roles": roles, "bottom_line": [
            {"goal": "compress", "outcome": "first", "better": "ae", "difference": 0.1,
             "low": 0.05, "high": 0.15, "digits": 3},
            {"goal": "generate", "digits": 3, **generate},
            {"goal": "cluster", "outcome": "skipped", "reason": "the data has no labels",
             "digits": 3}], "claims": []}

    unhealthy = {"outcome": "second", "better": "vae", "by_default": True,
                 "reason": "ae failed a health check"}
    answers = [answer(2, unhealthy), answer(4, unhealthy),
               answer(8, {"outcome": "first", "better": "ae", "by_default": True,
                          "reason": "vae failed the precision guard"})]
    labels = {f"{name}:latent_dim={size}": f"{name} {size}" for name in ("ae", "vae")
              for size in (2, 4, 8)}
    header, rows, notes = sweep_rows(answers, labels)
    assert header == ["goal", "latent_dim=2", "latent_dim=4", "latent_dim=8"]
    assert rows == [["compress", "ae 2", "ae 4", "ae 8"],
                    ["generate", "vae 2 (by default) [1]", "vae 4 (by default) [1]",
                     "ae 8 (by default) [2]"]]  # cluster, measured nowhere, is left out
    assert notes == ["generate: ae failed a health check",
                     "generate: vae failed the precision guard"]
    text = study_text({"labels": labels, "answers": answers, "summary": [],
                       "study": {"settings": {"seeds": 3}, "preset": {"sweep": "latent_dim"},
                                 "data": {"name": "d", "likelihood": "bernoulli",
                                          "likelihood_reason": "values in [0, 1]"}},
                       "tasks": []})
    assert "[2] generate: vae failed the precision guard" in text
    assert "Not measured on this data: cluster (the data has no labels)." in text


def test_the_only_model_with_a_likelihood_answers_the_density_row():
    """The row read "None (only one)" and the goal was missing from "In short"."""
    from aevae.study.answer import bottom_line, in_short, row_verdict

    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    runs = {key: {seed: full_metrics(None, seed) for seed in range(3)} for key in models}
    tasks = task_results(runs, models, FACTORS)
    roles = {"ae": "ae", "vae": "vae"}
    row = next(row for row in bottom_line(tasks, roles) if row["task"] == "likelihood")
    assert (row["outcome"], row["better"], row["leader"]) == ("only", "vae", "vae")
    assert row_verdict(row, {"ae": "ae", "vae": "vae"}, roles) == "vae (only one)"
    assert "vae for: estimate density" in in_short(bottom_line(tasks, roles),
                                                   {"ae": "ae", "vae": "vae"}, roles)


def test_reasons_name_entries_by_label_not_by_key():
    """Notes read "vae:latent_dim=4 its variations ... for ae:latent_dim=4"."""
    from dataclasses import replace

    from aevae.study.answer import bottom_line

    keys = {"ae": "ae:latent_dim=4", "vae": "vae:latent_dim=4"}
    figures = {"ae": {("variation", "variation_diversity"): 0.4,
                      ("variation", "variation_faithfulness"): 0.99},
               "vae": {("variation", "variation_diversity"): 3.4,
                       ("variation", "variation_faithfulness"): 0.70}}
    runs = {keys[name]: {seed: full_metrics(values, seed) for seed in range(3)}
            for name, values in figures.items()}
    models = {key: replace(model(name), key=key, label=f"{name} (latent_dim=4)")
              for name, key in keys.items()}
    tasks = task_results(runs, models, FACTORS)
    texts = [row.get("reason") or "" for row in bottom_line(tasks, keys)]
    for claim in judge_claims(tasks, roles=keys):
        texts += [part.get("reason") or "" for part in claim["parts"]]
    for task in tasks:
        for metric in task["metrics"]:
            texts.append(metric["verdict"].get("reason") or "")
            texts += [text for reasons in metric["verdict"].get("barred", {}).values()
                      for text in reasons]
    texts = [text for text in texts if text]
    assert any("vae (latent_dim=4): its variations keep the input's class" in text
               and text.endswith("for ae (latent_dim=4)") for text in texts), texts
    assert not [text for text in texts if ":latent_dim=4" in text]  # no key anywhere


def test_without_an_ae_vae_pair_the_answer_says_which_side_is_missing_or_ambiguous():
    from aevae.study.answer import matchings, pairing_problem

    def roster(text):
        return [{"key": entry.key, "model": entry.model, "options": entry.options,
                 "label": entry.label} for entry in parse_roster(text)]

    two = roster("ae,vae:latent_dim=4,vae:latent_dim=16")
    assert matchings(two, None) == []  # not "no VAE": two of them
    assert pairing_problem(two) == (
        "the roster has no AE-VAE pair: which of its 2 vae entries (vae (latent_dim=4), "
        "vae (latent_dim=16)) plays the VAE is ambiguous")
    assert pairing_problem(roster("vae,iwae")) == "the roster has no AE-VAE pair: it has no ae"
    assert pairing_problem(roster("pca,rae")) == (
        "the roster has no AE-VAE pair: it has no ae; it has no vae")


def test_a_figure_every_model_is_barred_from_says_so_and_why():
    """It read "fewer than two models pass the health checks and guards" with none passing,
    and "fewer than two models have this figure" with none having it."""
    rows = rows_of({"pca": [0.16, 0.17], "ae": [0.04, 0.03]})
    rows["pca"]["guard_failures"] = ["its samples cover under half as much of the data: recall"]
    rows["ae"]["guard_failures"] = ["under half as large a share of its samples looks like data"]
    verdict = decide(rows, "higher")
    assert verdict["status"] == "not compared"
    assert verdict["reason"] == "a trade-off: every model fails one of the task's guards"
    [sentence] = summary([{"name": "prior_sampling", "skipped": None, "metrics": [
        {"label": "precision", "digits": 3, "rows": rows, "verdict": verdict}]}],
        {"pca": "pca", "ae": "ae"})
    assert sentence.endswith("every model fails one of the task's guards (pca: its samples "
                             "cover under half as much of the data: recall; ae: under half as "
                             "large a share of its samples looks like data).")
    one = rows_of({"vae": [-90.0, -91.0]})
    assert decide(one, "higher")["reason"] == "only one model has this figure"
    none = {"ae": {"available": False, "reason": "no likelihood"}}
    assert decide(none, "higher")["reason"] == "no model has this figure (no likelihood)"
    none["vae"] = {"available": False, "reason": "a class has only 7 labelled training example"}
    assert decide(none, "higher")["reason"] == "no model has this figure"  # reasons differ


def test_a_bottom_line_row_on_the_shared_seeds_says_which():
    from aevae.report.text import bottom_line_rows
    from aevae.study.answer import bottom_line

    tasks = study_tasks(ae_fd=[100, 50, 80], vae_fd=[60, 90, 70], ae_mse=[0.010, 0.011],
                        vae_mse=[0.020, 0.021, 0.019])
    roles = {"ae": "ae", "vae": "vae"}
    rows = bottom_line(tasks, roles)
    compression = next(row for row in rows if row["task"] == "compression")
    assert compression["shared_seeds"] == [0, 1]
    assert compression["vae"] == pytest.approx(0.0205)  # on seeds 0 and 1, not all three
    _, cells, notes = bottom_line_rows({"roles": roles, "bottom_line": rows}, roles)
    index = notes.index("compress: both figures are means over seed(s) 0, 1, the ones both "
                        "models have") + 1
    assert any(cell.endswith(f"[{index}]") for row in cells for cell in row)


def test_models_all_no_better_than_the_trivial_method_are_no_trade_off():
    rows = rows_of({"ae": [1.9, 2.0], "vae": [2.4, 2.5]})
    for key in rows:
        rows[key]["baseline_failure"] = "no better than filling in the training mean"
        rows[key]["guard_failures"] = [rows[key]["baseline_failure"]]
    assert decide(rows, "lower")["reason"] == "no model does better than the trivial method"


def test_a_healthy_model_no_better_than_the_trivial_method_wins_nothing_by_default():
    """The other one failed a health check; this one is no better than filling in the mean:
    the bottom line says neither wins (it read "ae (by default)" while the verdict said no
    model beats the trivial method)."""
    from aevae.study.answer import bottom_line

    unlabelled = DataInfo(kind="tabular", values="real", labels=False, likelihood="gaussian")
    runs = {key: {seed: {"imputation": {"examples": 500, "by_fraction": {
        "0.2": {"rmse": rmse + 0.01 * seed, "mean_imputation_rmse": 0.95 + 0.01 * seed}}}}
        for seed in range(3)} for key, rmse in (("ae", 2.39), ("vae", 0.6))}
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    health = {"ae": {"status": "healthy", "findings": []},
              "vae": {"status": "excluded", "excluded_seeds": [0, 1, 2], "findings": [
                  {"check": "posterior collapse", "severity": "excluded", "seeds": [0, 1, 2],
                   "message": "0 of 8 latent units active"}]}}
    task = next(task for task in task_results(runs, models, unlabelled, health=health)
                if task["name"] == "imputation")
    metric = task["metrics"][0]
    assert metric["rows"]["vae"]["excluded"] and metric["rows"]["ae"]["baseline_failure"]
    assert metric["verdict"]["status"] == "not compared"
    # Both are kept out, one by a health check: the reason says so, not "no model does
    # better than the trivial method" alone.
    assert metric["verdict"]["reason"] == "no model passes the health checks and guards"
    pair = compare_pair(task, metric, "ae", "vae")
    assert pair["outcome"] == "not compared" and "by_default" not in pair
    assert pair["reason"].startswith("neither wins: vae: ") and "no better than filling" in (
        pair["reason"])
    [row] = bottom_line([task], {"ae": "ae", "vae": "vae"})
    assert row["better"] is None and row["outcome"] == "not compared"


def test_the_only_model_with_a_figure_shows_it_even_when_excluded():
    from aevae.report.text import bottom_line_rows
    from aevae.study.answer import bottom_line

    runs = {key: {seed: full_metrics(seed=seed) for seed in range(3)} for key in ("ae", "vae")}
    for seed in range(3):
        del runs["ae"][seed]["likelihood"]  # the AE has no likelihood
    models = {"ae": model("ae", has_likelihood=False), "vae": model("vae")}
    health = {"ae": {"status": "healthy", "findings": []},
              "vae": {"status": "excluded", "excluded_seeds": [0, 1, 2], "findings": [
                  {"check": "posterior collapse", "severity": "excluded", "seeds": [0, 1, 2],
                   "message": "0 of 8 latent units active"}]}}
    tasks = task_results(runs, models, FACTORS, health=health)
    density = next(task for task in tasks if task["name"] == "likelihood")
    [row] = bottom_line([density], {"ae": "ae", "vae": "vae"})
    assert row["vae"] == pytest.approx(density["metrics"][0]["rows"]["vae"]["mean"])
    assert row["better"] is None and row["vae_excluded"]
    answer = {"roles": {"ae": "ae", "vae": "vae"}, "bottom_line": [row]}
    _, [cells], _ = bottom_line_rows(answer, {"ae": "ae", "vae": "vae"})
    assert cells[3].endswith(" ✗") and not cells[3].startswith("n/a")


def test_a_win_on_the_figure_notes_the_guard_the_other_also_fails():
    """The pair's row is won on the figure while the roster's verdict reads "by default" (the
    loser also fails a guard): the table's note says both, so the two do not seem to
    disagree."""
    from aevae.report.text import bottom_line_rows
    from aevae.study.answer import bottom_line

    tasks, _ = studied({
        "ae": {("prior_sampling", "prior_frechet_distance"): 200.0,
               ("prior_sampling", "prior_recall"): 0.01},
        "vae": {("prior_sampling", "prior_frechet_distance"): 40.0,
                ("prior_sampling", "prior_recall"): 0.5},
    })
    task = next(task for task in tasks if task["name"] == "prior_sampling")
    pair = compare_pair(task, task["metrics"][0], "ae", "vae")
    assert pair["outcome"] == "second" and "by_default" not in pair
    assert pair["guard_note"].startswith("ae: ") and pair["guard_failure"]["model"] == "ae"
    [row] = bottom_line([task], {"ae": "ae", "vae": "vae"})
    _, [cells], notes = bottom_line_rows({"roles": {"ae": "ae", "vae": "vae"},
                                         "bottom_line": [row]}, {"ae": "ae", "vae": "vae"})
    assert cells[4] == "vae" and cells[5].endswith("[1]")
    assert notes == [f"{row['goal']}: won on the figure; ae also fails a guard: "
                     f"{pair['guard_failure']['text']}"]
    assert notes[0].startswith("generate (prior samples): won on the figure; ae also fails a "
                               "guard: its samples cover under half as much of the data: ")


def test_shares_that_agree_to_the_step_on_two_seeds_keep_an_interval():
    """Accuracies on 60 test examples move in steps of 1/60: two seeds with the same
    difference gave a zero-width interval, sold as a clear win (new-user audit)."""
    from aevae.study.statistics import paired_difference, step_deviation

    def studied_pair(examples_apart):
        runs = {key: {seed: full_metrics({("clustering", "kmeans_accuracy"): accuracy,
                                          ("compression", "mse"): mse}) for seed in range(2)}
                for key, accuracy, mse in (("ae", 0.45, 0.30),
                                           ("vae", 0.45 - examples_apart / 60, 0.35))}
        for key in runs:
            for metrics in runs[key].values():
                metrics["structure"]["n_test"] = 60
        tasks = task_results(runs, {key: model(key) for key in runs}, FACTORS)
        clustering = next(task for task in tasks if task["name"] == "clustering")
        return tasks, clustering, clustering["metrics"][0]

    _, clustering, accuracy = studied_pair(2)
    assert accuracy["rows"]["ae"]["step"] == pytest.approx(1 / 60)
    pair = compare_pair(clustering, accuracy, "ae", "vae")
    # Half width t(0.975, 1) x sqrt(2) x (1/60) / sqrt(12) / sqrt(2) = 0.0611.
    assert pair["high"] - pair["difference"] == pytest.approx(0.0611, abs=1e-4)
    assert pair["outcome"] == "level"  # 2 examples apart on both seeds: not shown
    tasks, clustering, accuracy = studied_pair(5)
    pair = compare_pair(clustering, accuracy, "ae", "vae")
    assert pair["outcome"] == "first" and pair["low"] == pytest.approx(5 / 60 - 0.0611, abs=1e-4)
    # A figure that does not move in steps keeps its exact interval.
    compression = next(task for task in tasks if task["name"] == "compression")
    assert "step" not in compression["metrics"][0]["rows"]["ae"]
    exact = compare_pair(compression, compression["metrics"][0], "ae", "vae")
    assert exact["low"] == exact["high"] and exact["outcome"] == "first"
    # With a real spread above the step's, nothing changes.
    spread = {0: 0.5, 1: 0.6, 2: 0.7}
    assert paired_difference(spread, {0: 0.0, 1: 0.0, 2: 0.0}, step=1 / 60)[0] == (
        paired_difference(spread, {0: 0.0, 1: 0.0, 2: 0.0})[0])
    assert step_deviation(1 / 60) == pytest.approx(1 / 60 / 12 ** 0.5)
