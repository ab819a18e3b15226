"""The study report: one self-contained ``report.html``.

Figures are inline SVG (charts) and PNG data URIs (image grids); there is no script and no
network resource, so it reads the same offline, in a mail attachment or with JavaScript off.
Every string that can come from the user (dataset, file, class and option names) is escaped.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from ..io import atomic_write_text
from . import svg
from .figures import image_grid
from .png import png_data_uri

REPORT_FILE = "report.html"
GRID_WIDTH = 240  # target width in screen pixels of one image grid

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 1.5rem 4rem;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{margin-bottom:.3rem}
p.lede{color:#444;margin-top:0}nav a{margin-right:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e3e3e3;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.number{font-variant-numeric:tabular-nums;white-space:nowrap}
.holds{color:#176d2b;font-weight:600}.fails{color:#a4161a;font-weight:600}
.inconclusive{color:#8a6d00;font-weight:600}.untested{color:#777}
.flag{color:#a4161a}.muted{color:#666}.best{font-weight:600}
ul.answer li{margin:.35rem 0}.figures{display:flex;flex-wrap:wrap;gap:1.2rem}
figure{margin:0}figcaption{font-size:.85rem;color:#555;max-width:32rem}
img.grid{image-rendering:pixelated;border:1px solid #ddd}
.chart svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 .2rem}
details{margin:.4rem 0}pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}
"""

STATUS_CLASS = {"holds": "holds", "does not hold": "fails", "inconclusive": "inconclusive",
                "not tested": "untested"}


def e(text) -> str:
    return html.escape(str(text), quote=True)


def number(value, digits: int = 3) -> str:
    from ..study.verdicts import format_value

    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format_value(float(value), digits)


# ----- tables ----------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (cells already built from escaped parts)."""
    head = "".join(f"<th>{e(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell if raw else e(cell)}</td>" for cell in row) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _interval_text(row: dict, digits: int) -> str:
    text = number(row["mean"], digits)
    if row.get("low") is not None:
        text += f" [{number(row['low'], digits)}, {number(row['high'], digits)}]"
    if row.get("spread") is not None:
        text += f" ± {number(row['spread'], 2)} s.e."
    return text


def _margin(verdict: dict, digits: int) -> str:
    if "difference" not in verdict:
        return ""
    text = number(verdict["difference"], digits)
    if verdict.get("low") is not None:
        text += f" [{number(verdict['low'], digits)}, {number(verdict['high'], digits)}]"
    return text


def verdict_table(results: dict) -> str:
    labels = results["labels"]
    rows = []
    for task in results["tasks"]:
        if task["skipped"]:
            rows.append([e(task["title"]), e(task["question"]),
                         f'<span class="muted">skipped: {e(task["skipped"])}</span>', "", "",
                         ""])
            continue
        for index, metric in enumerate(task["metrics"]):
            verdict = metric["verdict"]
            title = e(task["title"]) if index == 0 else ""
            if verdict["status"] == "not compared":
                rows.append([title, e(metric["label"]),
                             f'<span class="muted">{e(verdict["reason"])}</span>', "", "", ""])
                continue
            seeds = (f"{verdict['seeds_ahead']} of {verdict['seeds']}"
                     if "seeds" in verdict else "")
            status = verdict["status"]
            css = "holds" if status == "clear winner" else "inconclusive"
            if verdict.get("negligible"):
                status += " (a tie: under 0.5% apart)"
            rows.append([
                title, e(metric["label"]) + f' <span class="muted">({e(_better(metric))})</span>',
                f'<span class="{css}">{e(status)}</span>',
                f"<b>{e(labels[verdict['winner']])}</b> over {e(labels[verdict['runner_up']])}",
                e(_margin(verdict, metric["digits"])), e(seeds)])
    return _table(["task", "figure", "verdict", "leader", "margin [95% CI]",
                   "seeds ahead"], rows, raw=True)


def _better(metric: dict) -> str:
    return "higher is better" if metric["direction"] == "higher" else "lower is better"


def claims_table(results: dict) -> str:
    labels = results["labels"]
    rows = []
    for claim in results["claims"]:
        parts = []
        for part in claim["parts"]:
            if part["status"] == "not tested" or "first_mean" not in part:
                parts.append(f"{e(part['text'])}: <span class='muted'>"
                             f"{e(part.get('reason', 'not tested'))}</span>")
                continue
            digits = part["digits"]
            first = labels.get(part["first"], part["first"])
            second = labels.get(part["second"], part["second"])
            interval = ""
            if part.get("low") is not None:
                interval = f" [{number(part['low'], digits)}, {number(part['high'], digits)}]"
            parts.append(
                f"{e(part['text'])}: {e(first)} {e(number(part['first_mean'], digits))} vs "
                f"{e(second)} {e(number(part['second_mean'], digits))}, difference "
                f"{e(number(part['difference'], digits))}{e(interval)} "
                f"(<span class='{STATUS_CLASS[part['status']]}'>{e(part['status'])}</span>"
                f"{', ' + e(part['reason']) if part.get('reason') else ''})")
        status = claim["status"]
        rows.append([e(claim["claim"]),
                     f'<span class="{STATUS_CLASS[status]}">{e(status)}</span>',
                     "<br>".join(parts)])
    return _table(["claim", "on this data", "the numbers (95% CI over seeds, paired)"], rows,
                  raw=True)


def task_section(task: dict, labels: dict) -> str:
    parts = [f'<h3 id="task-{e(task["name"])}">{e(task["title"])}</h3>',
             f"<p>{e(task['question'])}</p>"]
    if task["skipped"]:
        parts.append(f'<p class="muted">Skipped: {e(task["skipped"])}.</p>')
        return "".join(parts)
    metrics = task["metrics"]
    header = ["model"] + [f"{metric['label']} ({_better(metric)}"
                          + (f"; {metric['unit']}" if metric["unit"] else "") + ")"
                          for metric in metrics]
    flags = []
    rows = []
    for key, label in labels.items():
        if not any(key in metric["rows"] for metric in metrics):
            continue
        cells = [e(label)]
        for metric in metrics:
            row = metric["rows"].get(key)
            if row is None:
                cells.append("")
                continue
            if not row["available"]:
                cells.append(f'<span class="muted">n/a: {e(row["reason"])}</span>')
                continue
            text = e(_interval_text(row, metric["digits"]))
            if metric["verdict"].get("winner") == key:
                text = f'<span class="best">{text}</span>'
            if row.get("caveat"):
                text += f' <span class="muted">({e(row["caveat"])})</span>'
            if row["flags"]:
                flags.extend(f"{label}, {metric['label']}: {flag}" for flag in row["flags"])
                text += ' <span class="flag" title="see the notes below">⚠</span>'
            cells.append(text)
        rows.append(cells)
    parts.append(_table(header, rows, raw=True))
    parts.append('<p class="muted">Mean over seeds [95% Student-t interval]; ± the mean '
                 "per-example standard error where there is one. Bold: the leader.</p>")
    if flags:
        parts.append("<ul>" + "".join(f'<li class="flag">⚠ {e(flag)}</li>' for flag in flags)
                     + "</ul>")
    headline = metrics[0] if metrics else None
    if headline is not None:
        parts.append(f'<div class="chart">{interval_figure(headline, labels)}</div>')
    if task["note"]:
        parts.append(f'<p class="muted">{e(task["note"])}</p>')
    return "".join(parts)


def interval_figure(metric: dict, labels: dict) -> str:
    rows = []
    winner = metric["verdict"].get("winner")
    for key, label in labels.items():
        row = metric["rows"].get(key)
        if row is None:
            continue
        if not row["available"]:
            rows.append({"label": label, "mean": None, "note": "n/a"})
            continue
        rows.append({"label": label, "mean": row["mean"], "low": row.get("low"),
                     "high": row.get("high"), "points": list(row["values"].values()),
                     "highlight": key == winner})
    axis = metric["label"] + (f" ({metric['unit']})" if metric["unit"] else "")
    return svg.interval_chart(rows, title=metric["label"], axis_label=axis,
                              direction=metric["direction"])


# ----- figures ---------------------------------------------------------------------------------
def _grid_uri(images: np.ndarray, columns: int) -> str:
    canvas = image_grid(images, columns)
    scale = max(1, round(GRID_WIDTH / canvas.shape[1]))
    return png_data_uri(canvas, scale=scale)


def _image(uri: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="grid" src="{uri}" alt="{e(alt)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>")


def _first_seed_arrays(results: dict) -> dict[str, dict]:
    """Each entry's figure arrays from its lowest finished seed."""
    from ..study.artifacts import load_figure_arrays

    chosen = {}
    for run in sorted(results["runs"], key=lambda run: run["seed"]):
        if run["status"] != "finished" or run["entry"] in chosen:
            continue
        chosen[run["entry"]] = {"seed": run["seed"], **load_figure_arrays(run["path"])}
    return chosen


def image_figures(arrays: dict[str, dict], labels: dict, class_names) -> str:
    parts = ["<h3>Reconstructions, prior samples and ex-post samples</h3>",
             '<p class="muted">Per model (its first seed): test images (top) over their '
             "reconstructions (bottom); decoded draws from N(0, I); decoded draws from a "
             "10-component Gaussian mixture fitted to the training codes.</p>"]
    for key, values in arrays.items():
        label, seed = labels[key], values["seed"]
        pair = np.concatenate([values["inputs"], values["reconstructions"]])
        parts.append(f"<h4>{e(label)} <span class='muted'>(seed {seed})</span></h4>"
                     '<div class="figures">'
                     + _image(_grid_uri(pair, len(values["inputs"])),
                              f"{label}: reconstructions", "reconstructions")
                     + _image(_grid_uri(values["prior_samples"], 8),
                              f"{label}: prior samples", "prior samples")
                     + _image(_grid_uri(values["ex_post_samples"], 8),
                              f"{label}: ex-post samples", "ex-post samples")
                     + "</div>")
    parts.append("<h3>Interpolations and latent traversals</h3>"
                 '<p class="muted">Interpolations: straight lines between the codes of two test '
                 "examples, decoded. Traversals: the most used latent dimensions (by KL for "
                 "models with a posterior, else by code variance), each swept over ±2 standard "
                 "deviations of its codes with the others held at one example's code.</p>"
                 '<div class="figures">')
    for key, values in arrays.items():
        label = labels[key]
        dimensions = ", ".join(str(int(d)) for d in values["traversal_dimensions"])
        parts.append(_image(_grid_uri(values["interpolations"], 8), f"{label}: interpolations",
                            f"{label}: interpolations"))
        parts.append(_image(_grid_uri(values["traversals"], 7), f"{label}: traversals",
                            f"{label}: traversals of dimensions {dimensions}"))
    parts.append("</div>")
    return "".join(parts)


def tabular_figures(arrays: dict[str, dict], labels: dict) -> str:
    parts = ["<h3>Samples against the data</h3>",
             '<p class="muted">Test data, decoded prior draws and decoded ex-post draws, '
             "projected onto the training data's first two principal components.</p>"
             '<div class="figures">']
    for key, values in arrays.items():
        series = [{"label": name, "points": values[field].tolist()} for name, field in
                  (("data", "data_2d"), ("prior", "prior_2d"), ("ex-post", "ex_post_2d"))]
        chart = svg.scatter_chart(series, title=labels[key], x_label="principal component 1",
                                  y_label="principal component 2", width=360, height=300)
        parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div><h3>Reconstruction error per feature</h3><div class='figures'>")
    series = [{"label": labels[key],
               "points": list(enumerate(values["reconstruction_error_per_feature"].tolist()))}
              for key, values in arrays.items()]
    chart = svg.line_chart(series, title="squared error per feature", x_label="feature",
                           y_label="mean squared error", width=640)
    parts.append(f'<div class="chart">{chart}</div></div>')
    return "".join(parts)


def latent_figures(arrays: dict[str, dict], labels: dict, class_names) -> str:
    parts = ["<h3>The latent space in two dimensions</h3>",
             '<p class="muted">Test codes (the codes themselves when the latent space is 2-D, '
             "else their first two principal components), coloured by label.</p>"
             '<div class="figures">']
    for key, values in arrays.items():
        codes = values["codes_2d"]
        chart = svg.labelled_scatter(codes[:, 0], codes[:, 1], values.get("codes_labels"),
                                     class_names=class_names, title=labels[key], width=300,
                                     height=300, max_points=1000)
        parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div>")
    return "".join(parts)


def curve_figures(results: dict) -> str:
    labels = results["labels"]
    parts = ['<h3>Rate and distortion</h3><div class="figures">']
    series = [{"label": labels[key], "points": [(point["rate"], point["distortion"])
                                                for point in points]}
              for key, points in results["rate_distortion"].items()]
    if series:
        chart = svg.scatter_chart(series, title="rate (KL) against distortion, one point per "
                                  "seed", x_label="KL(q(z|x) || p(z)) [nats]",
                                  y_label="-log p(x|z) [nats]", width=520, height=340)
        parts.append(f'<div class="chart">{chart}</div>')
    else:
        parts.append('<p class="muted">No model with a KL term in the roster.</p>')
    parts.append("</div><h3>Training curves</h3><div class='figures'>")
    first = {}
    for run in sorted(results["runs"], key=lambda run: run["seed"]):
        if run["status"] == "finished" and run["entry"] not in first:
            first[run["entry"]] = run
    for column, title in (("validation_reconstruction", "validation -log p(x|z)"),
                          ("validation_loss", "validation loss (each model's objective)")):
        series = []
        for key, run in first.items():
            history = run["history"]
            points = [(epoch, value) for epoch, value in zip(history["epoch"], history[column])
                      if value is not None]
            if len(points) > 1:
                series.append({"label": labels[key], "points": points})
        if series:
            chart = svg.line_chart(series, title=title, x_label="epoch",
                                   y_label="nats per example", width=500, height=300)
            parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div>")
    return "".join(parts)


def sweep_figures(results: dict) -> str:
    preset = results["study"]["preset"]
    option = preset.get("sweep") if preset else None
    if not option:
        return ""
    roster = results["study"]["roster"]
    shared = results["study"]["shared_options"]
    parts = [f"<h3>Sweep over {e(option)}</h3><div class='figures'>"]
    for task in results["tasks"]:
        if task["skipped"] or not task["metrics"]:
            continue
        metric = task["metrics"][0]
        families: dict[str, list] = {}
        for entry in roster:
            row = metric["rows"].get(entry["key"])
            value = entry["options"].get(option, shared.get(option))
            if row is None or not row["available"] or value is None:
                continue
            families.setdefault(entry["model"], []).append((float(value), row["mean"]))
        series = [{"label": name, "points": sorted(points)} for name, points in families.items()]
        if series:
            chart = svg.scatter_chart(series, title=metric["label"], x_label=option,
                                      y_label=metric["unit"] or metric["label"], connect=True,
                                      log_x=True, width=360, height=280)
            parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div>")
    return "".join(parts)


# ----- the page --------------------------------------------------------------------------------
def data_paragraph(study: dict) -> str:
    data = study["data"]
    splits = ", ".join(f"{count:,} {name}" for name, count in data["splits"].items())
    labels = "with labels" if data["labels"] else "without labels"
    transform = data["preparation"]["transform"]
    return (f"{e(data['name'])}: {e(data['kind'])} of shape {e(tuple(data['shape']))}, "
            f"{e(data['values'])} values, {e(labels)}; splits {e(splits)} (split seed "
            f"{e(data['split_seed'])}). Decoder likelihood: <b>{e(data['likelihood'])}</b> "
            f"({e(data['likelihood_reason'])}). Preparation: {e(transform)}.")


def settings_section(results: dict) -> str:
    study = results["study"]
    timing = results.get("timing") or {}
    finished = [run for run in results["runs"] if run["status"] == "finished"]
    rows = []
    for run in results["runs"]:
        if run["status"] != "finished":
            rows.append([run["label"], str(run["seed"]), "missing (not finished)", "", "", "",
                         "", run["id"]])
            continue
        rows.append([run["label"], str(run["seed"]),
                     "reused from the store" if run["reused"] else "trained now"
                     if run.get("trained_now", True) else "evaluated now (trained before)",
                     f"{run['epochs_run']} (best {run['best_epoch']})",
                     f"{run['train_seconds']:.1f}", f"{run['evaluation_seconds']:.1f}",
                     run["device"], run["id"]])
    parts = ["<h3>Runs</h3>",
             _table(["model", "seed", "status", "epochs (best)", "training [s]",
                     "evaluation [s]", "device", "run id"], rows)]
    if timing:
        fraction = timing.get("overhead_fraction")
        parts.append(
            f"<p>Wall time {timing['wall_seconds']:.1f} s for {timing['runs_executed']} "
            f"run(s) trained now: training {timing['train_seconds']:.1f} s, evaluation "
            f"{timing['evaluation_seconds']:.1f} s, everything else "
            f"{timing['overhead_seconds']:.1f} s"
            + (f" ({100 * fraction:.1f}% of the wall time)" if fraction is not None else "")
            + ".</p>")
    versions = finished[0]["versions"] if finished else {}
    details = {"settings": study["settings"], "budget": study["budget"],
               "shared model options": study["shared_options"], "data": study["data"],
               "library versions": versions, "device": study["device"],
               "run store": study["store"], "evaluation groups": study["metric_groups"]}
    parts.append("<details><summary>Settings, data, versions</summary><pre>"
                 + e(json.dumps(details, indent=2, default=str)) + "</pre></details>")
    return "".join(parts)


def render(results: dict, arrays: dict[str, dict]) -> str:
    study = results["study"]
    data = study["data"]
    labels = results["labels"]
    preset = study["preset"]
    title = f"AE or VAE? A study on {data['name']}"
    sections = [
        f"<header><h1>{e(title)}</h1><p class='lede'>{data_paragraph(study)}</p>",
        f"<p class='lede'>{e(preset['question'])}</p>" if preset else "",
        f"<p class='muted'>{len(results['labels'])} models × {study['settings']['seeds']} "
        f"seed(s), budget <b>{e(study['budget']['name'])}</b>: {e(study['budget']['description'])}"
        ".</p></header>",
        "<nav><a href='#answer'>answer</a><a href='#claims'>claims</a>"
        "<a href='#verdicts'>verdicts</a><a href='#tasks'>tasks</a>"
        "<a href='#figures'>figures</a><a href='#runs'>runs and settings</a></nav>",
        "<section id='answer'><h2>The answer on this data</h2><ul class='answer'>"
        + "".join(f"<li>{e(sentence)}</li>" for sentence in results["summary"])
        + "</ul><p class='muted'>Intervals are 95% Student-t intervals over seeds of paired "
        "per-seed differences (winner minus runner-up). \"Level\" means that interval covers "
        "zero.</p></section>",
        "<section id='claims'><h2>The source discussion's claims, tested</h2>"
        + claims_table(results)
        + "<p class='muted'>\"At least as good\" holds unless the first model is behind on "
        "average; it does not hold when it is significantly behind.</p></section>",
        "<section id='verdicts'><h2>Verdicts by task</h2>" + verdict_table(results)
        + "</section>",
        "<section id='tasks'><h2>Tasks</h2>"
        + "".join(task_section(task, labels) for task in results["tasks"]) + "</section>",
        "<section id='figures'><h2>Figures</h2>",
    ]
    class_names = data.get("class_names")
    if arrays:
        if data["kind"] == "images":
            sections.append(image_figures(arrays, labels, class_names))
        else:
            sections.append(tabular_figures(arrays, labels))
        sections.append(latent_figures(arrays, labels, class_names))
    sections.append(curve_figures(results))
    sections.append(sweep_figures(results))
    sections.append("</section><section id='runs'><h2>Runs and settings</h2>"
                    + settings_section(results) + "</section>")
    body = "".join(sections)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{e(title)}</title><style>{STYLE}</style></head><body><main>{body}"
            "<footer class='muted'><p>Written by aevae. Self-contained: no scripts, no network "
            "resources.</p></footer></main></body></html>\n")


def write_report(out, results: dict) -> Path:
    """Render ``results`` (from ``aevae.study.results.aggregate``) into ``out/report.html``."""
    arrays = _first_seed_arrays(results)
    path = Path(out) / REPORT_FILE
    atomic_write_text(path, render(results, arrays))
    return path
