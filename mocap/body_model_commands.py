"""`mocap body-model standin|convert`: build the stand-in body model files, convert an SMPL .pkl to .npz.

``standin --out DIR [--gender G]`` writes ``SMPL_NEUTRAL.npz``, ``SMPL_MALE.npz`` and ``SMPL_FEMALE.npz``
(or the one gender) of the stand-in model (``fitting.standin_model``: SMPL's file layout and joint
tree, made up here, not SMPL). ``convert FILE.pkl OUT.npz`` reads an official SMPL pickle without
chumpy (``fitting.smpl_pickle``) and writes its model arrays to a plain .npz, checked by loading it
back the way ``fitting.body_model`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from fitting.body_model import GENDERS, SMPL_DOWNLOAD, arrays_from_file


def add_body_model_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``body-model`` to the mocap verbs; its actions set ``func(args, console) -> exit code``."""
    p = verbs.add_parser("body-model", help="SMPL body model files: build the stand-in, convert an SMPL .pkl",
                         description="Body model files for fitting. Real SMPL files come from "
                                     f"{SMPL_DOWNLOAD}; without them the stand-in model is used.")
    actions = p.add_subparsers(dest="body_model_action", metavar="ACTION", required=True)
    s = actions.add_parser("standin", help="write the stand-in model (SMPL layout, not SMPL) as SMPL_*.npz")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--gender", choices=(*GENDERS, "all"), default="all", help="which gender (default all three)")
    s.set_defaults(func=run_standin)
    c = actions.add_parser("convert", help="convert an official SMPL .pkl to a plain .npz (no chumpy needed)")
    c.add_argument("pkl", help="the SMPL model pickle, e.g. basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
    c.add_argument("out", help="the .npz to write, e.g. SMPL_NEUTRAL.npz")
    c.set_defaults(func=run_convert)
    return p


def run_standin(args: argparse.Namespace, console: Console) -> int:
    """``mocap body-model standin``: build and write the stand-in files; print what was written."""
    from fitting.standin_model import write_standin

    genders = GENDERS if args.gender == "all" else (args.gender,)
    for path in write_standin(Path(args.out), genders=genders):
        model = arrays_from_file(path)
        console.print(f"wrote {path}: {model.gender}, {model.num_vertices} vertices, {len(model.faces)} faces, "
                      f"{model.num_betas} betas, {len(model.landmark_names)} landmarks", markup=False)
    console.print("This is the mocap stand-in body model (simulated, not SMPL). For real SMPL fits download the "
                  f"SMPL files from {SMPL_DOWNLOAD} and point MOCAP_BODY_MODELS at their folder.", markup=False)
    return 0


def run_convert(args: argparse.Namespace, console: Console) -> int:
    """``mocap body-model convert``: SMPL .pkl -> .npz, checked by loading it back."""
    from fitting.smpl_pickle import convert_pickle

    src = Path(args.pkl)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file; give the SMPL .pkl downloaded from {SMPL_DOWNLOAD}")
    out = convert_pickle(src, args.out)
    model = arrays_from_file(out, gender=_gender_from_name(src.name))
    console.print(f"wrote {out}: {model.num_vertices} vertices, {len(model.faces)} faces, {model.num_betas} betas "
                  f"(from {src})", markup=False)
    return 0


def _gender_from_name(name: str) -> str:
    low = name.lower()
    if "female" in low or "_f_" in low:
        return "female"
    if "male" in low or "_m_" in low:
        return "male"
    return "neutral"
