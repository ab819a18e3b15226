"""The study's answer as terminal text: the AE-vs-VAE bottom line first, then health, the
verdicts per task, the claims and the table of headline figures.

Plain strings only (no numpy, no matplotlib), so the CLI can print tables without the cost of
importing the study's machinery.
"""

from __future__ import annotations

import textwrap


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def wrapped_table(header: list[str], rows: list[list[str]], width: int = 100) -> str:
    """A table whose last column wraps so that no line runs past ``width`` characters."""
    fixed = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    room = max(30, width - sum(fixed) - 2 * len(fixed))
    wrapped = []
    for row in rows:
        lines = textwrap.wrap(str(row[-1]), room) or [""]
        wrapped.append([*row[:-1], lines[0]])
        wrapped += [[""] * (len(row) - 1) + [line] for line in lines[1:]]
    return format_table(header, wrapped)


def _value(value, digits: int) -> str:
    from ..study.verdicts import format_value

    return format_value(value, digits) if value is not None else "n/a"


def nothing_trained(results: dict) -> str:
    """What a call that trained and evaluated no run did: its runs came from the store."""
    runs = results.get("runs") or []
    reused = sum(bool(run.get("reused")) for run in runs)
    whole = "all " if reused == len(runs) else ""
    return f"Nothing trained or evaluated now: {whole}{reused} run(s) came from the store"


def copies_sentence(data: dict) -> str | None:
    """A warning when test examples repeat training examples (data with duplicated rows)."""
    copies = data.get("test_copies_of_training") or 0
    tests = (data.get("splits") or {}).get("test") or 0
    if not copies or not tests:
        return None
    return (f"Repeated rows: {copies:,} of the {tests:,} test examples "
            f"({100 * copies / tests:.0f}%) are copies of training examples, so the figures "
            "measured on them reward memorising as well as generalising; remove duplicates "
            "from the data for a fair answer.")


def bottom_line_rows(answer: dict, labels: dict[str, str], short: bool = False
                     ) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and notes of one matching's AE-vs-VAE table (text and HTML). A row decided
    by a check, not by its figure, points to a note saying which; ``short`` uses the figures'
    short names (terminal)."""
    from ..study.answer import margin_text, row_verdict

    roles = answer["roles"]
    header = ["goal", "figure", labels.get(roles["ae"], roles["ae"]),
              labels.get(roles["vae"], roles["vae"]), "better", "margin [95% CI]",
              "best of the roster"]
    rows, notes = [], []
    for row in answer["bottom_line"]:
        if row["outcome"] == "skipped":  # said once, grouped by reason: not_measured()
            continue
        arrow = "↑" if row["direction"] == "higher" else "↓"
        figure = row["short"] if short else row["label"]
        cells = [row["goal"], f"{figure} {arrow}"]
        for role in ("ae", "vae"):
            text = _value(row.get(role), row["digits"])
            if row.get(f"{role}_excluded"):
                text += " ✗"
            cells.append(text)
        margin = margin_text(row)
        if _decided_by_a_check(row):
            notes.append(f"{row['goal']}: {row['reason']}")
            margin = f"[{len(notes)}]"
        if row.get("shared_seeds"):  # the pair's means on these, not the headline's
            seeds = ", ".join(map(str, row["shared_seeds"]))
            notes.append(f"{row['goal']}: both figures are means over seed(s) {seeds}, the "
                         "ones both models have")
            margin = f"{margin} [{len(notes)}]".strip()
        if failure := row.get("guard_failure"):  # or the roster's "by default" seems to clash
            notes.append(f"{row['goal']}: won on the figure; {failure['model']} also fails a "
                         f"guard: {failure['text']}")
            margin = f"{margin} [{len(notes)}]".strip()
        cells += [row_verdict(row, labels, roles), margin, _best_text(row, labels)]
        rows.append(cells)
    return header, rows, notes


def _decided_by_a_check(row: dict) -> bool:
    """A bottom-line row with no margin to show but a reason (a health check, a guard, one
    side missing): its cell points to a note with the reason."""
    from ..study.answer import margin_text

    return not margin_text(row) and bool(row.get("reason")) and not row.get("negligible")


def not_measured(answer: dict) -> str:
    """"Not measured on this data: cluster, ... (the data has no labels); ..." or ""."""
    reasons: dict[str, list[str]] = {}
    for row in answer["bottom_line"]:
        if row["outcome"] == "skipped":
            reasons.setdefault(row["reason"], []).append(row["goal"])
    if not reasons:
        return ""
    return "Not measured on this data: " + "; ".join(
        f"{', '.join(goals)} ({reason})" for reason, goals in reasons.items()) + "."


def _best_text(row: dict, labels: dict[str, str]) -> str:
    if "best" not in row:
        return ""
    text = f"{labels.get(row['best'], row['best'])} {_value(row['best_value'], row['digits'])}"
    if row.get("best_status") == "one seed":
        text += " (one seed: untested)"
    elif row.get("best_status") == "uncontested":
        text += " (by default)"
    elif row.get("best_negligible"):
        text += " (tie with the next)"
    elif row.get("best_status") != "clear winner":
        text += " (level with the next)"
    return text


def sweep_rows(answers: list[dict], labels: dict[str, str]
               ) -> tuple[list[str], list[list[str]], list[str]]:
    """One row per goal, one column per swept value: which of the pair is better there. A cell
    decided by a check, not by its figure, points to a note saying which (as in the one-pair
    table; the same reason at several values is one note). Goals measured at no value are
    left out (``not_measured`` says why)."""
    from ..study.answer import row_verdict

    header = ["goal", *[answer["label"] for answer in answers]]
    rows, notes = [], []
    for index, goal in enumerate(row["goal"] for row in answers[0]["bottom_line"]):
        cells = [answer["bottom_line"][index] for answer in answers]
        if all(row["outcome"] == "skipped" for row in cells):
            continue
        texts = [goal]
        for answer, row in zip(answers, cells):
            text = row_verdict(row, labels, answer["roles"])
            if row["outcome"] != "skipped" and _decided_by_a_check(row):
                note = f"{goal}: {row['reason']}"
                if note not in notes:
                    notes.append(note)
                text += f" [{notes.index(note) + 1}]"
            texts.append(text)
        rows.append(texts)
    return header, rows, notes


def study_text(results: dict) -> str:
    """Everything ``aevae compare`` prints after the study."""
    from ..study.answer import in_short

    labels = results["labels"]
    answers = results.get("answers") or []
    seeds = results["study"]["settings"]["seeds"]
    data = results["study"]["data"]
    lines = []
    if unfinished := incomplete(results):
        lines.append(f"Incomplete: {unfinished}\n")
    if len(answers) == 1:
        answer = answers[0]
        ae, vae = (labels[answer["roles"][role]] for role in ("ae", "vae"))
        lines.append(f"AE or VAE on this data? {ae} against {vae} on {data['name']}, mean over "
                     f"{seeds} seed(s); margin = the better minus the other, 95% interval over "
                     "seeds of paired differences.")
        header, rows, notes = bottom_line_rows(answer, labels, short=True)
        lines.append(format_table(header, rows))
        lines += [f"[{index}] {note}" for index, note in enumerate(notes, 1)]
        if skipped := not_measured(answer):
            lines.append(skipped)
        if any(row.get(f"{role}_excluded") for row in answer["bottom_line"]
               for role in ("ae", "vae")):
            lines.append("✗ failed a health check (below): shown, not compared")
        lines.append("In short: " + in_short(answer["bottom_line"], labels, answer["roles"]))
    elif answers:
        lines.append(f"AE or VAE on this data? The better of the pair at each "
                     f"{results['study']['preset'].get('sweep')}, {seeds} seed(s):")
        header, rows, notes = sweep_rows(answers, labels)
        lines.append(format_table(header, rows))
        lines += [f"[{index}] {note}" for index, note in enumerate(notes, 1)]
        if skipped := not_measured(answers[0]):
            lines.append(skipped)
    else:
        problem = results.get("no_pair") or "the roster has no AE-VAE pair"
        lines.append(f"AE or VAE on this data? Not answered: {problem} (name one `ae` and one "
                     "`vae` in --models); the verdicts below compare the whole roster.")
    lines.append(f"\nDecoder likelihood: {data['likelihood']} ({data['likelihood_reason']}).")
    if copies := copies_sentence(data):
        lines.append(copies)
    if results.get("health_sentences"):
        lines.append("\nHealth checks (made before any verdict):")
        lines += [f"- {sentence}" for sentence in results["health_sentences"]]
    small = small_samples(results)
    if small:
        lines.append(f"\nSmall sample: {small}")
    if mixed := mixed_versions(results):
        lines.append(f"\nMixed versions: {mixed}")
    lines.append(f"\nVerdicts by task ({len(labels)} model{'s' * (len(labels) != 1)}):")
    lines += [f"- {sentence}" for sentence in results["summary"]]
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{item['title'].lower()} ({item['reason']})"
                                            for item in results["skipped"]) + ".")
    lines += _claims_lines(results, labels)
    lines.append("")
    lines.append(format_table(["headline figure (mean over seeds)", *labels.values()],
                              _headline_rows(results)))
    timing = results.get("timing")
    if timing and not timing["runs_executed"]:  # an overhead of 100% would say nothing
        lines.append(f"\n{nothing_trained(results)}; wall time {timing['wall_seconds']:.0f} s")
    elif timing:
        lines.append(f"\n{timing['runs_executed']} run(s) trained or evaluated now, wall time "
                     f"{timing['wall_seconds']:.0f} s (study overhead "
                     f"{100 * (timing['overhead_fraction'] or 0):.1f}%)")
    return "\n".join(lines)


def _claims_lines(results: dict, labels: dict[str, str]) -> list[str]:
    answers = results.get("answers") or []
    if len(answers) > 1:
        header = ["claim", *[answer["label"] for answer in answers]]
        rows = [[claim["claim"], *[answer["claims"][index]["status"] for answer in answers]]
                for index, claim in enumerate(answers[0]["claims"])]
        return ["\nThe source discussion's claims, at each value of the sweep:",
                format_table(header, rows)]
    if not answers:  # each claim compares an AE with a VAE: one line says why none ran
        return [f"\nThe source discussion's claims: not tested ({len(results['claims'])} "
                "claims, each comparing an AE with a VAE; "
                f"{results.get('no_pair') or 'the roster has no AE-VAE pair'})."]
    lines = ["\nThe source discussion's claims:"]
    for claim in results["claims"]:
        status = claim["status"]
        if status == "partly tested":
            status += f" ({claim['parts_tested']} of {len(claim['parts'])} parts hold)"
        lines.append(f"- {status}: {claim['claim']}")
    return lines


def _headline_rows(results: dict) -> list[list[str]]:
    labels = results["labels"]
    rows = []
    for task in results["tasks"]:
        if task["skipped"] or not task["metrics"]:
            continue
        metric = task["metrics"][0]
        arrow = "higher" if metric["direction"] == "higher" else "lower"
        cells = [f"{metric['label']} ({arrow} is better)"]
        for key in labels:
            row = metric["rows"].get(key)
            text = _value(row["mean"], metric["digits"]) if row and row["available"] else "n/a"
            if row and row.get("excluded"):
                text += "*"
            cells.append(text)
        rows.append(cells)
    if any(row[1:] and any(cell.endswith("*") for cell in row[1:]) for row in rows):
        rows.append(["* failed a health check: shown, not compared", *[""] * len(labels)])
    return rows


def mixed_versions(results: dict, listed: int = 8) -> str:
    """One sentence when finished runs were trained under other library versions than each
    other or than the install that ran the study (runs reused from a store that other code
    filled), or ""."""
    from ..study.versions import REPRODUCING_VERSIONS, other_versions

    groups = results.get("library_versions") or []
    current = results["study"].get("versions")  # None: a study from before it was recorded
    stale = [name for group in groups if current and other_versions(group["versions"], current)
             for name in group["runs"]]
    if len(groups) < 2 and not stale:
        return ""
    differing = []
    for key in sorted({key for group in groups for key in group["versions"]}):
        counts: dict[str, int] = {}
        for group in groups:
            value = str(group["versions"].get(key, "not recorded"))
            counts[value] = counts.get(value, 0) + len(group["runs"])
        ours = str(current[key]) if current and key in current else None
        if len(counts) < 2 and (key not in REPRODUCING_VERSIONS or ours in (None, *counts)):
            continue
        values = [f"{value} ({count} run{'s' if count != 1 else ''}"
                  + ("; this study's install" if value == ours else "") + ")"
                  for value, count in counts.items()]
        if ours is not None and ours not in counts:
            values.append(f"this study's install {ours}")
        differing.append(f"{key} " + ", ".join(values))
    total = sum(len(group["runs"]) for group in groups)
    head = (f"the runs were trained under {len(groups)} sets of library versions"
            if len(groups) > 1 else f"all {total} runs were trained under other library "
            "versions than this study's install")
    sentence = (f"{head}, and other code can give other numbers for the same seed: "
                + "; ".join(differing) + ".")
    if stale and len(stale) < total:
        sentence += " Not trained by this study's install: " + _listed(stale, listed) + "."
    elif not stale:
        others = [name for group in groups[1:] for name in group["runs"]]
        sentence += " Not from the largest set: " + _listed(others, listed) + "."
    if stale:
        return sentence + (" `aevae compare --retrain-other-versions` with the same options "
                           "trains them again with this install.")
    return sentence + " Train into a new folder to compare like with like."


def _listed(names: list[str], listed: int) -> str:
    return ", ".join(names[:listed]) + (f" and {len(names) - listed} more"
                                        if len(names) > listed else "")


def incomplete(results: dict) -> str:
    """One sentence when runs of the study are not finished and did not fail (interrupted, or
    still running), or "". Failed runs are the health checks' to describe: running the
    study again would not finish them."""
    runs = results.get("runs") or []
    unfinished = [run for run in runs if run.get("status") != "finished" and "error" not in run]
    if not unfinished:
        return ""
    return (f"{len(unfinished)} of {len(runs)} runs are not finished (the study was "
            "interrupted, or is still running): every figure and verdict here uses the finished "
            "runs only. Running the same command again finishes them.")


def small_samples(results: dict) -> str:
    """One sentence on figures resting on too few examples, or ""."""
    flagged: dict[str, int] = {}
    for task in results["tasks"]:
        for metric in task["metrics"]:
            counts = [row.get("small_sample") for row in metric["rows"].values()
                      if row.get("available") and row.get("small_sample") is not None]
            if counts:
                flagged[task["title"].lower()] = min(counts + [flagged.get(
                    task["title"].lower(), counts[0])])
    if not flagged:
        return ""
    splits = results["study"]["data"].get("splits", {})
    where = (f" (the test split holds {splits['test']:,}; sample quality also compares with "
             "training examples)" if "test" in splits else "")
    return (f"figures of {len(flagged)} task(s) rest on as few as {min(flagged.values())} "
            f"examples{where}, so their intervals are wide and their verdicts fragile: "
            + ", ".join(flagged) + ".")
