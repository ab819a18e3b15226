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
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" && ")[-1].split("#")[0].strip()
            if line.startswith("aevae "):
                lines.append(line)
    return lines


def test_readme_shows_commands():
    assert len(command_lines()) >= 10


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_parses(line):
    from aevae.cli import build_parser

    arguments = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(arguments.handler)
