"""The study end to end on small budgets: runs, store, reuse, a killed study resumed, user data,
the report re-rendered, and the CLI's verbs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from aevae.cli import _load_run_data, main
from aevae.study import StudySettings, run_study
from aevae.study.runner import plan_runs, prepare_data, roster_for
from aevae.study.settings import Budget
from aevae.study.store import STORE_FILE, RunStore


def run(capsys, *arguments):
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory, tiny_budget):
    out = tmp_path_factory.mktemp("study") / "digits"
    settings = StudySettings(data="digits", models="pca,ppca,ae,vae", seeds=2,
                             budget=tiny_budget)
    return out, settings, run_study(settings, out, progress=False)


def test_study_writes_results_report_and_store(digits_study):
    out, _, results = digits_study
    assert {path.name for path in out.iterdir()} >= {"study.json", "results.json",
                                                     "report.html", STORE_FILE, "runs"}
    assert len(results["runs"]) == 8
    assert all(run["status"] == "finished" and not run["reused"] for run in results["runs"])
    names = [task["name"] for task in results["tasks"]]
    assert names[:3] == ["compression", "likelihood", "prior_sampling"]
    likelihood = next(task for task in results["tasks"] if task["name"] == "likelihood")
    rows = likelihood["metrics"][0]["rows"]
    assert rows["ae"]["reason"].startswith("no likelihood")
    assert "not comparable" in rows["ppca"]["reason"]  # a Gaussian density on Bernoulli data
    assert rows["vae"]["available"] and set(rows["vae"]["values"]) == {0, 1}
    assert len(results["claims"]) == 8 and results["summary"]
    [answer] = results["answers"]
    assert answer["roles"] == {"ae": "ae", "vae": "vae"}
    assert [row["task"] for row in answer["bottom_line"]] == names
    # No figure is won by a model the health checks exclude.
    for task in results["tasks"]:
        for metric in task["metrics"]:
            winner = metric["verdict"].get("winner")
            assert winner is None or not metric["rows"][winner].get("excluded")
    timing = results["timing"]
    assert timing["runs_executed"] == 8
    assert timing["overhead_seconds"] >= 0 and 0 <= timing["overhead_fraction"] < 1
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == results["summary"]
    with RunStore(out / STORE_FILE) as store:
        rows = store.select()
        assert len(rows) == 8 and {row.status for row in rows} == {"finished"}
        assert {row.model for row in rows} == {"pca", "ppca", "ae", "vae"}
        vae = store.select(model="vae", seed=1)[0]
        assert "compression.mse" in vae.metrics and vae.versions["aevae"]
        assert Path(vae.path, "model.safetensors").is_file()


def test_runs_that_other_code_trained_are_named(digits_study):
    import copy
    import re

    from aevae.report.text import mixed_versions, study_text
    from aevae.study.results import version_groups
    from aevae.study.versions import versions

    _, _, results = digits_study
    [group] = results["library_versions"]
    assert len(group["runs"]) == 8 and mixed_versions(results) == ""
    assert re.fullmatch("[0-9a-f]{12}", group["versions"]["aevae source"])
    assert results["study"]["versions"] == group["versions"] == versions()
    ours, torch_version = group["versions"]["aevae source"], group["versions"]["torch"]
    results = copy.deepcopy(results)
    older = results["runs"][3]  # as if reused from a store that older code filled
    older["versions"] = {**older["versions"], "aevae source": "0123456789ab", "torch": "2.11.0"}
    results["library_versions"] = version_groups(results["runs"])
    sentence = mixed_versions(results)
    assert sentence.startswith("the runs were trained under 2 sets of library versions")
    assert (f"aevae source {ours} (7 runs; this study's install), 0123456789ab (1 run); "
            f"torch {torch_version} (7 runs; this study's install), 2.11.0 (1 run)."
            ) in sentence and "numpy" not in sentence
    assert f"Not trained by this study's install: {older['label']} seed {older['seed']}." \
        in sentence and sentence.endswith("trains them again with this install.")
    assert f"Mixed versions: {sentence}" in study_text(results)
    from aevae.report.html import bottom_line_section, settings_section

    assert "⚠ Mixed versions: the runs were trained under 2 sets" in bottom_line_section(results)
    assert "0123456789ab" in settings_section(results)  # both sets under "library versions"
    # Every run reused from a store that other code filled: one set, but not this install's.
    results["study"]["versions"] = {**versions(), "aevae source": "fedcba987654"}
    for run in results["runs"]:
        run["versions"] = {**group["versions"], "aevae source": "0123456789ab"}
    results["library_versions"] = version_groups(results["runs"])
    assert mixed_versions(results) == (
        "all 8 runs were trained under other library versions than this study's install, and "
        "other code can give other numbers for the same seed: aevae source 0123456789ab (8 "
        "runs), this study's install fedcba987654. `aevae compare --retrain-other-versions` "
        "with the same options trains them again with this install.")
    # A study from before the install was recorded, and sets that differ only in the platform.
    results["study"]["versions"] = None
    assert mixed_versions(results) == ""
    results["runs"][0]["versions"] = {**results["runs"][0]["versions"], "platform": "Other-1"}
    results["library_versions"] = version_groups(results["runs"])
    assert mixed_versions(results).endswith(
        f"platform {group['versions']['platform']} (7 runs), Other-1 (1 run). Not from the "
        f"largest set: {results['runs'][0]['label']} seed 0. Train into a new folder to compare "
        "like with like.")


def test_a_study_retrains_runs_of_other_versions_only_when_asked(tmp_path, tiny_budget):
    from aevae.report.text import mixed_versions
    from aevae.study.versions import versions

    out = tmp_path / "upgraded"
    settings = StudySettings(data="digits", models="ae,vae", seeds=1, budget=tiny_budget,
                             tasks="compression", workers=1)
    first = run_study(settings, out, progress=False)
    weights = {run["id"]: Path(run["path"], "model.safetensors").read_bytes()
               for run in first["runs"]}
    older = first["runs"][1]  # the VAE, as if an earlier aevae had trained it into the store
    record_path = Path(older["path"], "run.json")
    record = json.loads(record_path.read_text())
    record["versions"] = {**record["versions"], "aevae source": "0123456789ab"}
    record_path.write_text(json.dumps(record))
    (Path(older["path"]) / "notes.txt").write_text("the user's own file")
    reused = run_study(settings, out, progress=False)
    assert reused["timing"]["runs_executed"] == 0
    assert f"Not trained by this study's install: {older['label']} seed 0." in mixed_versions(
        reused)
    retrained = run_study(StudySettings(**{**settings.to_dict(), "retrain_other_versions": True}),
                          out, progress=False)
    assert retrained["timing"]["runs_trained"] == 1
    for run in retrained["runs"]:
        assert run["reused"] == (run["id"] != older["id"]) and run["versions"] == versions()
        # Same seed, same code: the retrained run has the weights the first study trained.
        assert Path(run["path"], "model.safetensors").read_bytes() == weights[run["id"]]
    assert len(json.loads(record_path.read_text())["intervals"]) == 1  # trained afresh
    assert (Path(older["path"]) / "notes.txt").read_text() == "the user's own file"
    [group] = retrained["library_versions"]
    assert group["runs"] == [f"{run['label']} seed 0" for run in retrained["runs"]]


def test_the_profile_benchmark_reads_where_a_studys_time_went(digits_study, load_benchmark):
    out, _, results = digits_study
    study_profile = load_benchmark("study_profile")
    rows = study_profile.profile(out)
    assert len(rows) == 8 and {row["model"] for row in rows} == {"pca", "ppca", "ae", "vae"}
    for row in rows:  # each run's evaluation is its groups plus a little outside them
        assert row["training"] > 0 and set(row["groups"]) >= {"reconstruction", "generation"}
        assert 0 <= sum(row["groups"].values()) <= row["evaluation"]
    total = sum(row["training"] + row["evaluation"] for row in rows)
    text = study_profile.markdown(rows, "profile", projected_seeds=6, workers=4)
    assert text.count("| vae seed ") == 2 and "| share of the whole |" in text
    # 2 seeds measured: 6 seeds on 4 workers take 6 / 2 / 4 of the measured total.
    assert f"takes about **{total * 6 / 2 / 4 / 60:.1f} min**" in text


def test_the_full_studies_table_reads_wall_time_and_guards_from_results(digits_study,
                                                                          load_benchmark):
    _, _, results = digits_study
    full_studies = load_benchmark("full_studies")
    # Overlapping intervals count once, a gap between invocations not at all.
    runs = [{"intervals": [[0.0, 10.0], [100.0, 130.0]]}, {"intervals": [[5.0, 20.0]]},
            {"intervals": [[120.0, 140.0]]}]
    # Working 0-20 and 100-140; one run alone 0-5, 10-20, 100-120 and 130-140.
    assert full_studies.working_time(runs) == (60.0, 45.0)
    assert full_studies.clock(3725.0) == "1 h 2 min" and full_studies.clock(125.0) == "2 min"
    spans = [interval for run in results["runs"] for interval in run["intervals"]]
    wall, alone = full_studies.working_time(results["runs"])
    assert 0 <= alone <= wall <= max(end for _, end in spans) - min(start for start, _ in spans)
    lines = full_studies.guard_lines(results)
    barring = [guard for task in results["tasks"] for guard in task.get("guards") or []
               if guard.get("failing")]
    assert barring and len(lines) == len(barring)
    for line, guard in zip(lines, barring):
        assert f"best {guard['best']} " in line
        assert all(f"{model} " in line.split("barred")[1] for model in guard["failing"])


def test_report_is_self_contained_and_complete(digits_study):
    out, _, results = digits_study
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page.lower()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    for heading in ("AE or VAE on this data?", "The source discussion's claims, tested",
                    "Verdicts by task", "Verdict table",
                    "Reconstructions, prior samples and ex-post samples",
                    "Interpolations and latent traversals", "The latent space in two dimensions",
                    "Rate and distortion", "Training curves", "Runs and settings"):
        assert heading in page
    # The bottom line comes first: before the verdicts, the claims and every figure.
    assert page.index("AE or VAE on this data?") < page.index("Verdicts by task")
    assert page.index("<table class='bottom'>") < page.index("id='claims'")
    assert page.count("data:image/png;base64,") >= 4 * 5  # per model: 3 grids, 2 strips
    assert page.count("<svg") >= 10
    # Training curves: every seed of every neural model (pca and ppca have no epochs).
    curves = page.split("<h3>Training curves</h3>")[1].split("</div></div>")[0]
    loss = curves.split("<svg")[-1]
    assert loss.count("<polyline") == 2 * 2 and "One line per seed" in curves
    for sentence in results["summary"]:
        assert sentence.replace("'", "&#x27;").replace("&", "&amp;")[:40] in page


def test_rerun_reuses_every_finished_run(digits_study):
    out, settings, first = digits_study
    metrics = {run["id"]: Path(run["path"], "metrics.json").read_bytes()
               for run in first["runs"]}
    again = run_study(settings, out, progress=False)
    assert again["timing"]["runs_executed"] == 0
    assert all(run["reused"] for run in again["runs"])
    from aevae.report.text import study_text

    # Said as such (it read "0 run(s) trained or evaluated now ... study overhead 100.0%").
    assert (f"Nothing trained or evaluated now: all {len(again['runs'])} run(s) came from the "
            "store; wall time") in study_text(again)
    assert (f"<p>Nothing trained or evaluated now: all {len(again['runs'])} run(s) came from "
            "the store; wall time") in (out / "report.html").read_text()
    assert again["summary"] == first["summary"] and again["claims"] == first["claims"]
    for run in again["runs"]:
        assert Path(run["path"], "metrics.json").read_bytes() == metrics[run["id"]]


def test_report_and_runs_commands(digits_study, capsys):
    out, _, _ = digits_study
    (out / "report.html").unlink()
    before = json.loads((out / "results.json").read_text())
    code, printed, _ = run(capsys, "report", str(out))
    assert code == 0 and (out / "report.html").is_file() and "report:" in printed
    # Re-rendered, the study still says which runs it trained and how long it took.
    after = json.loads((out / "results.json").read_text())
    assert after["timing"] == before["timing"]
    for key in ("reused", "trained_now", "intervals_now"):
        assert [run[key] for run in after["runs"]] == [run[key] for run in before["runs"]]
    page = (out / "report.html").read_text()
    reused = sum(bool(run.get("reused")) for run in before["runs"])
    assert page.count("<td>reused from the store</td>") == reused
    assert page.count("<td>trained now</td>") == len(before["runs"]) - reused
    # With no results of the call that trained them (it was interrupted before writing),
    # the runs are "finished by an earlier call", not "reused".
    (out / "results.json").unlink()
    assert run(capsys, "report", str(out))[0] == 0
    page = (out / "report.html").read_text()
    assert page.count("<td>finished by an earlier call</td>") == len(before["runs"])
    (out / "results.json").write_text(json.dumps(before))
    assert run(capsys, "report", str(out))[0] == 0
    code, printed, _ = run(capsys, "runs", str(out), "--model", "vae", "--metric",
                           "compression.mse")
    lines = printed.strip().splitlines()
    assert code == 0 and len(lines) == 2 + 2  # header, rule, two seeds
    assert all(" vae " in line for line in lines[2:]) and "finished" in lines[2]
    code, printed, _ = run(capsys, "runs", str(out / STORE_FILE), "--status", "failed")
    assert code == 0 and "no runs match" in printed


KILLED_STUDY = textwrap.dedent("""
    import sys
    from aevae.study import StudySettings, run_study
    from aevae.study.settings import Budget
    budget = Budget(**{**%r, "evaluation": %r})
    run_study(StudySettings(data="digits", models="ae,vae", seeds=2, budget=budget),
              sys.argv[1], progress=False)
""")


def test_a_run_killed_before_its_first_checkpoint_is_trained_afresh(tmp_path, tiny_budget):
    """Killed while writing its first epoch, a run leaves training.json and weights but no
    checkpoint: the next study trains it from the start instead of refusing its folder."""
    settings = StudySettings(data="digits", models="vae", seeds=1, budget=tiny_budget,
                             tasks="compression")
    first = run_study(settings, tmp_path / "study", progress=False)
    run = tmp_path / "study" / "runs" / first["runs"][0]["id"]
    from aevae.training import CHECKPOINT_FILE

    for name in ("run.json", "metrics.json", CHECKPOINT_FILE):
        (run / name).unlink()
    again = run_study(settings, tmp_path / "study", progress=False)
    assert again["timing"]["runs_executed"] == 1
    assert (run / CHECKPOINT_FILE).is_file() and (run / "run.json").is_file()


def test_a_run_resumed_by_another_install_says_so_and_counts_all_its_training(tmp_path,
                                                                               tiny_budget):
    """Killed after training and before its record, a run resumed by another install was
    recorded as this install's alone, with this call's seconds only, and the study printed
    "nothing to train; a larger patience trains it further"."""
    import warnings

    from aevae.report.text import mixed_versions
    from aevae.training import CHECKPOINT_FILE

    settings = StudySettings(data="digits", models="vae", seeds=1, budget=tiny_budget,
                             tasks="compression")
    first = run_study(settings, tmp_path / "study", progress=False)
    run = tmp_path / "study" / "runs" / first["runs"][0]["id"]
    from aevae.study.tracking import read_history

    trained = sum(row["seconds"] for row in read_history(run))  # both epochs, before the kill
    assert trained > 0
    for name in ("run.json", "metrics.json"):
        (run / name).unlink()
    assert (run / CHECKPOINT_FILE).is_file()
    begun = json.loads((run / "begun.json").read_text())
    begun["versions"]["aevae source"] = "0123456789ab"  # the install that began it
    (run / "begun.json").write_text(json.dumps(begun))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run_study(settings, tmp_path / "study", progress=False)
    assert not [str(item.message) for item in caught if "nothing to train" in str(item.message)]
    record = json.loads((run / "run.json").read_text())
    assert record["resumed_after_epoch"] == record["epochs_run"] == 2
    assert record["versions"]["aevae source"].startswith("0123456789ab, then ")
    assert record["train_seconds"] >= trained  # it trained no epoch itself
    assert "aevae source 0123456789ab, then " in mixed_versions(again)
    page = (tmp_path / "study" / "report.html").read_text()
    assert "2 (best 2; resumed after epoch 2)" in page


def test_a_killed_study_resumes_and_trains_only_the_missing_runs(tmp_path, tiny_budget):
    out = tmp_path / "killed"
    slower = {**tiny_budget.to_dict(), "epochs": 10}
    evaluation = slower.pop("evaluation")
    script = KILLED_STUDY % (slower, evaluation)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", script, str(out)], env=environment)
    store_path = out / STORE_FILE
    finished: list[str] = []
    deadline = time.time() + 240
    try:
        while time.time() < deadline and process.poll() is None:
            if store_path.exists():
                try:
                    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as connection:
                        finished = [row[0] for row in connection.execute(
                            "SELECT id FROM runs WHERE status = 'finished'")]
                except sqlite3.OperationalError:
                    finished = []
                if finished:
                    break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert finished, "the study finished no run in time"
    assert process.returncode == -signal.SIGKILL
    # What the kill left complete on disk (run.json is written last): a run killed between its
    # run.json and the store's "finished" is complete too, and is reused, not retrained.
    complete = [path.name for path in (out / "runs").iterdir()
                if (path / "run.json").is_file() and (path / "metrics.json").is_file()]
    assert set(finished) <= set(complete)
    kept = {run_id: (out / "runs" / run_id / "metrics.json").read_bytes() for run_id in complete}
    # Its report, rendered now, says first that it is incomplete.
    from aevae.cli import main
    from aevae.report.text import study_text

    assert main(["report", str(out)]) == 0
    interim = json.loads((out / "results.json").read_text())
    assert study_text(interim).startswith(f"Incomplete: {4 - len(complete)} of 4 runs are not "
                                          "finished")
    assert "⚠ Incomplete: " in (out / "report.html").read_text()

    settings = StudySettings(data="digits", models="ae,vae", seeds=2,
                             budget=Budget(**{**slower, "evaluation": evaluation}))
    results = run_study(settings, out, progress=False)
    assert len(results["runs"]) == 4
    assert all(run["status"] == "finished" for run in results["runs"])
    assert results["timing"]["runs_executed"] == 4 - len(kept)
    for run in results["runs"]:
        assert run["reused"] == (run["id"] in kept)
    for run_id, content in kept.items():
        assert (out / "runs" / run_id / "metrics.json").read_bytes() == content
    with RunStore(store_path) as store:
        assert {row.status for row in store.select()} == {"finished"}


def test_user_tabular_data_gets_a_gaussian_decoder_and_tabular_figures(tmp_path, tiny_budget,
                                                                        capsys):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [4.0, -3.0, 2.0, 0.0, 1.0, 5.0]])
    labels = rng.integers(0, 2, 400)
    values = 100.0 * (centres[labels] + rng.standard_normal((400, 6)))
    names = np.array(["<script>alert(1)</script>", "b&q"])[labels]
    lines = ["f1,f2,f3,f4,f5,f6,kind"] + [
        ",".join(f"{value:.4f}" for value in row) + f",{name}" for row, name in zip(values, names)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    settings = StudySettings(data=str(path), labels="kind", models="ppca,vae", seeds=2,
                             budget=tiny_budget)
    results = run_study(settings, tmp_path / "out", progress=False)
    data = results["study"]["data"]
    assert data["likelihood"] == "gaussian-learned" and data["values"] == "real"
    assert data["preparation"]["transform"].startswith("standardised")
    assert data["splits"] == {"train": 288, "validation": 32, "test": 80}
    by_name = {task["name"]: task for task in results["tasks"]}
    assert by_name["denoising"]["skipped"].startswith("its corruptions and PSNR")
    assert [metric["name"] for metric in by_name["compression"]["metrics"]] == [
        "mse", "reconstruction_nll"]
    # Gaussian data: the PPCA's exact likelihood is comparable with the VAE's.
    log_likelihood = by_name["likelihood"]["metrics"][0]["rows"]
    assert log_likelihood["ppca"]["available"] and log_likelihood["vae"]["available"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Samples against the data" in page and "data:image/png" not in page
    # The CLI's commands on a study's run load the same splits, rescaled as in training.
    run_directory = Path(next(run["path"] for run in results["runs"] if run["entry"] == "vae"))
    reloaded = _load_run_data(run_directory, None, None)
    prepared = prepare_data(settings).dataset
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(reloaded, split).x, getattr(prepared, split).x)
    study_metrics = (run_directory / "metrics.json").read_text()
    code, out, err = run(capsys, "evaluate", str(run_directory), "--metrics", "reconstruction")
    assert code == 0, err
    assert (run_directory / "metrics.json").read_text() == study_metrics  # the study's, kept
    evaluated = json.loads((run_directory / "evaluation.json").read_text())["metrics"]
    trained = json.loads(study_metrics)["metrics"]
    assert evaluated["reconstruction"]["mse"]["value"] == pytest.approx(
        trained["reconstruction"]["mse"]["value"])


def test_presets_plan_the_sources_questions():
    sweep = StudySettings(data="digits", preset="latent-sweep", seeds=1)
    entries, preset = roster_for(sweep)
    assert preset["sweep"] == "latent_dim" and len(entries) == 10
    plans = plan_runs(sweep, prepare_data(sweep), entries)
    assert sorted({plan.options["latent_dim"] for plan in plans}) == [2, 4, 8, 16, 32]
    ladder, _ = roster_for(StudySettings(preset="ladder"))
    assert [entry.model for entry in ladder] == [
        "ae", "wae_mmd", "fixed_variance_vae", "vae", "independent_vae"]
    betas, _ = roster_for(StudySettings(preset="beta-sweep"))
    assert betas[0].key == "ae"  # beta = 0: the reference each beta is compared with
    assert [entry.options["beta"] for entry in betas[1:]] == [0.25, 0.5, 1, 2, 4, 8]


def test_runs_are_identified_by_what_determines_them():
    settings = StudySettings(data="digits", models="ae,vae", seeds=2)
    data = prepare_data(settings)
    entries, _ = roster_for(settings)
    first = [plan.id for plan in plan_runs(settings, data, entries)]
    assert first == [plan.id for plan in plan_runs(settings, data, entries)]
    assert len(set(first)) == 4
    other = StudySettings(data="digits", models="ae,vae", seeds=2, epochs=7)
    assert not set(first) & {plan.id for plan in plan_runs(other, data, entries)}
    # Steps replayed from a CUDA graph draw other noise: other runs on a GPU; on the CPU they
    # step eagerly, so the runs are the same.
    graphed = StudySettings(data="digits", models="ae,vae", seeds=2, cuda_graphs=True,
                            device="cpu")
    assert first == [plan.id for plan in plan_runs(graphed, data, entries)]
    from aevae.study.runner import run_identity
    budget = settings.training_budget
    on_gpu = [run_identity(entries[0], {}, 0, data, budget, "cuda", graphs)
              for graphs in (False, True)]
    assert on_gpu[0] != on_gpu[1]


def test_test_examples_that_copy_training_examples_are_counted_and_said(tmp_path):
    """Rows repeated in the data land in both splits: the study says how many test examples
    are copies of training ones (figures on them reward memory), and nothing when none is."""
    from aevae.data.validation import rows_also_in
    from aevae.report.html import data_paragraph
    from aevae.report.text import copies_sentence

    rows = np.random.default_rng(0).normal(size=(50, 6))
    path = tmp_path / "repeated.npy"
    np.save(path, np.repeat(rows, 6, axis=0))
    description = prepare_data(StudySettings(data=str(path))).description
    tests = description["splits"]["test"]
    assert description["test_copies_of_training"] == tests == 60  # 6 copies of 50: all
    sentence = copies_sentence(description)
    assert sentence.startswith("Repeated rows: 60 of the 60 test examples (100%) are copies")
    assert sentence in data_paragraph({"data": description})
    digits = prepare_data(StudySettings(data="digits")).description
    assert digits["test_copies_of_training"] == 0 and copies_sentence(digits) is None
    # Exact matches only, whatever the layout; -0.0 and 0.0 aside, equal values are equal rows.
    assert rows_also_in(rows[:10] + 1e-12, rows) == 0
    assert rows_also_in(rows[[3, 3, 7]].astype(np.float32), rows.astype(np.float32)) == 3
    assert rows_also_in(rows[:0], rows) == 0


def test_a_limited_study_trains_on_the_first_examples_and_keeps_the_other_splits():
    from aevae.study.runner import data_record

    full = StudySettings(data="digits", models="ae", seeds=1)
    limited = StudySettings(data="digits", models="ae", seeds=1, limit=300)
    whole, first = prepare_data(full), prepare_data(limited)
    assert first.description["splits"]["train"] == 300 < whole.description["splits"]["train"]
    assert first.description["limit"] == 300 and whole.description["limit"] is None
    np.testing.assert_array_equal(first.dataset.train.x, whole.dataset.train.x[:300])
    np.testing.assert_array_equal(first.dataset.test.x, whole.dataset.test.x)
    np.testing.assert_array_equal(first.dataset.validation.x, whole.dataset.validation.x)
    entries, _ = roster_for(full)
    assert {plan.id for plan in plan_runs(full, whole, entries)}.isdisjoint(
        plan.id for plan in plan_runs(limited, first, entries))
    assert data_record(limited, first)["limit"] == 300  # evaluate redoes the same splits
    from aevae.report.html import data_paragraph
    assert "training limited to the first 300 examples" in data_paragraph(
        {"data": first.description})
    with pytest.raises(ValueError, match="limit must be a positive number of examples, got 0"):
        StudySettings(limit=0)
    beyond = prepare_data(StudySettings(data="digits", models="ae", seeds=1, limit=100_000))
    assert beyond.description["limit"] is None  # nothing was cut: the same runs as no limit
    assert beyond.description["fingerprint"] == whole.description["fingerprint"]


@pytest.mark.parametrize("arguments, message", [
    (["--models", "vae,nonsense"], "unknown model 'nonsense'"),
    (["--models", "vae:beta=abc"], "beta"),
    (["--seeds", "0"], "seeds must be at least 1"),
    (["--limit", "0"], "limit must be a positive number of examples, got 0"),
    (["--likelihood", "poisson"], "unknown likelihood 'poisson'"),
    (["--data", "no-such-file.npy"], "no such file"),
    (["--models", "ae,conditional_ae,cvae"], "conditional_ae reads labels with every example, "
     "which the study's tasks do not pass; compare conditional and semi-supervised models"),
    (["--models", "m2"], "m2 reads labels with every example"),
    (["--models", "vrnn"], "vrnn reads lengths with every example"),
])
def test_compare_bad_input_is_one_line_and_exit_2(tmp_path, capsys, arguments, message):
    code, _, err = run(capsys, "compare", "--out", str(tmp_path / "x"), "--quiet", *arguments)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing written for a refused study


def test_bernoulli_on_real_data_is_refused(tmp_path, capsys):
    path = tmp_path / "real.npy"
    np.save(path, np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32))
    code, _, err = run(capsys, "compare", "--data", str(path), "--likelihood", "bernoulli",
                       "--out", str(tmp_path / "x"), "--quiet")
    assert code == 2 and "needs values in [0, 1]" in err


def test_too_little_data_is_refused_before_anything_is_written(tmp_path, capsys):
    """12 rows left 2 test examples and the study died evaluating its first run ("latent_holes
    needs at least three codes"); --limit 5 died fitting the ex-post mixture."""
    rows = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    np.save(tmp_path / "tiny.npy", rows[:12])
    np.save(tmp_path / "table.npy", rows)
    code, _, err = run(capsys, "compare", "--data", str(tmp_path / "tiny.npy"),
                       "--out", str(tmp_path / "a"), "--quiet")
    assert code == 2 and err.strip() == (
        "aevae: error: tiny: too few training examples for a study (9 left after the test and "
        "validation splits; at least 20 needed)")
    code, _, err = run(capsys, "compare", "--data", str(tmp_path / "table.npy"), "--limit", "5",
                       "--out", str(tmp_path / "b"), "--quiet")
    assert code == 2 and "(--limit 5 leaves 5; at least 20 needed)" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_roster_the_data_cannot_take_changes_no_file(tmp_path, capsys, tiny_budget):
    """A conv network asked for a table: the note said the study would now describe it,
    study.json was rewritten and a failed run left in the store before the refusal."""
    path = tmp_path / "table.npy"
    np.save(path, np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32))
    out = tmp_path / "study"
    run_study(StudySettings(data=str(path), models="ae", seeds=1, budget=tiny_budget), out,
              progress=False)
    before = {name: (out / name).read_bytes() for name in ("study.json", "results.json")}
    runs = sorted(path.name for path in (out / "runs").iterdir())
    code, _, err = run(capsys, "compare", "--data", str(path), "--models", "ae",
                       "--network", "conv", "--out", str(out), "--quiet")
    assert code == 2 and err.startswith("aevae: error: ae: conv network needs square images")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(path.name for path in (out / "runs").iterdir()) == runs
    store = RunStore(out / STORE_FILE)
    assert {row.status for row in store.select()} == {"finished"}
    store.close()


def _run_metrics(results) -> list[dict]:
    metrics = []
    for run in sorted(results["runs"], key=lambda run: run["seed"]):
        values = json.loads(Path(run["path"], "metrics.json").read_text())
        values.pop("seconds")
        metrics.append(values)
    return metrics


@pytest.mark.parametrize("memory_gib, cores, expected", [(139, 16, 8), (80, 16, 8),
                                                         (24, 16, 2), (16, 16, 1), (8, 16, 1),
                                                         (139, 4, 4)])
def test_a_gpu_is_shared_by_workers_by_its_memory(monkeypatch, memory_gib, cores, expected):
    from types import SimpleNamespace

    import torch

    from aevae.study.runner import default_workers

    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=memory_gib * 2**30))
    monkeypatch.setattr("aevae.study.runner.usable_cores", lambda: cores)
    assert default_workers(torch.device("cuda", 0)) == expected
    assert default_workers(torch.device("cpu")) == min(4, cores)


def test_workers_count_the_cores_this_process_may_use(monkeypatch):
    # A study pinned to 2 of 16 cores (taskset, a container's cpuset) starts 2 workers, not 4.
    import os

    import torch

    from aevae.study.runner import default_workers
    from aevae.training.devices import usable_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 7}, raising=False)
    assert usable_cores() == 2
    assert default_workers(torch.device("cpu")) == 2
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: the machine's count
    assert usable_cores() == 16


def test_results_do_not_depend_on_the_number_of_workers(tmp_path, tiny_budget):
    outcomes = []
    for workers in (1, 2):
        settings = StudySettings(data="digits", models="ae", seeds=2, budget=tiny_budget,
                                 workers=workers)
        results = run_study(settings, tmp_path / f"workers-{workers}", progress=False)
        outcomes.append((_run_metrics(results), results["tasks"]))
    assert outcomes[0] == outcomes[1]


def test_a_study_on_ray_matches_the_local_study(tmp_path, tiny_budget):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    outcomes = []
    for executor in ("local", "ray"):
        settings = StudySettings(data="digits", models="ae", seeds=2, budget=tiny_budget,
                                 workers=2, executor=executor)
        results = run_study(settings, tmp_path / executor, progress=False)
        outcomes.append((_run_metrics(results), results["tasks"]))
        store = sqlite3.connect(tmp_path / executor / "runs.sqlite")
        statuses = [row[0] for row in store.execute("select status from runs")]
        store.close()
        assert statuses == ["finished", "finished"]
    assert outcomes[0] == outcomes[1]
    assert "Ray tasks" in json.loads((tmp_path / "ray" / "study.json").read_text())["device"]


def test_a_study_on_data_with_known_factors_scores_disentanglement(tmp_path, tiny_budget):
    settings = StudySettings(data="dsprites-small", models="ae,beta_tcvae", seeds=2,
                             budget=tiny_budget, tasks="disentanglement,compression")
    results = run_study(settings, tmp_path / "shapes", progress=False)
    assert [task["name"] for task in results["tasks"]] == ["disentanglement", "compression"]
    disentanglement = results["tasks"][0]
    assert disentanglement["skipped"] is None
    names = [metric["name"] for metric in disentanglement["metrics"]]
    assert names == ["mig", "factor_vae_score", "beta_vae_score", "dci_disentanglement",
                     "dci_completeness", "dci_informativeness", "sap", "modularity",
                     "explicitness"]
    for metric in disentanglement["metrics"]:
        for row in metric["rows"].values():
            assert row["available"] and 0.0 <= row["mean"] <= 1.0
    metrics = json.loads(Path(results["runs"][0]["path"], "metrics.json").read_text())
    group = metrics["metrics"]["disentanglement"]
    assert group["tabulated"] and group["sizes"]["train_points"] == 200
    claims = {claim["claim"]: claim["status"] for claim in results["claims"]}
    assert set(claims.values()) == {"not tested"}  # no AE-VAE pair, no sampling tasks
    assert results["no_pair"] == "the roster has no AE-VAE pair: it has no vae"
    assert {part["reason"] for claim in results["claims"] for part in claim["parts"]} == {
        results["no_pair"]}
    from aevae.report.text import study_text

    text = study_text(results)
    assert "Not answered: the roster has no AE-VAE pair: it has no vae" in text
    assert "claims: not tested (8 claims, each comparing an AE with a VAE" in text
    page = (tmp_path / "shapes" / "report.html").read_text()
    assert "Disentanglement" in page and "traversals" in page
    with pytest.raises(ValueError, match="unknown task"):
        run_study(StudySettings(data="digits", tasks="nonsense"), tmp_path / "x")


def test_a_study_with_more_tasks_evaluates_finished_runs_without_retraining(tmp_path,
                                                                            tiny_budget):
    out = tmp_path / "growing"
    first = run_study(StudySettings(data="digits", models="ae,vae", seeds=1, budget=tiny_budget,
                                    tasks="compression"), out, progress=False)
    weights = {run["id"]: Path(run["path"], "model.safetensors").read_bytes()
               for run in first["runs"]}
    grown = run_study(StudySettings(data="digits", models="ae,vae", seeds=1, budget=tiny_budget,
                                    tasks="compression,manipulation,variation"), out,
                      progress=False)
    assert [task["name"] for task in grown["tasks"]] == ["compression", "manipulation",
                                                         "variation"]
    assert grown["timing"]["runs_executed"] == 2
    for run in grown["runs"]:
        assert not run["reused"] and not run["trained_now"] and len(run["intervals"]) == 2
        assert Path(run["path"], "model.safetensors").read_bytes() == weights[run["id"]]
        metrics = json.loads(Path(run["path"], "metrics.json").read_text())["metrics"]
        assert {"reconstruction", "manipulation", "variation"} <= set(metrics)
    manipulation = grown["tasks"][1]["metrics"][0]["rows"]
    assert 0 <= manipulation["vae"]["mean"] <= 1
    variation = next(metric for metric in grown["tasks"][2]["metrics"]
                     if metric["name"] == "variation_diversity")["rows"]
    assert variation["ae"]["mean"] > 0  # input noise is the AE's only source of variation
    page = (out / "report.html").read_text()
    assert "evaluated now (trained before)" in page
    again = run_study(StudySettings(data="digits", models="ae,vae", seeds=1, budget=tiny_budget,
                                    tasks="compression,manipulation,variation"), out,
                      progress=False)
    assert again["timing"]["runs_executed"] == 0


def test_the_ray_executor_without_ray_is_a_one_line_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, out, err = run(capsys, "compare", "--executor", "ray", "--out", str(tmp_path / "s"))
    assert code == 2 and "pip install 'aevae[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_compare_patience_overrides_the_budgets(tmp_path, capsys, monkeypatch, tiny_budget):
    settings = StudySettings(budget=tiny_budget, patience=2)
    assert settings.training_budget.patience == 2
    assert settings.training_budget.epochs == tiny_budget.epochs
    assert StudySettings(budget="quick").training_budget.patience == 8  # the budget's own
    with pytest.raises(ValueError, match="patience must be at least 1"):
        StudySettings(patience=0)
    seen = []

    def stop_before_running(settings, out, **options):
        seen.append(settings)
        raise ValueError("stopped here")

    monkeypatch.setattr("aevae.study.runner.run_study", stop_before_running)
    code, _, err = run(capsys, "compare", "--out", str(tmp_path / "x"), "--quiet",
                       "--patience", "3")
    assert code == 2 and "stopped here" in err
    assert seen[0].patience == 3 and seen[0].training_budget.patience == 3


@pytest.mark.parametrize("roster", ["", "  ", " , ,"])
def test_an_empty_roster_is_refused_not_replaced_by_the_default(tmp_path, capsys, roster):
    code, _, err = run(capsys, "compare", "--out", str(tmp_path / "x"), "--quiet",
                       "--models", roster)
    assert code == 2 and "the roster is empty" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="the roster is empty"):
        roster_for(StudySettings(preset="ladder", models=roster))


def test_the_run_count_is_what_this_invocation_trained_or_evaluated(tmp_path, tiny_budget):
    from aevae.study.results import aggregate
    from aevae.study.runner import study_timing

    out = tmp_path / "counted"
    settings = StudySettings(data="digits", models="ae,vae", seeds=1, budget=tiny_budget,
                             tasks="compression", workers=1)
    first = run_study(settings, out, progress=False)
    assert (first["timing"]["runs_executed"], first["timing"]["runs_trained"],
            first["timing"]["runs_evaluated"]) == (2, 2, 0)
    # The store lost (or rebuilt): its complete runs are indexed again, not counted as trained.
    for path in out.glob(f"{STORE_FILE}*"):
        path.unlink()
    again = run_study(settings, out, progress=False)
    assert (again["timing"]["runs_executed"], again["timing"]["runs_trained"]) == (0, 0)
    assert again["timing"]["train_seconds"] == 0 and again["timing"]["busy_seconds"] == 0
    assert all(run["reused"] for run in again["runs"])
    for run in again["runs"]:
        assert len(json.loads(Path(run["path"], "run.json").read_text())["intervals"]) == 1
    with RunStore(out / STORE_FILE) as store:
        assert [row.status for row in store.select()] == ["finished", "finished"]
    # Work marked by another study (sharing the store, at the same time) is not this one's.
    marks = {json.loads(Path(run["path"], "run.json").read_text())["invocations"][0]
             for run in first["runs"]}
    assert len(marks) == 1 and None not in marks
    theirs = aggregate(out, since=0.0, invocation="another study")
    assert all(run["reused"] and not run["trained_now"] for run in theirs["runs"])
    assert study_timing(theirs["runs"], 1.0, 0.0)["runs_executed"] == 0
    ours = aggregate(out, since=0.0, invocation=marks.pop())
    assert study_timing(ours["runs"], 1.0, 0.0)["runs_trained"] == 2


def test_the_full_budgets_estimate_states_seconds_and_evaluation(tmp_path):
    from aevae.study.runner import _duration, estimate_message, metric_groups, study_tasks

    assert _duration(0.3) == "under a second" and _duration(40.2) == "about 40 s"
    assert _duration(59.7) == "about 60 s" and _duration(90) == "about 2 min"
    assert _duration(2 * 3600 + 65) == "about 2 h 1 min"
    settings = StudySettings(data="digits", models="pca,ae,vae", seeds=1, budget="full")
    data = prepare_data(settings)
    entries, _ = roster_for(settings)
    plans = plan_runs(settings, data, entries)
    with RunStore(tmp_path / STORE_FILE) as store:
        message = estimate_message(plans, data, settings.training_budget, store, 2,
                                   groups=metric_groups(data.info, study_tasks(settings)))
    assert " 0 min" not in message and "of training for 2 neural run(s)" in message
    assert "of evaluation (log p(x) with k = 5000" in message and "anomaly" in message


def test_the_terminal_answer_starts_with_the_bottom_line(digits_study):
    from aevae.cli import _study_summary

    _, _, results = digits_study
    text = _study_summary(results)
    lines = text.splitlines()
    assert lines[0].startswith("AE or VAE on this data? ae against vae on digits")
    assert lines[1].split()[:4] == ["goal", "figure", "ae", "vae"]
    assert lines[3].startswith("compress ")
    assert "In short: " in text and "Decoder likelihood: bernoulli" in text
    assert "Not measured on this data: disentangle" in text  # skipped tasks, with the reason
    assert text.index("In short: ") < text.index("Verdicts by task") < text.index("claims")


def test_every_registered_figure_reads_a_key_that_evaluate_writes(digits_study):
    """A task reads its figures through paths into evaluate()'s result: a renamed key would
    turn a figure into "not measured" everywhere. On digits (labels, values in [0, 1]) every
    figure of every task but disentanglement must be measured for some model, and so must each
    guard's figure."""
    from aevae.study.tasks import TASKS, metric_named

    _, _, results = digits_study
    ran = {task["name"]: task for task in results["tasks"]}
    assert set(ran) == set(TASKS)
    for name, task in ran.items():
        if name == "disentanglement":
            assert task["skipped"]
            continue
        assert not task["skipped"], name
        for metric in task["metrics"]:
            measured = [row for row in metric["rows"].values() if row["available"]]
            reasons = {row.get("reason") for row in metric["rows"].values()}
            assert measured and "not measured" not in reasons, (name, metric["name"], reasons)
        for guard in TASKS[name].guards:
            metric_named(*guard.metric)  # the guard names a registered figure
            assert any(key in results["labels"] for key in
                       next(item for item in task["guards"]
                            if tuple(item["metric"]) == guard.metric)["means"])


def test_a_model_that_failed_on_every_seed_stays_in_the_answer(tmp_path, tiny_budget,
                                                                monkeypatch):
    from aevae.report.text import study_text
    from aevae.study import runner
    from aevae.training import TrainingDivergedError

    execute = runner.execute_run

    def diverging(plan, *arguments):
        if plan.entry.key == "vae":
            raise TrainingDivergedError("loss is nan at epoch 1")
        return execute(plan, *arguments)

    monkeypatch.setattr(runner, "execute_run", diverging)
    out = tmp_path / "diverged"
    results = run_study(StudySettings(data="digits", models="ae,vae", seeds=2,
                                      budget=tiny_budget, tasks="compression", workers=1),
                        out, progress=False)
    rows = results["tasks"][0]["metrics"][0]["rows"]
    assert rows["vae"] == {"available": False, "name": "vae",
                           "reason": "training failed (loss is nan at epoch 1) (every seed)"}
    [row] = results["answers"][0]["bottom_line"]
    assert "training failed" in row["reason"] and "not in the roster" not in json.dumps(results)
    assert "vae is not compared: training failed" in study_text(results)
    assert "Incomplete" not in study_text(results)  # failed, not unfinished: rerunning won't help
    assert "training failed (loss is nan" in (out / "report.html").read_text()


def test_a_moved_study_reads_its_own_runs_and_damaged_files_are_named(digits_study, tmp_path,
                                                                      capsys):
    import shutil

    out, _, first = digits_study
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    code, printed, _ = run(capsys, "report", str(moved))
    assert code == 0 and "not finished" not in printed
    from aevae.study.results import aggregate

    again = aggregate(moved)
    assert all(run["path"].startswith(str(moved)) for run in again["runs"])
    assert again["summary"] == first["summary"]
    record = Path(again["runs"][0]["path"], "run.json")
    record.write_text("{}")
    code, _, err = run(capsys, "report", str(moved))
    assert code == 2 and err.strip().endswith(
        "run.json: not a finished run's run.json (missing or damaged: started, finished, "
        "epochs_run, best_epoch, train_seconds, evaluation_seconds, device, versions, history); "
        "delete the run's folder to train it again")
    (moved / "study.json").write_text('{"x": 1}')
    code, _, err = run(capsys, "report", str(moved))
    assert code == 2 and "study.json: not a study's study.json (missing or damaged: settings" \
        in err and len(err.strip().splitlines()) == 1


def test_a_study_folder_holds_one_datas_study(tmp_path, tiny_budget):
    """Another study of the same data extends the folder, with a note; a study of other data
    is refused (it silently replaced study.json, results and report before)."""
    out = tmp_path / "study"
    settings = StudySettings(data="digits", models="pca", seeds=1, budget=tiny_budget,
                             tasks="compression")
    run_study(settings, out, progress=False)
    notes = []
    run_study(dataclasses.replace(settings, models="pca,ppca"), out, progress=False,
              notify=notes.append)
    assert any("held this data's study with other settings (models)" in note for note in notes)
    table = tmp_path / "table.npy"
    np.save(table, np.random.default_rng(0).random((150, 5)).astype(np.float32))
    notes.clear()
    run_study(dataclasses.replace(settings, limit=500), out, progress=False,
              notify=notes.append)  # the same data, a first look: other settings
    assert any("other settings (limit, models)" in note for note in notes)
    before = (out / "study.json").read_text()
    with pytest.raises(ValueError, match="holds a study of digits \\(digits\\), not of .*"
                                         "table.npy"):
        run_study(dataclasses.replace(settings, data=str(table)), out, progress=False)
    assert (out / "study.json").read_text() == before


def test_a_study_run_records_the_tables_column_names(tmp_path, tiny_budget):
    """So that a .csv written from the run (aevae sample, vary) is headed with them, as for a
    run `aevae train` made."""
    values = np.random.default_rng(0).random((150, 3))
    table = tmp_path / "table.csv"
    table.write_text("u,v,w\n" + "\n".join(",".join(f"{x:.5f}" for x in row) for row in values))
    results = run_study(StudySettings(data=str(table), models="pca", seeds=1,
                                      budget=tiny_budget, tasks="compression"),
                        tmp_path / "study", progress=False)
    run = tmp_path / "study" / "runs" / results["runs"][0]["id"]
    assert json.loads((run / "data.json").read_text())["feature_names"] == ["u", "v", "w"]
    assert main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s.csv")]) == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "u,v,w"


def test_a_study_whose_tasks_do_not_fit_the_data_is_refused_before_training(tmp_path,
                                                                             tiny_budget):
    """It trained every run, then printed an empty table."""
    settings = StudySettings(data="digits", models="pca", seeds=1, budget=tiny_budget,
                             tasks="disentanglement")
    with pytest.raises(ValueError, match="no task asked for fits digits \\(disentanglement: "):
        run_study(settings, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


def test_an_interrupted_run_is_missing_not_a_failed_one(tmp_path, tiny_budget):
    """`aevae runs` marks runs whose process is gone as interrupted; the next report read
    them as training failures ("training failed (interrupted ...)") in the health checks."""
    from aevae.study.results import aggregate
    from aevae.study.store import INTERRUPTED

    settings = StudySettings(data="digits", models="pca,ae", seeds=2, budget=tiny_budget,
                             tasks="compression")
    out = tmp_path / "study"
    first = run_study(settings, out, progress=False)
    run = next(run for run in first["runs"] if run["entry"] == "ae" and run["seed"] == 1)
    for name in ("run.json", "metrics.json"):
        (out / "runs" / run["id"] / name).unlink()
    with RunStore(out / STORE_FILE) as store:
        store.fail(run["id"], INTERRUPTED)
    results = aggregate(out)
    assert not any("training failed" in json.dumps(record)
                   for record in results["health"].values())
    assert next(r for r in results["runs"] if r["id"] == run["id"])["status"] == "missing"
