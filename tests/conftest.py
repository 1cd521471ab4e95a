"""Test-session settings: one BLAS thread, so the many small solves of bundle adjustment do not fight
over the two cores with each other and with the processes the end-to-end tests start; and the stand-in
body model, built once per test session into a temporary folder (never the user's cache)."""

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """The stand-in body model (``fitting.body_model.BodyModel``), built once for the whole test session."""
    from fitting.body_model import load_body_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOCAP_STANDIN_DIR", str(tmp_path_factory.mktemp("standin")))
        mp.delenv("MOCAP_BODY_MODELS", raising=False)
        return load_body_model(None, say=None)
