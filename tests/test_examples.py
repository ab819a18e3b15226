"""The scripts under examples/: each runs with --quick and prints the figures it promises."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


def run_example(name: str, *arguments: str, cwd: Path) -> str:
    """Run examples/NAME --quick in a fresh interpreter in ``cwd``; its stdout and stderr."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["OMP_NUM_THREADS"] = "1"  # one CPU, as --quick promises; shared cores run it faster
    if "AEVAE_DATA_DIR" in os.environ:  # set by conftest to the shared datasets
        env["AEVAE_DATA_DIR"] = os.environ["AEVAE_DATA_DIR"]
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *arguments, "--quick"],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return result.stdout


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_csv_study(tmp_path):
    output = run_example("own_csv_study.py", "my-study", cwd=tmp_path)
    study = tmp_path / "my-study"
    assert (study / "breast_cancer.csv").is_file()
    assert "AE or VAE on breast_cancer.csv?" in output
    rows = re.findall(rf"^  (.+): .+ is better\): ae {NUMBER}, vae {NUMBER} -> (.+)$", output,
                      re.MULTILINE)
    assert [row[0] for row in rows] == ["compress", "classify with few labels"], output
    report = re.search(r"^report: (.+)$", output, re.MULTILINE)
    assert report, output
    assert (tmp_path / report.group(1)).is_file()
    assert (study / "report.html").is_file()


def test_own_csv_study_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert load_example("own_csv_study.py").main([str(folder), "--quick"]) == 2
    assert "choose another folder" in capsys.readouterr().err
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


def test_sklearn_pipeline(tmp_path):
    output = run_example("sklearn_pipeline.py", cwd=tmp_path)
    candidates = re.findall(rf"model=(ae|vae) +latent_dim=(\d+) +{NUMBER} \+- {NUMBER}", output)
    assert len(candidates) == 4, output
    best = re.search(r"^best parameters: \{'latent_dim': (\d+), 'model': '(ae|vae)'\}", output,
                     re.MULTILINE)
    assert best, output
    accuracy = float(re.search(rf"^test accuracy: {NUMBER}$", output, re.MULTILINE).group(1))
    assert 0.5 < accuracy <= 1.0  # ten classes: chance is 0.1


def _detector_figures(output: str) -> dict[str, tuple[float, float]]:
    found = re.findall(rf"^(.+?) +ROC AUC {NUMBER} +average precision {NUMBER}$", output,
                       re.MULTILINE)
    return {name: (float(auc), float(precision)) for name, auc, precision in found}


def test_anomaly_table(tmp_path):
    output = run_example("anomaly_table.py", cwd=tmp_path)
    odds = Path(os.environ.get("AEVAE_DATA_DIR", "/nonexistent")) / "odds" / "cardio.mat"
    assert output.startswith("ODDS cardio" if odds.is_file() else "breast cancer"), output
    figures = _detector_figures(output)
    assert set(figures) == {"aevae AE", "aevae VAE", "IsolationForest"}, output
    for auc, precision in figures.values():
        assert 0.0 <= auc <= 1.0 and 0.0 <= precision <= 1.0


def test_anomaly_table_without_odds_uses_breast_cancer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AEVAE_DATA_DIR", str(tmp_path))  # no odds/ folder here
    assert load_example("anomaly_table.py").main(["--quick"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("breast cancer"), output
    figures = _detector_figures(output)
    assert len(figures) == 3, output
    for auc, precision in figures.values():
        assert 0.0 <= auc <= 1.0 and 0.0 <= precision <= 1.0

