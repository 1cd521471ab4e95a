"""The colour of a track id, defined once for every picture of a session: the viewer, the overlays and the
report plots (matplotlib's ``tab10``, which ``mocap reconstruct``'s tracks.png uses, so a person has the same
colour everywhere)."""

from __future__ import annotations

# matplotlib's tab10, as 0-255 RGB
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
NO_TRACK: tuple[int, int, int] = (200, 200, 200)  # an empty slot (id -1) or a person without a track


def track_colour(track_id: int) -> tuple[int, int, int]:
    """(r, g, b), each 0-255, of a track id: ``PALETTE[id % 10]``; light grey for a negative id."""
    track_id = int(track_id)
    return NO_TRACK if track_id < 0 else PALETTE[track_id % len(PALETTE)]
