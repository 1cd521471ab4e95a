import numpy as np

from rigs.camera import Rig, look_at
from rigs.layout_plot import plot_layout


def test_layout_plot_writes_a_png_with_content(tmp_path):
    cams = tuple(look_at(f"c{i}", (3 * np.cos(a), 3 * np.sin(a), 2), (0, 0, 1), 640, 480, 70)
                 for i, a in enumerate(np.linspace(0, 2 * np.pi, 5)[:-1]))
    out = plot_layout(Rig(cams, name="ring"), tmp_path / "layout.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    # not a blank page: a good share of pixels differ from white
    assert (img[..., :3] < 0.9).any(-1).mean() > 0.01
