"""Read the official SMPL ``.pkl`` model files without chumpy, and convert them to a plain ``.npz``.

The files from https://smpl.is.tue.mpg.de (``basicmodel_*_lbs_10_207_0_v1.*.pkl``, smplx's ``SMPL_*.pkl``)
are Python-2 pickles of a dict whose arrays are numpy arrays, scipy sparse matrices (``J_regressor``)
and chumpy objects (``shapedirs``, sometimes others). chumpy does not import on Python 3.11, so
:class:`SmplUnpickler` maps every ``chumpy.*`` class to :class:`ChumpyStand`, which keeps the pickled
state: a plain ``chumpy.ch.Ch`` holds its value in ``x``; the reordering nodes (``transpose``,
``Reshape``, ``Select``...) hold their input in ``a`` and are evaluated here for the few kinds that
occur. Python-2 ``str`` payloads (the array bytes) are decoded with ``encoding="latin1"``.

Only the classes a model file needs may be loaded (numpy arrays and dtypes, scipy sparse matrices,
basic containers, chumpy); anything else raises, so a tampered file cannot run code through
``find_class``. Nothing else in the project unpickles a model file: ``convert_pickle`` writes the
arrays once to an ``.npz`` (dense ``J_regressor``, ``posedirs`` in the file's own layout).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

#: The keys a converted file keeps (the ones smplx's SMPL reads).
SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")

_BUILTINS = {"object", "set", "frozenset", "dict", "list", "tuple", "slice", "complex", "bytearray", "bytes",
             "int", "float", "str", "bool", "range"}


class ChumpyStand:
    """What a chumpy object becomes: its pickled state (``x`` for ``Ch``, ``a`` for reorderings)."""

    state: dict = {}  # unpickling makes the object with __new__ (no __init__), then __setstate__

    def __init__(self, *args, **kwargs) -> None:
        self.state = {}

    @property
    def chumpy_class(self) -> str:
        return type(self).__name__

    def __setstate__(self, state) -> None:
        self.state = dict(state) if isinstance(state, dict) else {"x": state}

    def value(self) -> np.ndarray:
        """The array this chumpy node stands for (Ch: ``x``; transpose/Reshape/Select of ``a``)."""
        s = self.state
        if "x" in s:
            return _plain(s["x"])
        if "a" not in s:
            raise pickle.UnpicklingError(
                f"chumpy {self.chumpy_class} object without 'x' or 'a' in its state: cannot read its array"
            )
        a = _plain(s["a"])
        kind = self.chumpy_class.lower()
        if kind == "transpose":
            return np.transpose(a, s.get("axes"))
        if kind == "reshape":
            return np.reshape(a, s["newshape"])
        if kind == "select":
            out = a.ravel()[np.asarray(s["idxs"])]
            shape = s.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        if kind == "ravel":
            return a.ravel()
        return a


def _stand_class(name: str) -> type:
    """A ChumpyStand subclass named like the chumpy class (so ``value`` knows the operation)."""
    return type(name, (ChumpyStand,), {})


def _plain(obj):
    """ChumpyStand -> ndarray, recursively through lists/tuples; other objects as they are."""
    if isinstance(obj, ChumpyStand):
        return np.asarray(obj.value())
    if isinstance(obj, (list, tuple)) and any(isinstance(o, ChumpyStand) for o in obj):
        return type(obj)(_plain(o) for o in obj)
    return obj


class SmplUnpickler(pickle.Unpickler):
    """Unpickler for SMPL model files: chumpy classes -> ChumpyStand, numpy/scipy.sparse as they are,
    everything else refused."""

    def find_class(self, module: str, name: str):
        root = module.split(".")[0]
        if root == "chumpy":
            return _stand_class(name)
        if root == "numpy" or module.startswith("scipy.sparse"):
            if module == "numpy.core" or module.startswith("numpy.core."):  # numpy 2 renamed it (old name warns)
                module = "numpy._core" + module[len("numpy.core"):] if hasattr(np, "_core") else module
            if module.startswith("scipy.sparse"):
                import scipy.sparse

                if hasattr(scipy.sparse, name):
                    return getattr(scipy.sparse, name)
            return super().find_class(module, name)
        if module in ("copy_reg", "copyreg") and name in ("_reconstructor", "__newobj__", "_newobj"):
            return super().find_class(module, name)
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return super().find_class(module, name)
        if module == "_codecs" and name == "encode":
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"an SMPL model file should hold only arrays, but this one references {module}.{name}; "
            "is it really an SMPL .pkl?"
        )


def read_smpl_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an official SMPL ``.pkl`` (no chumpy needed): every key whose value is an array,
    chumpy values turned into ndarrays, ``J_regressor`` made dense, strings kept as 0-d arrays."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = SmplUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read it as an SMPL model pickle ({exc}); download the model again "
                         "from https://smpl.is.tue.mpg.de") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: an SMPL model pickle holds a dict, this one a {type(raw).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        value = _plain(value)
        if hasattr(value, "toarray") and hasattr(value, "tocsr"):  # scipy sparse
            value = value.toarray()
        if isinstance(value, (np.ndarray, np.generic, str, int, float)):
            out[str(key)] = np.asarray(value)
    return out


def convert_pickle(pkl: str | Path, out_npz: str | Path) -> Path:
    """Write an SMPL ``.pkl``'s model arrays (``SMPL_KEYS``) to a plain ``.npz`` that loads with
    ``np.load`` and smplx's ``data_struct``; a missing key raises naming it."""
    data = read_smpl_pickle(pkl)
    missing = [k for k in SMPL_KEYS if k not in data]
    if missing:
        raise ValueError(f"{pkl}: not an SMPL model file, it lacks {', '.join(missing)}")
    arrays = {k: data[k] for k in SMPL_KEYS}
    arrays["f"] = arrays["f"].astype(np.int64)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        arrays[key] = arrays[key].astype(np.float64)
    out = Path(out_npz)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return out
