"""SMPL .pkl reading without chumpy: a Python-2 style pickle with chumpy objects, scipy sparse and latin1 bytes."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from fitting.body_model import SMPL_PARENTS, arrays_from_file
from fitting.smpl_pickle import SMPL_KEYS, convert_pickle, read_smpl_pickle

V, F = 40, 60


class _Py2Pickler(pickle._Pickler):
    """Writes bytes the way Python 2 wrote str (BINSTRING opcodes): they need encoding='latin1' to load."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _model_arrays(rng: np.random.Generator) -> dict:
    parents = SMPL_PARENTS.copy().astype(np.int64)
    parents[0] = 4294967295
    J_regressor = np.zeros((24, V))
    J_regressor[np.arange(24), rng.integers(0, V, 24)] = 1.0
    return {
        "v_template": rng.normal(size=(V, 3)),
        "shapedirs": rng.normal(size=(V, 3, 10)),
        "posedirs": rng.normal(size=(V, 3, 207)),
        "J_regressor": J_regressor,
        "weights": rng.dirichlet(np.ones(24), size=V),
        "kintree_table": np.stack([parents, np.arange(24)]).astype(np.uint32),
        "f": rng.integers(0, V, size=(F, 3)).astype(np.uint32),
    }


@pytest.fixture()
def official_style_pickle(tmp_path, monkeypatch):
    """A pickle like SMPL's basicmodel_*.pkl: chumpy Ch shapedirs, a chumpy transpose, sparse J_regressor,
    Python-2 module names and str payloads; chumpy exists only while pickling."""
    rng = np.random.default_rng(3)
    arrays = _model_arrays(rng)
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        pass

    class transpose:  # noqa: N801 - chumpy's own class name
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    transpose.__module__, transpose.__qualname__ = "chumpy.reordering", "transpose"
    ch.Ch, reordering.transpose, chumpy.ch, chumpy.reordering = Ch, transpose, ch, reordering
    for name, module in (("chumpy", chumpy), ("chumpy.ch", ch), ("chumpy.reordering", reordering)):
        monkeypatch.setitem(sys.modules, name, module)

    shapedirs = Ch()
    shapedirs.__dict__.update({"x": arrays["shapedirs"], "_dirty_vars": set(), "_itr": None,
                               "_make_dense": False, "_make_sparse": False, "_depends_on_deps": {}})
    inner = Ch()
    inner.__dict__.update({"x": arrays["weights"].T.copy(), "_dirty_vars": set()})
    weights = transpose()
    weights.__dict__.update({"a": inner, "axes": None, "_dirty_vars": set()})
    content = dict(arrays)
    content["shapedirs"] = shapedirs
    content["weights"] = weights
    content["J_regressor"] = sp.csc_matrix(arrays["J_regressor"])
    content["J_regressor_prior"] = sp.csc_matrix(arrays["J_regressor"])
    content["J"] = arrays["J_regressor"] @ arrays["v_template"]
    content["bs_style"] = "lbs"
    content["bs_type"] = "lrotmin"
    content["vert_sym_idxs"] = np.arange(V)
    content["pose_training_info"] = {"num_subjects": 1}
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(content)
    data = buf.getvalue()
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    data = data.replace(b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n")
    assert b"\nU" in data or b"T" in data  # py2 str opcodes are there
    path = tmp_path / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    path.write_bytes(data)
    for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(UnicodeDecodeError):  # a Python-2 pickle indeed: plain loading needs latin1
        pickle.loads(data.replace(b"cchumpy.ch\nCh\n", b"cbuiltins\nobject\n"))
    return path, arrays


def test_reads_official_layout_without_chumpy(official_style_pickle):
    path, arrays = official_style_pickle
    assert "chumpy" not in sys.modules
    data = read_smpl_pickle(path)
    for key in SMPL_KEYS:
        assert key in data, key
    np.testing.assert_array_equal(data["shapedirs"], arrays["shapedirs"])
    np.testing.assert_array_equal(data["weights"], arrays["weights"])  # transpose of a Ch, evaluated
    np.testing.assert_array_equal(data["J_regressor"], arrays["J_regressor"])  # sparse made dense
    np.testing.assert_array_equal(data["posedirs"], arrays["posedirs"])
    np.testing.assert_array_equal(data["f"], arrays["f"])
    assert data["shapedirs"].shape == (V, 3, 10) and data["posedirs"].shape == (V, 3, 207)
    assert str(data["bs_style"]) == "lbs"


def test_convert_writes_plain_npz(official_style_pickle, tmp_path):
    path, arrays = official_style_pickle
    out = convert_pickle(path, tmp_path / "out" / "SMPL_NEUTRAL.npz")
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(SMPL_KEYS)
        np.testing.assert_array_equal(npz["posedirs"], arrays["posedirs"])  # the file's own layout
        np.testing.assert_array_equal(npz["J_regressor"], arrays["J_regressor"])
        assert npz["f"].dtype == np.int64
    model = arrays_from_file(out)
    assert model.posedirs.shape == (207, V * 3) and not model.is_standin
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"].reshape(-1, 207).T)


def test_refuses_foreign_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="print"):
        read_smpl_pickle(path)


def test_convert_names_missing_keys(tmp_path):
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
    with pytest.raises(ValueError, match="shapedirs"):
        convert_pickle(path, tmp_path / "x.npz")
