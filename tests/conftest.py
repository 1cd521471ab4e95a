"""Test-session settings: one BLAS thread, so the many small solves of bundle adjustment do not fight
over the two cores with each other and with the processes the end-to-end tests start."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
