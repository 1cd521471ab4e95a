"""The report of an evaluation against ground truth: tables in markdown and JSON, and one plot.

``summary.md``: the headline metrics, then per joint (MPJPE, PA-MPJPE, PCK, PDJ), per limb (PCP) and AP per
threshold. ``summary.json``: the same numbers for scripts and benchmarks. ``eval.png``: MPJPE per joint (bars),
the PCK curve over 0-200 mm, and MPJPE over time. Definitions: ``reconstruction.metrics``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from reconstruction.metrics import PCK_THRESHOLDS, EvalResult

PCK_CURVE_M = np.linspace(0.0, 0.2, 81)


def _num(v: float, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{100 * v:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def summary_markdown(result: EvalResult, title: str = "Evaluation against ground truth") -> str:
    """The report's tables as markdown (readable as plain text too)."""
    s = result.summary()
    lines = [f"# {title}", "",
             f"{result.num_frames} frames compared (matched by {result.frames_matched_by}; prediction "
             f"{result.pred_frames_total} frames, truth {result.truth_frames_total}), {len(result.joint_names)} "
             f"joints by name. Missing predictions count as misses in PCK, PCP, PDJ and AP and are left out of "
             f"MPJPE and PA-MPJPE (completeness says how many).", ""]
    overall = [["MPJPE", _num(s["mpjpe_mm"]), "mm"], ["PA-MPJPE", _num(s["pa_mpjpe_mm"]), "mm"],
               ["completeness", _pct(s["completeness"]), "%"]]
    overall += [[f"PCK@{t * 1000:g} mm", _pct(s[f"pck@{t * 1000:g}mm"]), "%"] for t in PCK_THRESHOLDS]
    overall += [["PCP (alpha 0.5)", _pct(s["pcp"]), "%"], ["PDJ@0.2 torso", _pct(s["pdj@0.2"]), "%"]]
    overall += [[f"AP@{t * 1000:g} mm", _pct(a), "%"] for t, a in zip(result.ap.thresholds, result.ap.ap, strict=True)]
    overall += [["identity switches", str(result.identity_switches), ""],
                ["false positives", str(result.false_positives), "people"]]
    lines += _table(["metric", "value", "unit"], overall) + ["", "## Per joint", ""]
    pck = result.pck(PCK_THRESHOLDS, per_joint=True)
    rows = [[name, _num(m), _num(pa), *(_pct(p) for p in pck[:, j]), _pct(d)]
            for j, (name, m, pa, d) in enumerate(zip(result.joint_names, result.mpjpe_per_joint_mm,
                                                     result.pa_mpjpe_per_joint_mm, result.pdj_per_joint,
                                                     strict=True))]
    lines += _table(["joint", "MPJPE mm", "PA-MPJPE mm", *(f"PCK@{t * 1000:g} %" for t in PCK_THRESHOLDS),
                     "PDJ %"], rows)
    if result.limb_names:
        lines += ["", "## PCP per limb", ""]
        lines += _table(["limb", "PCP %"], [[n, _pct(v)] for n, v in zip(result.limb_names, result.pcp_per_limb,
                                                                          strict=True)])
    return "\n".join(lines) + "\n"


def _json_ready(v):
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_ready(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def plot_eval(result: EvalResult, path: str | Path, title: str = "3D error against ground truth") -> Path:
    """Write a PNG: MPJPE per joint (bars), the PCK curve 0-200 mm, MPJPE per frame over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(10, 10), dpi=100)
    J = len(result.joint_names)
    a.bar(np.arange(J), np.nan_to_num(result.mpjpe_per_joint_mm), color="tab:blue", label="MPJPE")
    a.plot(np.arange(J), result.pa_mpjpe_per_joint_mm, "o", color="tab:orange", ms=4, label="PA-MPJPE")
    a.set_xticks(np.arange(J), result.joint_names, rotation=70, fontsize=7)
    a.set_ylabel("mean error (mm)")
    a.set_title(f"{title}: MPJPE {_num(result.mpjpe_mm)} mm, PA-MPJPE {_num(result.pa_mpjpe_mm)} mm")
    a.legend(fontsize=8)
    b.plot(PCK_CURVE_M * 1000, 100 * result.pck(PCK_CURVE_M), color="tab:green")
    b.set_xlabel("threshold (mm)")
    b.set_ylabel("PCK (%)")
    b.set_ylim(0, 100)
    b.grid(True, lw=0.3)
    t = (result.t_ns - result.t_ns[0]) / 1e9 if result.num_frames else np.zeros(0)
    c.plot(t, result.mpjpe_over_time_mm, lw=0.8, color="tab:red")
    c.set_xlabel("time (s)")
    c.set_ylabel("MPJPE per frame (mm)")
    c.grid(True, lw=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_eval_report(result: EvalResult, folder: str | Path, title: str = "Evaluation against ground truth"
                      ) -> list[Path]:
    """Write summary.md, summary.json and eval.png into folder; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "summary.md"
    md.write_text(summary_markdown(result, title))
    data = {"summary": result.summary(), "frames_matched_by": result.frames_matched_by,
            "joint_names": list(result.joint_names), "mpjpe_per_joint_mm": result.mpjpe_per_joint_mm,
            "pa_mpjpe_per_joint_mm": result.pa_mpjpe_per_joint_mm,
            "pck_thresholds_m": list(PCK_THRESHOLDS), "pck_per_joint": result.pck(PCK_THRESHOLDS, per_joint=True),
            "pdj_per_joint": result.pdj_per_joint, "limb_names": list(result.limb_names),
            "pcp_per_limb": result.pcp_per_limb, "ap_thresholds_m": result.ap.thresholds, "ap": result.ap.ap,
            "ap_recall": result.ap.recall}
    js = folder / "summary.json"
    js.write_text(json.dumps(_json_ready(data), indent=1) + "\n")
    return [md, js, plot_eval(result, folder / "eval.png", title)]
