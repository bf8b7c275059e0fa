"The splat viewer in a real browser: headless Chromium loads the page, connects, and draws the Gaussians, cameras and panel."
import threading, time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fit3d.formats import toy_scene
from fit3d.viewer import HeadlessBrowser, LiveViewer, find_chromium, toy_splats

OUT = Path(__file__).parent / "output"  # screenshots, kept for a person to look at (git-ignored)
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium to test the browser side (apt-get install -y chromium)")


@contextmanager
def client_watch(server):
    "Record the most clients `server` has connected while the block runs (in `.most`)."
    class W: most = 0
    done = threading.Event()
    def watch():
        while not done.is_set():
            W.most = max(W.most, len(server.get_clients())); time.sleep(0.02)
    t = threading.Thread(target=watch, daemon=True); t.start()
    try: yield W
    finally: done.set(); t.join()


def pixels(png, box=None) -> np.ndarray:
    "The screenshot's RGB pixels as int (h, w, 3), optionally cropped to box = (left, top, right, bottom)."
    im = Image.open(png).convert("RGB")
    return np.asarray(im.crop(box) if box else im).astype(int)


def coloured(p) -> np.ndarray:
    "Which pixels are clearly coloured (not white, grey or black): the splats, not the UI."
    return (p.max(-1) - p.min(-1)) > 60


def not_white(p) -> np.ndarray:
    "Which pixels differ clearly from the white background."
    return (255 - p).max(-1) > 20


def inked(p) -> float:
    "Fraction of pixels darker than the white background: text and lines."
    return float((p.min(-1) < 160).mean())


@needs_chromium
def test_viewer_in_browser():
    sc = toy_scene(OUT / "viewer_scene", n=6, width=64, height=48)
    # thumbnails with a red top half and a blue bottom half, to see which way up the browser draws them
    top_red = np.zeros((48, 64, 3), np.uint8); top_red[:24, :, 0] = 255; top_red[24:, :, 2] = 255
    v = LiveViewer(sc.cameras, images=[top_red] * 6, port=0, every=0)
    try:
        v.update(toy_splats(3000), step=100)
        with client_watch(v.server) as w, HeadlessBrowser((1024, 768)) as b:
            b.open(f"http://127.0.0.1:{v.port}", ready=lambda: len(v.server.get_clients()) > 0)
            b.screenshot(OUT / "viewer_rgb.png")
            v.colour.value = "Feature PCA"  # as if picked in the browser's dropdown
            b.screenshot(OUT / "viewer_pca.png", frames=10)
        assert w.most >= 1, "no browser connected to the viser server"
    finally: v.stop()
    rgb, pca = pixels(OUT / "viewer_rgb.png"), pixels(OUT / "viewer_pca.png")
    # the sphere of splats fills the middle of the viewport; the panel (top right) has text in it
    assert not_white(rgb[300:460, 430:590]).mean() > 0.9, "no splats drawn in the middle of the viewport"
    assert coloured(rgb[300:460, 430:590]).mean() > 0.5, "the splats in the middle of the viewport are grey"
    assert inked(rgb[15:150, 690:1010]) > 0.01, "the viser control panel is blank"
    # the nearest frustum (the first camera's, seen from above and behind) shows its image upright: red above blue
    near = rgb[450:600, 400:624]
    ys = np.indices(near.shape[:2])[0]
    red = (near[..., 0] > 200) & (near[..., 2] < 80); blue = (near[..., 2] > 200) & (near[..., 0] < 80)
    assert red.sum() > 500 and blue.sum() > 500, "the first camera's thumbnail is not where expected"
    assert ys[red].mean() < ys[blue].mean(), "the camera thumbnail is drawn upside down"
    # switching to feature PCA changes the colours the browser draws where the splats are
    splat = coloured(rgb)
    assert np.abs(rgb - pca)[splat].mean() > 20, "feature PCA looks the same as RGB"
