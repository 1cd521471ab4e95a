"""``report/index.html``: one static page of a session's results, for a browser or for mailing around as a folder.

Every link is relative to ``report/`` (the session folder can move): the stages' summaries as text
(``reconstruction_summary.txt``, ``fit/summary.txt``, ``overlay_<camera>.txt``, the capture stats), every PNG
under ``report/`` as an image, the overlay videos linked, and the files of ``export/`` listed with their sizes
and what their sidecars say. ``mocap process`` writes it after its stages; it reads only what is on disk.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
pre{background:#f5f5f5;padding:.8em;overflow-x:auto;font-size:.85em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}.failed{color:#b00}.muted{color:#777}"""

# (section title, summary files, figure files or glob patterns) relative to report/
_SECTIONS = (
    ("Recording", ("capture_stats.json",), ()),
    ("Reconstruction", ("reconstruction_summary.txt",), ("tracks.png", "reprojection.png")),
    ("Body fit", ("fit/summary.txt",), ("fit/*.png",)),
)


def write_report_page(session: Path, stages: Sequence[tuple[str, str, str]] = (), title: str | None = None) -> Path:
    """Write ``session/report/index.html`` from what the session holds; ``stages``: rows (stage, status, time)
    of the run that wrote it. Returns the page's path."""
    session = Path(session)
    report = session / "report"
    report.mkdir(parents=True, exist_ok=True)
    shown: set[Path] = set()
    parts = [f"<h1>{_e(title or f'mocap session {session.resolve().name}')}</h1>",
             f"<p class=muted>written {_e(time.strftime('%Y-%m-%d %H:%M:%S'))} from the files in "
             f"{_e(str(session))}</p>"]
    if stages:
        parts.append("<h2>Stages</h2>" + _table(("stage", "status", "time"), [
            (s, f"<span class=failed>{_e(st)}</span>" if st.startswith("failed") else _e(st), _e(t))
            for s, st, t in stages], escape=False))
    for heading, summaries, figures in _SECTIONS:
        body = _summaries(report, summaries, shown) + _figures(report, figures, shown)
        if body:
            parts.append(f"<h2>{_e(heading)}</h2>" + body)
    parts.append(_overlays(report, shown))
    parts.append(_exports(session))
    rest = _figures(report, ("**/*.png",), shown)
    if rest:
        parts.append("<h2>Other figures</h2>" + rest)
    page = (f"<!doctype html>\n<html><head><meta charset=utf-8><title>{_e(session.resolve().name)}: mocap report"
            f"</title>\n<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(p for p in parts if p)
            + "\n</body></html>\n")
    path = report / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _href(path: Path, base: Path) -> str:
    """A relative URL from base (a folder) to path, POSIX separators, escaped for an attribute."""
    import os

    return _e(Path(os.path.relpath(path, base)).as_posix())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], escape: bool = True) -> str:
    cell = _e if escape else str
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summaries(report: Path, names: Sequence[str], shown: set[Path]) -> str:
    out = []
    for name in names:
        path = report / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".json":
            try:
                text = json.dumps(json.loads(text), indent=1)
            except ValueError:
                pass
        shown.add(path)
        link = f"<a href=\"{_href(path, report)}\">{_e(name)}</a>"
        pre = f"<pre>{_e(text.rstrip())}</pre>"
        out.append(f"<details><summary>{link}</summary>{pre}</details>" if path.suffix == ".json"
                   else f"<p>{link}</p>{pre}")
    return "".join(out)


def _figures(report: Path, patterns: Sequence[str], shown: set[Path]) -> str:
    out = []
    for pattern in patterns:
        for path in sorted(report.glob(pattern)):
            if path in shown or not path.is_file():
                continue
            shown.add(path)
            src = _href(path, report)
            out.append(f"<figure><img src=\"{src}\" alt=\"{_e(path.name)}\"><figcaption class=muted>{src}"
                       f"</figcaption></figure>")
    return "".join(out)


def _overlays(report: Path, shown: set[Path]) -> str:
    videos = sorted(report.glob("overlay_*.mp4"))
    if not videos:
        return ""
    out = ["<h2>Overlays</h2><p class=muted>reprojected 3D skeletons (lines) and 2D detections (circles) on the "
           "recorded video (mp4v: opens in VLC or mpv; most browsers do not play it)</p>"]
    for video in videos:
        out.append(f"<p><a href=\"{_href(video, report)}\">{_e(video.name)}</a> ({_size(video)})</p>")
        out.append(_summaries(report, (video.with_suffix(".txt").name,), shown))
        out.append(_figures(report, (video.with_suffix(".png").name,), shown))
    return "".join(out)


def _exports(session: Path) -> str:
    folder, report = session / "export", session / "report"
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        return ""
    info: dict[str, dict] = {}
    for sidecar in folder.glob("track_*.json"):
        try:
            doc = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        for entry in (doc.get("files") or {}).values():
            if isinstance(entry, dict) and "file" in entry:
                info[entry["file"]] = entry
    rows = []
    for path in files:
        i = info.get(path.name, {})
        details = ", ".join(f"{k} {i[k]}" for k in ("frames", "fps", "units", "up") if k in i)
        if i.get("body_model_standin"):
            details += ", stand-in body model"
        rows.append((f"<a href=\"{_href(path, report)}\">{_e(path.name)}</a>", _e(_size(path)), _e(details)))
    return "<h2>Export</h2>" + _table(("file", "size", "frames, fps, units, up axis"), rows, escape=False)


def _size(path: Path) -> str:
    n = float(path.stat().st_size)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
