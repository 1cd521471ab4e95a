"""Writing TOML text for rig files: every float exact (shortest repr), each matrix row on its own line.

``tomli_w`` puts every number of a nested list on a line of its own, which makes a 3x3 matrix 15 lines
long; these functions write the same TOML more readably. The output is plain TOML that ``tomllib``
reads back to the same values, bit for bit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key(name: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return name if _BARE_KEY.match(name) else string(name)


def string(s: str) -> str:
    """A TOML basic string, escaping quotes, backslashes and control characters."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as Python values."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def value(v: Any) -> str:
    """One TOML value on one line: bool, int, float (exact), string, or (nested) list of them."""
    v = _plain(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def entry(name: str, v: Any) -> str:
    """``name = value``; a list of lists (a matrix) is written one row per line."""
    v = _plain(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(_plain(r), (list, tuple)) for r in v):
        rows = "".join(f"    {value(r)},\n" for r in v)
        return f"{key(name)} = [\n{rows}]"
    return f"{key(name)} = {value(v)}"


def table(header: str, items: Iterable[tuple[str, Any]]) -> str:
    """A table (``[header]`` or ``[[header]]``, given with its brackets) and its entries, skipping None."""
    lines = [header] + [entry(k, v) for k, v in items if v is not None]
    return "\n".join(lines) + "\n"


def comment(text: str) -> str:
    """Text as TOML comment lines."""
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())
