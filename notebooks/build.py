"""Build the tutorial notebooks from their sources in `notebooks/src/`.

Each source is a plain Python file in the "percent" format (the one jupytext reads):

    # %% [markdown]
    # # A title
    # Some prose.

    # %% tags=["parameters"]
    BUDGET = ...

    # %%
    code()

so the tutorials are reviewed, diffed and linted as code, and each source also runs
as a script (`python notebooks/src/01_interaction_loop.py`). This script turns every
source into `notebooks/<name>.ipynb`, without outputs and with stable cell ids:

    python notebooks/build.py           # write the notebooks
    python notebooks/build.py --check   # exit 1 if a notebook differs from its source
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def _cell(kind: str, lines: list[str], tags: list[str], cell_id: str):
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if kind == "markdown":
        bad = [line for line in lines if line and not (line == "#" or line.startswith("# "))]
        if bad:
            raise ValueError(f"markdown line not commented with '# ': {bad[0]!r}")
        cell = nbformat.v4.new_markdown_cell("\n".join(line[2:] for line in lines))
    else:
        cell = nbformat.v4.new_code_cell("\n".join(lines))
    if tags:
        cell.metadata["tags"] = tags
    cell.id = cell_id
    return cell


def parse(source: str, name: str) -> list:
    """Cells of a percent-format source; text before the first marker is dropped."""
    cells, kind, tags, lines = [], None, [], []
    for line in source.splitlines():
        match = _MARKER.match(line)
        if match:
            if kind is not None:
                cells.append(_cell(kind, lines, tags, f"{name}-{len(cells):02d}"))
            kind = "markdown" if match["markdown"] else "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            lines = []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append(_cell(kind, lines, tags, f"{name}-{len(cells):02d}"))
    return cells


def build(path: Path) -> str:
    """The notebook JSON for one source file."""
    name = path.stem
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(path.read_text(), name)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a notebook is missing or differs from its source")
    args = parser.parse_args(argv)
    stale = []
    for source in sorted(SOURCES.glob("[0-9][0-9]_*.py")):
        target = HERE / f"{source.stem}.ipynb"
        text = build(source)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
