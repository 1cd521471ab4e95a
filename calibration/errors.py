"""The one error calibration raises for bad input: what was seen and what to capture or change."""

from __future__ import annotations


class CalibrationError(ValueError):
    """Calibration cannot go on with this input; the message names what was seen and the fix."""
