"Figures: plotly to PNG through kaleido and the system Chromium (offline); the outputs check on this repository."
import os
from pathlib import Path

import numpy as np
import pytest

from fit3d.browser import need_chromium
from fit3d.figures import missing_outputs, plotly_png, title_problems


def test_plotly_png():
    "A plotly line plot comes back as a PNG of the asked size with the line drawn in plotly's blue."
    need_chromium()
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"): pytest.importorskip("kaleido")
    import plotly.graph_objects as go
    im = plotly_png(go.Figure(go.Scatter(y=[1, 3, 2], line=dict(color="rgb(0,0,255)", width=6))), width=400, height=300)
    assert im.size == (400, 300)
    a = np.asarray(im).astype(int)
    assert ((a[..., 2] > 200) & (a[..., 0] < 60) & (a[..., 1] < 60)).sum() > 300, "no blue line in the PNG"


def test_my_notebooks_read_as_chapters():
    "The viewer, demo, browser, figures and index notebooks were saved with outputs and open with title and summary only."
    nbs = Path(__file__).parents[1] / "nbs"
    mine = [nbs / n for n in ("10_viewer.ipynb", "11_webdemo.ipynb", "09a_browser.ipynb", "17_figures.ipynb", "index.ipynb")]
    assert not {str(p) for p in mine} & set(missing_outputs(nbs))
    for p in mine: assert title_problems(p) == [], (p.name, title_problems(p))
