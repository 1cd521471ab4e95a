"""The simulated camera (``sim``): the simulated studio of ``rigs.sim`` rendered live, at the camera's size
and rate, like a real camera on the rig's clock.

At open it simulates the performers once (``simulate_performers(people, seconds, fps, seed)``, 60 s by
default) and plays them in a loop (the people jump back to their start positions every ``seconds``); frame
i shows simulated frame ``i % T``, rendered on demand with ``render_view``.

Paced, the simulated cameras are genlocked like a hardware-triggered rig: frame i is due at ``i / fps`` on
the rig's clock itself (a grid shared by every camera, whenever its node started), so every camera of a rig
opened with the same seed, number of people, loop length and rate shows the same instant of the scene with
the same timestamp. Unpaced, frames are numbered from 0 at the first ``read()``.

Like a real camera it does not wait for a slow reader: when ``read()`` comes more than ``max_lag`` frames
late, the frames in between are dropped (counted in ``dropped``; they show as jumps in the truth's
``frame``). Unpaced (``pace=False``) it renders every frame as fast as it can, stamped on the same
timeline. Each frame carries a small ``truth`` map, enough for the recorder to rebuild the full ground
truth: ``frame`` (i), ``sim_frame`` (i % T), ``t_sim_ns`` (i / fps), ``people``, ``seed``, ``seconds``, ``fps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

from capture.sources.frame_source import SourceError, SourceFrame, Timeline, clock_function
from rigs.camera import Camera
from rigs.sim.board import SimulatedBoardPose
from rigs.sim.performers import SimulatedPerformers, simulate_performers
from rigs.sim.render import RenderParams, render_view

DEFAULT_FPS = 30.0
BoardSpec = SimulatedBoardPose | Callable[[SimulatedPerformers, int], SimulatedBoardPose | None] | None


class SimulatedCameraSource:
    """A simulated camera: renders the simulated studio at ``camera``'s size and rate.

    ``board`` is an optional ChArUco board: a fixed pose (e.g. ``board_on_floor(...)``) or a function of
    (performers, simulated frame) such as ``lambda p, f: board_held(spec, p, 0, f)``.
    """

    def __init__(self, camera: Camera, *, clock: str = "monotonic", pace: bool = True, seed: int = 0,
                 people: int = 2, fps: float | None = None, seconds: float = 60.0,
                 params: RenderParams | None = None, board: BoardSpec = None, max_lag: int = 4):
        self.camera = camera
        self.name = camera.name
        self.width, self.height = camera.width, camera.height
        self.fps = float(fps or camera.fps or DEFAULT_FPS)
        self.seed, self.people, self.seconds = int(seed), int(people), float(seconds)
        self.params = params if params is not None else RenderParams(seed=self.seed)
        self.board = board
        self.max_lag = max_lag
        self.timeline = Timeline(clock, pace)
        self._clock = clock_function(clock)
        self._rate = Fraction(self.fps).limit_denominator(1001)  # 30000/1001 stays exact
        self.performers = simulate_performers(self.people, self.seconds, self.fps, self.seed)
        self.dropped = 0  # frames skipped because read() came late
        self._next: int | None = None
        self._closed = False
        render_view(camera, self.performers, 0, self.params)  # builds the studio cache before the first read

    @property
    def num_sim_frames(self) -> int:
        return self.performers.num_frames

    def offset_ns(self, i: int) -> int:
        return round(i * 1e9 / self.fps)

    def grid_time(self, i: int) -> int:
        """Rig-clock time (ns) of grid frame i, i / fps, in exact integer arithmetic."""
        num, den = self._rate.numerator, self._rate.denominator
        return (2 * i * 10**9 * den + num) // (2 * num)

    def grid_index(self, t_ns: int) -> int:
        """The first grid frame at or after rig-clock time t_ns."""
        num, den = self._rate.numerator, self._rate.denominator
        i = -((-t_ns * num) // (10**9 * den))
        return i if self.grid_time(i) >= t_ns else i + 1

    def render(self, i: int):
        """The image of frame i (simulated frame i % T)."""
        k = i % self.num_sim_frames
        board = self.board(self.performers, k) if callable(self.board) else self.board
        return render_view(self.camera, self.performers, k, self.params, board)

    def truth(self, i: int) -> dict:
        return {"frame": i, "sim_frame": i % self.num_sim_frames, "t_sim_ns": self.offset_ns(i),
                "people": self.people, "seed": self.seed, "seconds": self.seconds, "fps": self.fps}

    def read(self) -> SourceFrame:
        if self._closed:
            raise SourceError(f"camera {self.name!r}: the simulated camera is closed")
        if not self.timeline.pace:
            i = 0 if self._next is None else self._next
            t_ns = self.timeline.due(self.offset_ns(i))
        else:
            i, t_ns = self._next_on_grid()
        image = self.render(i)
        self._next = i + 1
        return SourceFrame(image, t_ns, self.truth(i))

    def _next_on_grid(self) -> tuple[int, int]:
        """The next due grid frame and its time, waiting for it; skips ahead (counting drops) when late."""
        now = self._clock()
        latest = self.grid_index(now)
        if self._next is None:
            i = latest
        elif latest - self._next > self.max_lag:
            self.dropped += latest - self._next
            i = latest
        else:
            i = self._next
        t_ns = self.grid_time(i)
        while (left := t_ns - self._clock()) > 0:
            time.sleep(left / 1e9)
        return i, t_ns

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
