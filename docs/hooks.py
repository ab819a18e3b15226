"""MkDocs hooks (mkdocs.yml: ``hooks: [docs/hooks.py]``): the pages that present files kept
elsewhere in the repository are generated at build time from those files, never copied by hand.

- ``benchmarks/<name>.md`` for every ``benchmarks/results/<name>.md``, the tables the benchmark
  scripts write, with ``benchmarks/index.md`` listing them one line each, and every
  ``benchmarks/results/*.svg`` figure next to them (a page shows the figures named after it);
- ``reliability.md`` from ``RELIABILITY.md`` at the repository root.

The pages exist only in the build: nothing is written into docs/. ``on_config`` lists the
benchmark pages in the nav after ``benchmarks/index.md``; ``on_files`` adds the files. The
module imports without MkDocs, so the tests can read ``generated_pages()``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RELIABILITY = ROOT / "RELIABILITY.md"
BENCHMARKS_INDEX = "benchmarks/index.md"
RELIABILITY_PAGE = "reliability.md"

# Words in file names that are written in capitals as a title.
_CAPITALS = {"mnist": "MNIST", "nll": "NLL", "odds": "ODDS", "vae": "VAE", "ae": "AE",
             "svg": "SVG", "vrnn": "VRNN", "dci": "DCI", "mig": "MIG"}
# Roles of reStructuredText cross-references that some docstrings use; the rendered reference
# shows the name in code without the role prefix.
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):(?=<code>)")


def _leading_h1(text: str) -> str | None:
    """The text of the level-one ATX heading the file opens with, or None."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    match = re.match(r"#\s+(.+?)\s*#*\s*$", first)
    return match.group(1) if match else None


def _title_from_name(stem: str) -> str:
    words = [_CAPITALS.get(word, word) for word in re.split(r"[_\-\s]+", stem) if word]
    title = " ".join(words)
    return title[:1].upper() + title[1:]


def benchmark_results() -> list[Path]:
    """The result tables in benchmarks/results, in name order."""
    return sorted(RESULTS.glob("*.md"))


def benchmark_figures() -> list[Path]:
    return sorted(RESULTS.glob("*.svg"))


def benchmark_title(path: Path) -> str:
    """A result page's title: the level-one heading the file opens with, else made from its
    name (``evaluate_mnist.md``: "Evaluate MNIST")."""
    return _leading_h1(path.read_text(encoding="utf-8")) or _title_from_name(path.stem)


def _figure_alt(svg: Path) -> str:
    """The figure's own <title>, else its name, as the image's alternative text."""
    match = re.search(r"<title>(.*?)</title>", svg.read_text(encoding="utf-8"), flags=re.S)
    text = html.unescape(match.group(1)).strip() if match else _title_from_name(svg.stem)
    return text.replace("[", "(").replace("]", ")")


def _script(stem: str) -> str | None:
    script = ROOT / "benchmarks" / f"{stem}.py"
    return f"benchmarks/{stem}.py" if script.is_file() else None


def _provenance(source: str, script: str | None) -> str:
    see = f" (the script: `{script}`)" if script else ""
    return f"*Generated when the site is built from `{source}`{see}.*"


def _figure_owner(svg: Path, stems: list[str]) -> str | None:
    """The result a figure belongs to: the longest name that is the figure's name or starts
    it (``sequences_vrnn.svg``: ``sequences``)."""
    owners = [stem for stem in stems if svg.stem == stem or svg.stem.startswith(stem + "_")]
    return max(owners, key=len, default=None)


def benchmark_page(path: Path) -> str:
    """The page for one result file: the file as it is, under its title and a provenance line,
    followed by the figures that belong to it and that it does not show already."""
    text = path.read_text(encoding="utf-8").strip("\n")
    provenance = _provenance(f"benchmarks/results/{path.name}", _script(path.stem))
    if _leading_h1(text) is not None:
        heading, _, rest = text.lstrip("\n").partition("\n")
        body = f"{heading}\n\n{provenance}\n{rest}"
    else:
        body = f"# {benchmark_title(path)}\n\n{provenance}\n\n{text}"
    stems = [result.stem for result in benchmark_results()]
    figures = [svg for svg in benchmark_figures()
               if _figure_owner(svg, stems) == path.stem and svg.name not in text]
    for svg in figures:
        body += f"\n\n![{_figure_alt(svg)}]({svg.name})"
    return body + "\n"


def benchmark_index(results: list[Path]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "The measurements behind the guide's numbers: the result files that the scripts in "
        "`benchmarks/` leave in `benchmarks/results/`, one page each, shown as they are in "
        "the repository. The pages are generated when the site is built, so they always show "
        "the files' current contents.",
        "",
    ]
    for path in results:
        script = _script(path.stem)
        written = f" (`{script}`)" if script else ""
        lines.append(f"- [{benchmark_title(path)}]({path.stem}.md): "
                     f"`benchmarks/results/{path.name}`{written}")
    return "\n".join(lines) + "\n"


def reliability_page() -> str:
    text = RELIABILITY.read_text(encoding="utf-8").strip("\n")
    provenance = "*Generated when the site is built from `RELIABILITY.md` at the repository root.*"
    if _leading_h1(text) is not None:
        heading, _, rest = text.lstrip("\n").partition("\n")
        return f"{heading}\n\n{provenance}\n{rest}\n"
    return f"# Reliability\n\n{provenance}\n\n{text}\n"


def benchmark_nav() -> list[dict[str, str]]:
    """The nav entries of the generated result pages, in name order."""
    return [{benchmark_title(path): f"benchmarks/{path.stem}.md"} for path in benchmark_results()]


def generated_pages() -> dict[str, str | Path]:
    """Every file the build adds to the site, by its path under docs/: a page's Markdown, or
    the path of a file copied as it is."""
    results = benchmark_results()
    pages: dict[str, str | Path] = {BENCHMARKS_INDEX: benchmark_index(results)}
    for path in results:
        pages[f"benchmarks/{path.stem}.md"] = benchmark_page(path)
    for svg in benchmark_figures():
        pages[f"benchmarks/{svg.name}"] = svg
    pages[RELIABILITY_PAGE] = reliability_page()
    return pages


def _extend_nav(nav: list) -> bool:
    """Put the result pages after the benchmarks index wherever the nav lists it."""
    for index, entry in enumerate(nav):
        if entry == BENCHMARKS_INDEX:
            present = {value for item in nav if isinstance(item, dict) for value in item.values()}
            nav[index + 1:index + 1] = [item for item in benchmark_nav()
                                        if not set(item.values()) & present]
            return True
        if isinstance(entry, dict):
            for key, value in entry.items():
                if value == BENCHMARKS_INDEX:
                    entry[key] = [BENCHMARKS_INDEX]
                    value = entry[key]
                if isinstance(value, list) and _extend_nav(value):
                    return True
    return False


def on_config(config):
    if config.nav is not None:
        _extend_nav(config.nav)
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for src_uri, content in generated_pages().items():
        existing = files.get_file_from_path(src_uri)
        if existing is not None:
            files.remove(existing)
        if isinstance(content, Path):
            files.append(File.generated(config, src_uri, abs_src_path=str(content)))
        else:
            files.append(File.generated(config, src_uri, content=content))
    return files


def on_page_content(html_text, page, config, files):
    if page.file.src_uri.startswith("reference/"):
        html_text = _ROLE.sub("", html_text)
        # A reStructuredText "Example::" introduces the indented code block after it.
        html_text = html_text.replace("::</p>", ":</p>")
    return html_text
