"""The README is the front door: its Python blocks run as written, and every `aevae` command
line it shows parses with the real argument parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_blocks_run_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks("python")[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})


def command_lines() -> list[str]:
    """The `aevae` lines of its bash blocks and the first cell of its command table."""
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" && ")[-1].split("#")[0].strip()
            if line.startswith("aevae "):
                lines.append(line)
    lines += re.findall(r"^\| `(aevae [^`]+)` \|", README.read_text(), flags=re.M)
    return lines


def test_readme_shows_commands():
    assert len(command_lines()) >= 8


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_parses(line):
    from aevae.cli import build_parser

    arguments = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(arguments.handler)


def test_readme_is_a_front_door():
    """At most 200 lines; its headline table quotes the benchmark it names, figure for figure."""
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    results = (README.parent / "benchmarks" / "results" / "evaluate_mnist.md").read_text()
    table = text.split("## A headline result", 1)[1].split("\n\n")[2]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 3
    for row in rows[1:]:
        for figure in re.findall(r"\| (-?[\d.]+|n/a)(?= \|)", row):
            assert figure in results, (row, figure)


def test_readme_links_resolve():
    root = README.parent
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not target.startswith("http"):
            assert (root / target).exists(), target


def test_literature_table_quotes_the_tables_it_links():
    """Every figure in "Against the literature", aevae's and the anchors beside it, is in one of
    the results tables its row links to."""
    text = README.read_text()
    table = text.split("## Against the literature", 1)[1].split("\n\n")[2]
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert len(rows) >= 3
    for row in rows:
        links = re.findall(r"\]\(([^)]+)\)", row)
        results = "\n".join((README.parent / link).read_text() for link in links)
        cells = re.sub(r"\]\([^)]+\)", "]", " | ".join(row.split(" | ")[1:])).split(" | ")
        figures = re.findall(r"\d+\.\d+", " ".join(cells))
        assert figures, row
        for figure in figures:
            assert figure in results, (row, figure)
