"The feature demo in a real browser: headless Chromium loads the page, connects, and shows the input and both models' pictures."
import copy, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fit3d.features import load_backbone
from fit3d.browser import HeadlessBrowser, client_watch, coloured, need_chromium, pixels
from fit3d.viewer import stop_server
from fit3d.webdemo import serve_demo

OUT = Path(__file__).parent / "output"  # screenshots, kept for a person to look at (git-ignored)


def tiny_pair():
    "Two tiny random ViTs: the original and a perturbed copy standing in for the fine-tuned model."
    torch.manual_seed(0)
    original = load_backbone("tiny", device="cpu")
    finetuned = copy.deepcopy(original)
    with torch.no_grad():
        for p in finetuned.parameters(): p.add_(0.2 * p.std().nan_to_num() * torch.randn_like(p))
    return original, finetuned


def stripes(path) -> Path:
    "A test image to upload: diagonal colour stripes."
    y, x = np.mgrid[:240, :320]
    img = np.stack([(np.sin((x + y) / 12) > 0) * 220, (np.sin((x - y) / 20) > 0) * 200, np.full_like(x, 90)], -1)
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def test_webdemo_in_browser():
    need_chromium()
    torch.set_num_threads(2)
    server = serve_demo(*tiny_pair(), port=0, long_side=224, height=200, panel_width=880)
    d = server.fit3d_demo
    try:
        with client_watch(server) as w, HeadlessBrowser((1280, 800)) as b:
            b.open(f"http://127.0.0.1:{server.get_port()}", ready=lambda: len(server.get_clients()) > 0)
            b.screenshot(OUT / "webdemo_room.png")
            b.upload(stripes(OUT / "stripes.png"))        # through the page's upload button, to the server
            t = time.monotonic()
            while "stripes.png" not in d.status.content and time.monotonic() - t < 30: time.sleep(0.1)
            assert "stripes.png" in d.status.content, f"the upload did not arrive: {d.status.content!r}"
            d.k.value = 3                                  # as if the slider moved
            b.screenshot(OUT / "webdemo_upload_k3.png", frames=10)
        assert w.most >= 1, "no browser connected to the demo server"
    finally: stop_server(server)
    room, up = pixels(OUT / "webdemo_room.png"), pixels(OUT / "webdemo_upload_k3.png")
    # the panel is docked on the right: its pictures make it far more colourful than the empty 3D viewport
    assert coloured(room[:, 1280 - 860:]).mean() > 0.2, "the demo's pictures are not in the panel"
    assert coloured(room[:, :380]).mean() < 0.02
    # the browser shows the uploaded image and its new pictures
    assert np.abs(room - up)[:, 1280 - 860:].mean() > 10, "the pictures did not change after the upload"
    # what the server sent: right of the input, 3 cluster colours and the white gap
    assert len(np.unique(d.kmeans.image[:, 267 + 6:].reshape(-1, 3), axis=0)) <= 4


def noise(path, side: int = 300) -> Path:
    "A test image that does not compress: random pixels (about 270 KB as PNG)."
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def test_oversized_upload_refused():
    "An upload over the cap, sent through the page's upload button, is refused with a message and changes nothing."
    need_chromium()
    torch.set_num_threads(2)
    server = serve_demo(*tiny_pair(), port=0, long_side=112, height=64, max_upload_mb=0.1)
    d = server.fit3d_demo
    before = d.pca.image.copy()
    try:
        with HeadlessBrowser((1024, 700)) as b:
            b.open(f"http://127.0.0.1:{server.get_port()}", ready=lambda: len(server.get_clients()) > 0)
            b.upload(noise(OUT / "noise.png"))
            t = time.monotonic()
            while "noise.png" not in d.status.content and time.monotonic() - t < 30: time.sleep(0.1)
    finally: stop_server(server)
    assert d.status.content.startswith("refused noise.png:") and "over the upload limit of 0.1 MB" in d.status.content, d.status.content
    assert (d.pca.image == before).all()
    assert not server.gui._current_file_upload_states, "the refused upload is still being buffered"
