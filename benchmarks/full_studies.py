"""The README's table of full-budget studies: the source claims and the verdicts, side by side.

Reads the ``results.json`` of studies already run, e.g.

    aevae compare --data mnist --budget full --out studies/mnist
    aevae compare --data fashion-mnist --budget full --out studies/fashion
    python benchmarks/full_studies.py mnist=studies/mnist fashion-mnist=studies/fashion

and writes benchmarks/results/full_studies.md: for every claim part, each study's two figures
and whether they point the way the claim says (with several seeds: the study's own status, from
the paired interval; with one seed there is no interval, so only the direction is given), then
each study's one-sentence verdicts, and for a study with several seeds the bottom line
`aevae compare` printed (AE against VAE, with intervals).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aevae.report.text import study_text

RESULTS = Path(__file__).resolve().parent / "results"


def figure(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def part_cell(part: dict) -> str:
    if part.get("first_mean") is None:
        return f"not tested ({part.get('reason', '')})"
    digits = part.get("digits", 4)
    numbers = (f"{part['first']} {figure(part['first_mean'], digits)} vs {part['second']} "
               f"{figure(part['second_mean'], digits)}")
    if part["seeds"] > 1 or part["status"] != "inconclusive":
        return f"{numbers}: **{part['status']}**"
    if part.get("reason", "").startswith("a tie"):
        return f"{numbers}: level (under 0.5% apart)"
    way = "points the claimed way" if part["seeds_in_favour"] else "points against"
    return f"{numbers}: {way} (one seed)"


def working_time(runs: list[dict]) -> tuple[float, float]:
    """(wall seconds with at least one run training or evaluating, wall seconds with exactly
    one), from the runs' working intervals, whichever invocations of the study they ran in."""
    events = sorted((time, step) for run in runs for start, end in run["intervals"]
                    for time, step in ((start, 1), (end, -1)))
    working = alone = 0.0
    active, previous = 0, None
    for time, step in events:
        if previous is not None and active > 0:
            working += time - previous
            alone += (time - previous) if active == 1 else 0.0
        active, previous = active + step, time
    return working, alone


def clock(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def guard_lines(results: dict) -> list[str]:
    """One line per guard that barred models: its figure for the best model and for each model
    it barred."""
    lines = []
    for task in results["tasks"]:
        for guard in task.get("guards") or []:
            if not guard.get("failing"):
                continue
            means, digits = guard["means"], guard.get("digits", 3)
            barred = ", ".join(f"{model} {figure(means[model], digits)}"
                               for model in sorted(guard["failing"], key=means.get,
                                                   reverse=guard["direction"] == "higher"))
            lines.append(f"- {task['title']}, {guard['label']}: best {guard['best']} "
                         f"{figure(means[guard['best']], digits)}, bar "
                         f"{figure(guard['bar'], digits)}; barred ({guard['why']}): {barred}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="NAME=STUDY_DIRECTORY")
    parser.add_argument("--out", type=Path, default=RESULTS / "full_studies.md")
    arguments = parser.parse_args()
    studies = {}
    for item in arguments.studies:
        name, _, folder = item.partition("=")
        studies[name] = json.loads((Path(folder) / "results.json").read_text())
    names = list(studies)
    lines = [f"# Full-budget studies: {', '.join(names)}", ""]
    for name, results in studies.items():
        study = results["study"]
        roster = ", ".join(dict.fromkeys(run["entry"] for run in results["runs"]))
        seeds = study["settings"]["seeds"]
        seconds = sum((run.get("train_seconds") or 0) + (run.get("evaluation_seconds") or 0)
                      for run in results["runs"])
        wall, alone = working_time(results["runs"])
        lines.append(f"- **{name}**: budget {study['budget']['name']}, {seeds} seed(s), roster "
                     f"{roster}; {seconds / 3600:.1f} h of training and evaluation in all, one "
                     f"CPU thread per run; {clock(wall)} of wall time with a run working, "
                     f"{clock(alone)} of it with one alone (over every invocation that trained "
                     "or evaluated them)")
    lines += ["", "| claim | part | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    first = studies[names[0]]["claims"]
    for index, claim in enumerate(first):
        for part_index, part in enumerate(claim["parts"]):
            cells = [part_cell(studies[name]["claims"][index]["parts"][part_index])
                     for name in names]
            label = claim["claim"] if part_index == 0 else ""
            row = [label, part["text"], *cells]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    for name, results in studies.items():
        barred = guard_lines(results)
        if barred:
            lines += ["", f"Guards that kept models out of a verdict on {name} (mean over "
                      "seeds):", ""]
            lines += barred
    for name, results in studies.items():
        lines += ["", f"Verdicts on {name}:", ""]
        lines += [f"- {sentence}" for sentence in results["summary"]]
    for name, results in studies.items():
        if results["study"]["settings"]["seeds"] > 1:  # with intervals: the terminal answer
            answer = study_text(results).split("\n\nDecoder likelihood")[0]
            lines += ["", f"`aevae compare`'s bottom line on {name}:", "", "```text", answer,
                      "```"]
    text = "\n".join(lines) + "\n"
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
