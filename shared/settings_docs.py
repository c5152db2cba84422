"""The documentation of the settings, written from their declarations (:mod:`shared.config`).

Each settings module appends a plain-text table to its docstring (:func:`docstring`); README.md's
"Configuration" table, between ``<!-- settings:begin`` and ``<!-- settings:end -->``, is written by

    python -m shared.settings_docs README.md auth_server.settings resource_server.settings shared.logging

which rewrites the table from the settings classes those modules declare (``--check`` only reports
whether it is current). A setting two processes declare alike is one row, naming both.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.config import declarations, read_by

BEGIN = "<!-- settings:begin"
END = "<!-- settings:end -->"
COMMAND = "python -m shared.settings_docs"


def docstring(doc: str | None, cls: type) -> str:
    """``doc`` followed by one entry per setting of ``cls``: field, variable, default, values, meaning."""
    lines = [(doc or "").rstrip(), "", f"Settings of the {read_by(cls)}", "-" * (len(read_by(cls)) + 16)]
    for name, declared in declarations(cls):
        lines.append(
            f"{name}: {declared.variable} = {declared.shown_default()}  ({declared.reader.describe()})"
        )
        lines.extend(textwrap.wrap(declared.doc, width=96, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines) + "\n"


def settings_classes(modules: Iterable[str]) -> list[type]:
    """The settings classes declared in ``modules`` (not imported into them), in order."""
    found: list[type] = []
    for name in modules:
        module = importlib.import_module(name)
        found.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and value.__module__ == module.__name__
            and hasattr(value, "__settings_read_by__")
        )
    return found


def markdown_table(classes: Sequence[type]) -> str:
    """One row per variable and meaning, in declaration order, the rows of one variable together; a
    setting declared alike by several classes is one row naming them all."""
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    for cls in classes:
        for _, declared in declarations(cls):
            row = (declared.variable, declared.shown_default(), declared.reader.describe(), declared.doc)
            rows.setdefault(row, []).append(read_by(cls))
    first = {variable: position for position, (variable, *_) in reversed(list(enumerate(rows)))}
    lines = ["| variable | read by | default | values | meaning |", "|---|---|---|---|---|"]
    for (variable, default, values, doc), readers in sorted(rows.items(), key=lambda row: first[row[0][0]]):
        cells = (f"`{variable}`", ", ".join(readers), default, values, doc)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def command(path: str, modules: Sequence[str]) -> str:
    return " ".join((COMMAND, path, *modules))


def block(path: str, modules: Sequence[str]) -> str:
    """The generated part of ``path``, markers included."""
    note = f"generated from the declarations by `{command(path, modules)}`; edit those, not this"
    return "\n".join((f"{BEGIN}: {note} -->", markdown_table(settings_classes(modules)), END))


def current_block(text: str) -> str:
    """The generated part of a document as it stands, markers included."""
    start = text.find(BEGIN)
    end = text.find(END, start)
    if start < 0 or end < 0:
        raise ValueError(f"no {BEGIN} … {END} markers")
    return text[start : end + len(END)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report whether the table is current")
    parser.add_argument("document", help="the Markdown file holding the table, e.g. README.md")
    parser.add_argument("modules", nargs="+", help="modules declaring settings classes, in table order")
    args = parser.parse_args(argv)
    path = Path(args.document)
    text = path.read_text()
    wanted = block(args.document, args.modules)
    if current_block(text) == wanted:
        return 0
    if args.check:
        print(f"{path}: the settings table is out of date; run `{command(args.document, args.modules)}`")
        return 1
    path.write_text(text.replace(current_block(text), wanted, 1))
    print(f"{path}: settings table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
