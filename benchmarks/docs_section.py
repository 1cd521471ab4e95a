"""A benchmark's section of docs/benchmarks.md (between its own markers) and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def machine_line() -> str:
    import platform

    import numpy as np

    cpu = "x86_64 CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{cpu}, {os.cpu_count()} cores, no GPU; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}")


def write_section(docs: Path, name: str, section_lines: list[str]) -> None:
    """Replace the ``<!-- name:begin -->``..``<!-- name:end -->`` section of docs (or append it)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = "\n".join([begin, *section_lines, end])
    text = docs.read_text() if docs.exists() else "# Benchmarks\n\nFigures measured by `make bench`.\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(text)


def report(title: str, table: str, notes: list[str], argv: list[str] | None, write_docs=None) -> int:
    """Print a benchmark's table and notes; with ``write_docs(table, notes, shown_argv)`` also record them
    in docs/benchmarks.md (``shown_argv``: the command's arguments without ``--docs``)."""
    import sys

    print(f"## {title}\n")
    print(table)
    print()
    print("\n".join(notes))
    if write_docs is not None:
        write_docs(table, notes, [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--docs"])
        print("wrote docs/benchmarks.md")
    return 0
