"""The documentation site (mkdocs.yml, docs/): every public name has an API reference entry,
every Python block on a page runs as written, every `aevae` command line parses with the real
argument parser, and every page of the nav exists or is generated at build time.

A Python block whose fence follows a `<!-- slow -->` line is marked slow (`pytest -m slow`)."""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
MKDOCS_YML = ROOT / "mkdocs.yml"
SLOW_MARKER = "<!-- slow -->"
# The modules whose every name in __all__ must have an entry in docs/reference/.
DOCUMENTED_MODULES = ("aevae", "aevae.models", "aevae.training", "aevae.data", "aevae.metrics",
                      "aevae.sklearn", "aevae.study")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    slow: bool

    @property
    def name(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page.as_posix()}:{self.line}"


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (stripped.startswith(fence) and set(stripped) == {fence[0]}
            and len(stripped) >= len(fence))


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, indented ones (in admonitions, lists) too,
    with their indentation removed."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        fence = next((f for f in ("```", "~~~") if stripped.startswith(f)), None)
        if fence is None:
            index += 1
            continue
        fence = stripped[:len(stripped) - len(stripped.lstrip(fence[0]))]
        info = stripped[len(fence):].strip()
        language = info.split()[0].strip("{}.").lower() if info else ""
        end = index + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        body = textwrap.dedent("\n".join(lines[index + 1:end]))
        previous = lines[index - 1].strip() if index else ""
        blocks.append(Block(page, index + 1, language, body + "\n", previous == SLOW_MARKER))
        index = end + 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(language: str, among: list[Path] | None = None) -> list[Block]:
    return [block for page in (pages() if among is None else among)
            for block in fenced_blocks(page) if block.language == language]


def command_lines(among: list[Block]) -> list[tuple[str, str]]:
    """(where, line) of every `aevae ...` command in the given shell blocks; continuation
    lines are joined, a line's comment dropped, each part of `a && b` taken on its own."""
    found = []
    for block in among:
        for line in block.code.replace("\\\n", " ").splitlines():
            for part in line.split("#")[0].split("&&"):
                part = " ".join(part.split()).removeprefix("$ ")
                if part.startswith("aevae "):
                    found.append((block.name, part))
    return found


def _python_params():
    return [pytest.param(block, id=block.name,
                         marks=[pytest.mark.slow] if block.slow else [])
            for block in blocks("python")]


# Modules of aevae's optional extras: a block that needs one skips where the extra is absent
# (as the extra's own tests do), so `pip install -e ".[test]"` runs clean; CI installs them.
OPTIONAL_MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboard", "ray": "ray",
                    "music21": "music", "pyod": "benchmarks", "pythae": "benchmarks"}


@pytest.mark.parametrize("block", _python_params())
def test_python_blocks_run_as_written(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block.code, block.name, "exec"), {"__name__": "__main__"})
    except ImportError as error:
        missing = (error.name or "").split(".")[0]
        cause = error.__cause__ or error.__context__
        if missing not in OPTIONAL_MODULES and isinstance(cause, ImportError):
            missing = (cause.name or "").split(".")[0]  # aevae's one-line message, from it
        if missing in OPTIONAL_MODULES and importlib.util.find_spec(missing) is None:
            pytest.skip(f"needs the {OPTIONAL_MODULES[missing]} extra ({missing})")
        raise
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")


@pytest.mark.parametrize(("where", "line"),
                         [pytest.param(where, line, id=f"{where} {line}")
                          for where, line in command_lines(blocks("bash"))])
def test_every_command_line_parses(where, line):
    from aevae.cli import build_parser

    arguments = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(arguments.handler), where


def test_block_reader(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        # A page

        ```python
        x = 1
        ```

        <!-- slow -->
        ```python title="fit.py"
        y = 2
        ```

        !!! note
            ````bash
            aevae models  # list them
            cd here && aevae compare --data digits \\
                --out there
            ````

        ```text
        aevae not-a-command
        ```
        """))
    found = fenced_blocks(page)
    assert [(b.line, b.language, b.slow) for b in found] == [
        (3, "python", False), (8, "python", True), (13, "bash", False), (19, "text", False)]
    assert found[1].code == "y = 2\n"
    assert command_lines(blocks("bash", [page])) == [
        (found[2].name, "aevae models"), (found[2].name, "aevae compare --data digits --out there")]


# --- The API reference ---------------------------------------------------------------------


def directives(page: Path) -> list[tuple[str, dict]]:
    """(identifier, options) of every `::: identifier` directive of a page."""
    import yaml

    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        if not line.startswith("::: "):
            continue
        block = []
        for following in lines[index + 1:]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            block.append(following)
        options = yaml.safe_load(textwrap.dedent("\n".join(block))) or {}
        found.append((line[4:].strip(), options.get("options") or {}))
    return found


def resolve(identifier: str):
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(identifier)


@cache
def documented() -> dict[str, list[str]]:
    """Name -> the full paths the reference documents under that name: `:::` targets, and
    the names in a directive's `members:` list."""
    names: dict[str, list[str]] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for identifier, options in directives(page):
            names.setdefault(identifier.rsplit(".", 1)[-1], []).append(identifier)
            members = options.get("members")
            if isinstance(members, list):
                for member in members:
                    names.setdefault(member, []).append(f"{identifier}.{member}")
    return names


def test_reference_pages_have_directives():
    assert len(documented()) > 100


@pytest.mark.parametrize("module", DOCUMENTED_MODULES)
def test_every_public_name_has_a_reference_entry(module):
    """A name added to a module's __all__ needs a `::: defining.module.Name` line (or a
    `members:` entry) in docs/reference/*.md; the entry must be that very object."""
    imported = importlib.import_module(module)
    missing = []
    for name in imported.__all__:
        value = getattr(imported, name)
        if not any(resolve(path) is value for path in documented().get(name, [])):
            missing.append(name)
    assert not missing, f"{module}: no entry in docs/reference/ for {', '.join(missing)}"


def test_every_registered_model_and_config_has_a_reference_entry():
    from aevae.models import MODELS

    missing = [f"{name} ({cls.__name__})" for name, cls in MODELS.items()
               if not any(resolve(path) is cls for path in documented().get(cls.__name__, []))]
    missing += [f"{name} ({cls.Config.__name__})" for name, cls in MODELS.items()
                if not any(resolve(path) is cls.Config
                           for path in documented().get(cls.Config.__name__, []))]
    assert not missing, f"registered models without a reference entry: {', '.join(missing)}"
    table = (REFERENCE / "models.md").read_text(encoding="utf-8")
    assert not [name for name in MODELS if f"| `{name}` |" not in table]


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(DOCS).as_posix())
def test_every_directive_names_an_object(page):
    for identifier, _ in directives(page):
        resolve(identifier)


# --- The nav and the generated pages -------------------------------------------------------


@cache
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    written, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no docs/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = written
    return module


def mkdocs_config() -> dict:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    # MkDocs' own tags (!ENV, !relative) mean nothing to these checks.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(MKDOCS_YML.read_text(encoding="utf-8"), Loader=Loader)


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for entry in nav or [] for page in nav_pages(entry)]


def test_every_nav_page_exists_or_is_generated():
    generated = set(hooks().generated_pages())
    missing = [page for page in nav_pages(mkdocs_config()["nav"])
               if page not in generated and not (DOCS / page).is_file()]
    assert not missing, f"in mkdocs.yml's nav but not in docs/ nor generated: {missing}"


def test_every_page_is_in_the_nav():
    nav = mkdocs_config()["nav"]
    hooks()._extend_nav(nav)
    listed = set(nav_pages(nav))
    generated = {uri for uri in hooks().generated_pages() if uri.endswith(".md")}
    on_disk = {page.relative_to(DOCS).as_posix() for page in pages()}
    assert sorted((on_disk | generated) - listed) == []


def test_generated_pages_are_never_in_docs():
    assert not [uri for uri in hooks().generated_pages() if (DOCS / uri).exists()]
