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
.excluded{color:#a4161a;text-decoration:line-through}
table.bottom td:nth-child(5){font-weight:600}table.bottom td:nth-child(6){white-space:nowrap}
section#bottom-line{margin-top:.4rem}
section#bottom-line h2{margin-top:.8rem}
ul.answer li{margin:.35rem 0}.figures{display:flex;flex-wrap:wrap;gap:1.2rem}
figure{margin:0}figcaption{font-size:.85rem;color:#555;max-width:32rem}
img.grid{image-rendering:pixelated;border:1px solid #ddd}
.chart svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 .2rem}
details{margin:.4rem 0}pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}
"""

STATUS_CLASS = {"holds": "holds", "does not hold": "fails", "inconclusive": "inconclusive",
                "not tested": "untested", "partly tested": "holds"}


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
    from ..study.verdicts import tie_text

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
            if verdict["status"] == "uncontested":
                rows.append([title, e(metric["label"]), '<span class="inconclusive">'
                             "uncontested</span>", f"<b>{e(labels[verdict['winner']])}</b>: "
                             f"{e(verdict['reason'])}", "", ""])
                continue
            seeds = (f"{verdict['seeds_ahead']} of {verdict['seeds']}"
                     if "seeds" in verdict else "")
            status = verdict["status"]
            css = "holds" if status == "clear winner" else "inconclusive"
            if verdict.get("negligible"):
                status += f" (a tie: the interval within {tie_text(metric.get('tie'))})"
            winner, runner_up = labels[verdict["winner"]], labels[verdict["runner_up"]]
            leader = (f"{e(winner)} and {e(runner_up)} tie" if verdict.get("negligible") else
                      f"<b>{e(winner)}</b> over {e(runner_up)}")
            if verdict.get("barred"):
                leader += ('<br><span class="muted">not compared: '
                           + e(", ".join(labels[key] for key in verdict["barred"])) + "</span>")
            flags = metric["rows"][verdict["winner"]].get("flags", [])
            if flags:
                leader += f'<br><span class="flag">⚠ {e(flags[0])}</span>'
            if results.get("health", {}).get(verdict["winner"], {}).get("status") not in (
                    None, "healthy"):
                leader += ('<br><span class="flag">⚠ see the health checks</span>')
            rows.append([
                title, e(metric["label"]) + f' <span class="muted">({e(_better(metric))})</span>',
                f'<span class="{css}">{e(status)}</span>', leader,
                e(_margin(verdict, metric["digits"])),
                e(seeds)])
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
        shown = e(status)
        if status == "partly tested":
            shown += (f"<br><span class='muted'>{claim['parts_tested']} of "
                      f"{len(claim['parts'])} parts tested, all hold</span>")
        rows.append([e(claim["claim"]), f'<span class="{STATUS_CLASS[status]}">{shown}</span>',
                     "<br>".join(parts)])
    return _table(["claim", "on this data", "the numbers (95% CI over seeds, paired)"], rows,
                  raw=True)


def bottom_line_section(results: dict) -> str:
    """The first thing on the page: AE or VAE on this data, one row per goal."""
    from ..study.answer import in_short
    from ..study.verdicts import NATS_TIE_PER_DIMENSION
    from .text import bottom_line_rows, not_measured, sweep_rows

    labels = results["labels"]
    answers = results.get("answers") or []
    from .text import incomplete

    parts = ["<section id='bottom-line'><h2>AE or VAE on this data?</h2>"]
    if unfinished := incomplete(results):
        parts.append(f"<p class='flag'>⚠ Incomplete: {e(unfinished)}</p>")
    if not answers:
        problem = results.get("no_pair") or "the roster has no AE-VAE pair"
        parts.append(f"<p>Not answered: {e(problem)} (name one <code>ae</code> and one "
                     "<code>vae</code> in <code>--models</code>); the verdicts below compare "
                     "the whole roster.</p>")
    elif len(answers) == 1:
        answer = answers[0]
        header, rows, notes = bottom_line_rows(answer, labels)
        parts.append(f"<p class='lede'><b>In short:</b> "
                     f"{e(in_short(answer['bottom_line'], labels, answer['roles']))}</p>")
        table = _table(header, rows).replace("<table>", "<table class='bottom'>", 1)
        parts.append(table)
        if notes:
            parts.append("<ol class='muted'>" + "".join(f"<li>{e(note)}</li>" for note in notes)
                         + "</ol>")
        if skipped := not_measured(answer):
            parts.append(f"<p class='muted'>{e(skipped)}</p>")
        parts.append("<p class='muted'>Each goal's primary figure, mean over seeds (↑ higher "
                     "is better, ↓ lower). Margin: the better minus the other, with the 95% "
                     "Student-t interval of paired per-seed differences; a model's name when it "
                     "lies on its side beyond the tie (0.5% of the figure; a log-density: "
                     f"{NATS_TIE_PER_DIMENSION:g} nats per data dimension), \"tie\" when it "
                     "lies within the tie either way, \"level\" otherwise. "
                     "✗: the run "
                     "failed a health check. \"By default\": decided by a health check or "
                     "a guard, not by the figure (see the note).</p>")
    else:
        header, rows, notes = sweep_rows(answers, labels)
        parts.append(f"<p>The better of the pair at each value of "
                     f"{e(results['study']['preset'].get('sweep'))}:</p>" + _table(header, rows))
        if notes:
            parts.append("<ol class='muted'>" + "".join(f"<li>{e(note)}</li>" for note in notes)
                         + "</ol>")
        if skipped := not_measured(answers[0]):
            parts.append(f"<p class='muted'>{e(skipped)}</p>")
    from .text import mixed_versions, small_samples

    if small := small_samples(results):
        parts.append(f"<p class='flag'>⚠ Small sample: {e(small)}</p>")
    if mixed := mixed_versions(results):
        parts.append(f"<p class='flag'>⚠ Mixed versions: {e(mixed)}</p>")
    if results.get("health_sentences"):
        parts.append("<h3>Health checks</h3><ul>" + "".join(
            f"<li class='{'flag' if 'not compared' in sentence else 'muted'}'>{e(sentence)}"
            "</li>" for sentence in results["health_sentences"]) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def claim_sweep_table(results: dict) -> str:
    """In a sweep: each claim's status at each swept value (the table below: the first)."""
    answers = results.get("answers") or []
    if len(answers) < 2:
        return ""
    header = ["claim", *[answer["label"] for answer in answers]]
    rows = []
    for index, claim in enumerate(answers[0]["claims"]):
        cells = [e(claim["claim"])]
        for answer in answers:
            status = answer["claims"][index]["status"]
            cells.append(f'<span class="{STATUS_CLASS[status]}">{e(status)}</span>')
        rows.append(cells)
    return ("<p>How each claim fares along the sweep (the AE and the VAE at the same value):</p>"
            + _table(header, rows, raw=True)
            + f"<p class='muted'>The numbers below are those at {e(answers[0]['label'])}.</p>")


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
    flags: dict[tuple[str, str], list[str]] = {}  # (figure, flag) -> the models it concerns
    rows = []
    guarded: dict[str, str] = {}
    clipped = False
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
            if row.get("clipped"):
                clipped = True
            if row.get("excluded"):
                text = (f'<span class="excluded" title="{e(row["excluded"][0])}">{text}</span>'
                        ' <span class="flag">✗</span>')
            elif row.get("guard_failures"):
                guarded.setdefault(label, row["guard_failures"][0])
                text += ' <span class="flag" title="fails a guard: see below">✗</span>'
            if row.get("caveat"):
                text += f' <span class="muted">({e(row["caveat"])})</span>'
            if row["flags"]:
                for flag in row["flags"]:
                    flags.setdefault((metric["label"], flag), []).append(label)
                text += ' <span class="flag" title="see the notes below">⚠</span>'
            cells.append(text)
        rows.append(cells)
    parts.append(_table(header, rows, raw=True))
    parts.append('<p class="muted">Mean over seeds [95% Student-t interval]; ± the mean '
                 "per-example standard error where there is one. Bold: the leader."
                 + (" Intervals are clipped to the figure's possible range." if clipped else "")
                 + " Struck through ✗: the run failed a health check; ✗ alone: it fails one of "
                 "the task's guards; either way it wins none of these figures.</p>")
    if guarded:
        parts.append("<ul>" + "".join(f'<li class="flag">✗ {e(label)}: {e(reason)}</li>'
                                      for label, reason in guarded.items()) + "</ul>")
    if flags:
        shown = len([key for key in labels if any(key in metric["rows"] for metric in metrics)])
        parts.append("<ul>" + "".join(
            f'<li class="flag">⚠ {e(figure)}: {e(flag)} '
            f'({e("every model" if len(who) == shown > 1 else ", ".join(who))})</li>'
            for (figure, flag), who in flags.items()) + "</ul>")
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
    """Each entry's figure arrays from its lowest finished seed (with, beside them, the seed
    and the data's feature names when known)."""
    from ..study.artifacts import load_figure_arrays

    feature_names = results["study"]["data"].get("feature_names")
    chosen = {}
    for run in sorted(results["runs"], key=lambda run: run["seed"]):
        if run["status"] != "finished" or run["entry"] in chosen:
            continue
        chosen[run["entry"]] = {"seed": run["seed"], "feature_names": feature_names,
                                **load_figure_arrays(run["path"])}
    return chosen


def _model_colours(labels: dict) -> dict[str, str]:
    """One colour per roster entry, in roster order, the same in every chart."""
    return {key: svg.PALETTE[index % len(svg.PALETTE)] for index, key in enumerate(labels)}


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


MAX_FEATURES = 30  # bars in the per-feature error chart


def _evenly_spaced(points: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` rows of ``points``: all of them, or an evenly spaced subset."""
    if len(points) <= most:
        return points
    return points[np.linspace(0, len(points) - 1, most).round().astype(np.int64)]


def tabular_figures(arrays: dict[str, dict], labels: dict, feature_names=None) -> str:
    first = next(iter(arrays.values()), {})
    data_count = len(first.get("data_2d", ()))
    most = max(200, 3 * data_count)
    drawn = max((len(values[field]) for values in arrays.values()
                 for field in ("prior_2d", "ex_post_2d")), default=0)
    shown = (f" Each chart shows at most {most:,} prior and {most:,} ex-post draws (an evenly "
             f"spaced subset of the {drawn:,} drawn; the cap is the larger of 200 and three "
             "times the number of data points), so the data stays visible."
             if drawn > most else "")
    parts = ["<h3>Samples against the data</h3>",
             '<p class="muted">Test data (dark diamonds, drawn on top), decoded prior draws and '
             "decoded ex-post draws, projected onto the training data's first two principal "
             f"components.{e(shown)}</p>"
             '<div class="figures">']
    for key, values in arrays.items():
        most = max(200, 3 * len(values["data_2d"]))
        series = [
            {"label": "prior draws", "points": _evenly_spaced(values["prior_2d"], most).tolist(),
             "color": svg.PALETTE[0], "opacity": 0.55},
            {"label": "ex-post draws",
             "points": _evenly_spaced(values["ex_post_2d"], most).tolist(),
             "color": svg.PALETTE[1], "opacity": 0.55},
            {"label": "test data", "points": values["data_2d"].tolist(), "color": "#222",
             "marker": "diamond"},
        ]
        chart = svg.scatter_chart(series, title=labels[key], x_label="principal component 1",
                                  y_label="principal component 2", width=360, height=300)
        parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div>")
    errors = {key: np.asarray(values["reconstruction_error_per_feature"], dtype=np.float64)
              for key, values in arrays.items()}
    count = max((len(error) for error in errors.values()), default=0)
    names = feature_names if feature_names is not None else first.get("feature_names")
    if names is None or len(names) != count:
        names = [f"feature {index + 1}" for index in range(count)]
    chosen = np.arange(count)
    note = "Mean squared reconstruction error of each feature on the test data, per model (its "
    note += "first seed)."
    if count > MAX_FEATURES:
        padded = np.full((len(errors), count), np.nan)
        for row, error in enumerate(errors.values()):
            padded[row, : len(error)] = error
        finite = np.isfinite(padded)
        totals = np.where(finite, padded, 0.0).sum(axis=0)
        # The mean over the models with a finite error; a feature with none sorts last.
        mean = np.where(finite.any(axis=0), totals / np.maximum(finite.sum(axis=0), 1), -np.inf)
        chosen = np.sort(np.argsort(-mean, kind="stable")[:MAX_FEATURES])
        note += (f" Showing the {MAX_FEATURES} of {count} features with the largest mean error "
                 "over the models, in column order.")
    colours = _model_colours(labels)
    series = [{"label": labels[key], "color": colours.get(key),
               "values": [float(error[i]) if i < len(error) else None for i in chosen]}
              for key, error in errors.items()]
    chart = svg.bar_chart([names[i] for i in chosen], series, title="squared error per feature",
                          x_label="mean squared error", width=640, legend=True)
    parts.append(f"<h3>Reconstruction error per feature</h3><p class='muted'>{e(note)}</p>"
                 f"<div class='figures'><div class=\"chart\">{chart}</div></div>")
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


def likelihood_family(likelihood) -> str:
    """The family whose -log p(x|z) values compare: "Gaussian" (gaussian, gaussian-learned: a
    density), "Bernoulli" (a probability), else the likelihood's own name."""
    name = str(likelihood or "unknown")
    return "Gaussian" if name.startswith("gaussian") else name[:1].upper() + name[1:]


def curve_figures(results: dict) -> str:
    labels = results["labels"]
    study = results["study"]
    colours = _model_colours(labels)
    # Models with likelihoods of different families get separate charts: a density's -log p
    # and a probability's are on unrelated scales (the likelihood table calls them incomparable).
    models = study.get("models") or {}
    shared = study.get("shared_options", {}).get("likelihood")
    families: dict[str, list] = {}
    for key, points in results["rate_distortion"].items():
        family = likelihood_family((models.get(key) or {}).get("likelihood", shared))
        families.setdefault(family, []).append(
            {"label": labels[key], "color": colours.get(key),
             "points": [(point["rate"], point["distortion"]) for point in points]})
    study_family = likelihood_family(shared)
    ordered = sorted(families, key=lambda family: family != study_family)  # the study's first
    parts = ["<h3>Rate and distortion</h3>",
             '<p class="muted">One point per model and seed: the KL term against the '
             "reconstruction term."
             + (" One chart per likelihood family: -log p(x|z) of a density (Gaussian) and of "
                "a probability (Bernoulli) are on unrelated scales, so models of different "
                "families are not drawn together." if len(ordered) > 1 else "") + "</p>"]
    parts.append('<div class="figures">')
    for family in ordered:
        chart = svg.scatter_chart(families[family], title=f"{family} likelihood: rate "
                                  "against distortion", x_label="KL(q(z|x) || p(z)) [nats]",
                                  y_label=f"-log p(x|z), {family} [nats]", width=520,
                                  height=340, legend=True)
        parts.append(f'<div class="chart">{chart}</div>')
    if not families:
        parts.append('<p class="muted">No model with a KL term in the roster.</p>')
    parts.append("</div><h3>Training curves</h3><p class='muted'>One line per seed, in its "
                 "model's colour.</p><div class='figures'>")
    by_entry: dict[str, list[dict]] = {}  # every seed's curve: one seed may be the odd one
    for run in sorted(results["runs"], key=lambda run: run["seed"]):
        if run["status"] == "finished":
            by_entry.setdefault(run["entry"], []).append(run)
    for column, title in (("validation_reconstruction", "validation -log p(x|z)"),
                          ("validation_loss", "validation loss (each model's objective)")):
        series = []
        for key, runs in by_entry.items():
            lines = []
            for run in runs:
                history = run["history"]
                points = [(epoch, value) for epoch, value
                          in zip(history["epoch"], history[column]) if value is not None]
                if len(points) > 1:
                    lines.append(points)
            if lines:
                series.append({"label": labels[key], "lines": lines, "color": colours.get(key)})
        if series:
            chart = svg.line_chart(series, title=title, x_label="epoch",
                                   y_label="nats per example", width=500, height=300,
                                   legend=True)
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
    # One colour per model family, the same in every chart, in roster order.
    family_colours: dict[str, str] = {}
    for entry in roster:
        family_colours.setdefault(entry["model"],
                                  svg.PALETTE[len(family_colours) % len(svg.PALETTE)])
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
        series = [{"label": name, "points": sorted(points), "color": family_colours[name]}
                  for name, points in families.items()]
        if series:
            chart = svg.scatter_chart(series, title=metric["label"], x_label=option,
                                      y_label=metric["unit"] or metric["label"], connect=True,
                                      log_x=True, width=360, height=280, legend=True)
            parts.append(f'<div class="chart">{chart}</div>')
    parts.append("</div>")
    return "".join(parts)


# ----- the page --------------------------------------------------------------------------------
def _skipped_paragraph(results: dict) -> str:
    skipped = results.get("skipped") or []
    if not skipped:
        return ""
    return ("<p class='muted'>Skipped: " + e("; ".join(
        f"{item['title'].lower()} ({item['reason']})" for item in skipped)) + ".</p>")


def data_paragraph(study: dict) -> str:
    from .text import copies_sentence

    data = study["data"]
    splits = ", ".join(f"{count:,} {name}" for name, count in data["splits"].items())
    labels = "with labels" if data["labels"] else "without labels"
    transform = data["preparation"]["transform"]
    limited = (f"; training limited to the first {data['limit']:,} examples"
               if data.get("limit") else "")
    return (f"{e(data['name'])}: {e(data['kind'])} of shape {e(tuple(data['shape']))}, "
            f"{e(data['values'])} values, {e(labels)}; splits {e(splits)} (split seed "
            f"{e(data['split_seed'])}{e(limited)}). Decoder likelihood: "
            f"<b>{e(data['likelihood'])}</b> ({e(data['likelihood_reason'])}). "
            f"Preparation: {e(transform)}."
            + (f" <b>{e(copies)}</b>" if (copies := copies_sentence(data)) else ""))


def _epochs_text(run: dict, model: str | None) -> str:
    """The runs table's "epochs (best)" cell: "closed form" for a model fitted in closed form
    (pca, ppca), "n/a" for a best epoch that was not recorded."""
    if run["best_epoch"] is None:
        from ..models import model_class

        try:
            if model is not None and model_class(model).closed_form:
                return "closed form"
        except ValueError:  # a model this version does not know
            pass
    best = "n/a" if run["best_epoch"] is None else run["best_epoch"]
    resumed = run.get("resumed_after_epoch")
    return f"{run['epochs_run']} (best {best}" + (
        f"; resumed after epoch {resumed})" if resumed else ")")


def _run_status(run: dict) -> str:
    if run.get("reused") is None:  # re-rendered: not finished when the study last wrote
        return "finished by an earlier call"
    if run["reused"]:
        return "reused from the store"
    return "trained now" if run.get("trained_now", True) else "evaluated now (trained before)"


def settings_section(results: dict) -> str:
    study = results["study"]
    timing = results.get("timing") or {}
    finished = [run for run in results["runs"] if run["status"] == "finished"]
    models = {entry["key"]: entry["model"] for entry in study["roster"]}
    rows = []
    for run in results["runs"]:
        if run["status"] != "finished":
            status = ("missing (not finished)" if "error" not in run else
                      f"failed: {run['error'] or 'no message'}")
            rows.append([run["label"], str(run["seed"]), status, "", "", "", "", run["id"]])
            continue
        rows.append([run["label"], str(run["seed"]),
                     _run_status(run),
                     _epochs_text(run, models.get(run["entry"])),
                     f"{run['train_seconds']:.1f}", f"{run['evaluation_seconds']:.1f}",
                     run["device"], run["id"]])
    parts = ["<h3>Runs</h3>",
             _table(["model", "seed", "status", "epochs (best)", "training [s]",
                     "evaluation [s]", "device", "run id"], rows)]
    if timing and not timing["runs_executed"]:
        from .text import nothing_trained

        parts.append(f"<p>{e(nothing_trained(results))}; wall time "
                     f"{timing['wall_seconds']:.1f} s.</p>")
    elif timing:
        fraction = timing.get("overhead_fraction")
        parts.append(
            f"<p>Wall time {timing['wall_seconds']:.1f} s for {timing['runs_executed']} "
            f"run(s) trained now: training {timing['train_seconds']:.1f} s, evaluation "
            f"{timing['evaluation_seconds']:.1f} s, everything else "
            f"{timing['overhead_seconds']:.1f} s"
            + (f" ({100 * fraction:.1f}% of the wall time)" if fraction is not None else "")
            + ".</p>")
    groups = results.get("library_versions") or []
    versions = (groups[0]["versions"] if len(groups) == 1 else groups) if groups else (
        finished[0]["versions"] if finished else {})
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
        f"<header><h1>{e(title)}</h1>",
        f"<p class='lede'>{e(preset['question'])}</p>" if preset else "",
        "</header>",
        bottom_line_section(results),
        "<nav><a href='#bottom-line'>bottom line</a><a href='#answer'>verdicts</a>"
        "<a href='#claims'>claims</a><a href='#verdicts'>verdict table</a>"
        "<a href='#tasks'>tasks</a><a href='#figures'>figures</a>"
        "<a href='#runs'>runs and settings</a></nav>",
        f"<section id='data'><h2>Data and models</h2><p>{data_paragraph(study)}</p>"
        f"<p class='muted'>{len(results['labels'])} models × {study['settings']['seeds']} "
        f"seed(s), budget <b>{e(study['budget']['name'])}</b>: {e(study['budget']['description'])}"
        ".</p>" + _skipped_paragraph(results) + "</section>",
        "<section id='answer'><h2>Verdicts by task</h2><ul class='answer'>"
        + "".join(f"<li>{e(sentence)}</li>" for sentence in results["summary"])
        + "</ul><p class='muted'>Intervals are 95% Student-t intervals over seeds of paired "
        "per-seed differences (winner minus runner-up). A winner is clear when the whole "
        "interval lies beyond the tie (0.5% of the figure); two models tie when it lies within "
        "the tie either way; they are level otherwise.</p></section>",
        "<section id='claims'><h2>The source discussion's claims, tested</h2>"
        + claim_sweep_table(results) + claims_table(results)
        + "<p class='muted'>\"Better\" holds when the interval of the first model's lead lies "
        "beyond the tie (0.5% of the figure), and does not hold when it lies below it. \"At "
        "least as good\" holds when the interval rules out a deficit larger than the tie, and "
        "does not hold when it shows one. Otherwise a part is inconclusive.</p></section>",
        "<section id='verdicts'><h2>Verdict table</h2>" + verdict_table(results)
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
