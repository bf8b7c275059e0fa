"""The splat viewer in a real browser: headless Chromium loads the page, connects, and draws the Gaussians, cameras and panel;
the static copy draws them with no server at all; servers listen on 127.0.0.1 only."""
import inspect, socket
from pathlib import Path

import numpy as np
import pytest

from fit3d.browser import HeadlessBrowser, client_watch, coloured, html_screenshot, need_chromium, not_white, pixels
from fit3d.testing import toy_scene, toy_splats
from fit3d.viewer import LiveViewer, embed_viewer, view_lifted, view_splats, viser_server

OUT = Path(__file__).parent / "output"  # screenshots, kept for a person to look at (git-ignored)


def inked(p) -> float:
    "Fraction of pixels darker than the white background: text and lines."
    return float((p.min(-1) < 160).mean())


def test_viewer_in_browser():
    need_chromium()
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


def test_static_copy_without_server():
    "The self-contained copy that notebooks and report.html embed draws the splats in colour with no server running."
    need_chromium()
    sc = toy_scene(OUT / "static_scene", n=6, width=64, height=48)
    frag = embed_viewer(toy_splats(3000), sc.cameras, height=600)   # starts a server, records it, stops it
    assert frag.startswith("<iframe srcdoc=") and len(frag) < 3e6, f"{len(frag) / 1e6:.1f} MB"
    page = f"<html><body style='margin:0;background:white'><h3>report</h3>{frag}</body></html>"
    rgb = pixels(html_screenshot(page, OUT / "viewer_static.png", size=(800, 700)))
    mid = rgb[300:385, 360:440]   # inside the sphere of splats, in the middle of the iframe (below a heading)
    assert not_white(mid).mean() > 0.9, "no splats drawn in the static copy"
    assert coloured(mid).mean() > 0.5, "the static copy's splats are grey"
    # and the picture form, for pages that run no scripts
    img = embed_viewer(toy_splats(500), mode="picture", height=360)
    assert img.startswith('<img src="data:image/png;base64,')


def test_static_copy_says_it_is_loading_until_it_has_drawn(tmp_path):
    """A picture of a page with the copy taken before the viewer has run shows a notice, never an empty white box; a
    picture taken by `fit3d.browser` waits until the splats are drawn (the demo's report.html, screenshotted)."""
    import base64, io, time
    from fit3d.browser import LOADING_JS
    need_chromium()
    page = tmp_path / "report.html"
    page.write_text("<!doctype html><meta charset=utf-8><body style='margin:0'>" + embed_viewer(toy_splats(3000), height=300))
    with HeadlessBrowser((640, 320)) as b:
        b("Emulation.setScriptExecutionDisabled", value=True)   # the client has not run yet (or cannot run)
        b("Page.navigate", url=page.as_uri())
        early, box = None, (40, 40, 600, 280)
        for _ in range(150):
            time.sleep(0.1)
            try: early = pixels(io.BytesIO(base64.b64decode(b("Page.captureScreenshot")["data"])), box)
            except RuntimeError: continue   # still navigating
            if not_white(early).any(): break
        assert early is not None and not_white(early).any(), "an empty white box where the viewer will be"
        assert not coloured(early).any()
        b("Emulation.setScriptExecutionDisabled", value=False)
        b.open(page.as_uri())
        shot = pixels(b.screenshot(OUT / "viewer_loaded.png"))
        assert not b.evaluate(LOADING_JS), "the loading notice is still up after the picture"
    assert coloured(shot[60:260, 220:420]).mean() > 0.3, "the picture was taken before the splats were drawn"


def _lan_address() -> str | None:
    "This machine's address on its network (not loopback), or None."
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.123", 9)); a = s.getsockname()[0]   # no packet is sent
        return None if a.startswith("127.") else a
    except OSError: return None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2): return True
    except OSError: return False


def test_servers_bind_localhost():
    "Viewers and the demo listen on 127.0.0.1 unless asked: reachable there, refused on the machine's network address."
    from fit3d.webdemo import serve_demo
    for f in (LiveViewer, view_splats, view_lifted, viser_server, serve_demo):
        assert inspect.signature(f).parameters["host"].default == "127.0.0.1", f.__name__
    v = LiveViewer(port=0)
    try:
        assert v.server.get_host() == "127.0.0.1"
        assert _accepts("127.0.0.1", v.port)
        lan = _lan_address()
        if lan is not None: assert not _accepts(lan, v.port), f"the viewer answers on {lan}"
    finally: v.stop()


# ---- hostile clients and bad flags (issue 24) --------------------------------------------------------------------

def _handshake(port: int, **kw) -> int:
    "The HTTP status of a websocket handshake with the viewer: 101 if it let the client in."
    from websockets.exceptions import InvalidStatus
    from fit3d.browser import ViserClient
    try:
        with ViserClient(port, **kw): return 101
    except InvalidStatus as e: return e.response.status_code


def test_foreign_origins_refused():
    "A page on another site (any foreign `Origin`, or this server reached under a foreign name) cannot open the websocket."
    v = LiveViewer(port=0)
    try:
        p = v.port
        assert _handshake(p, origin="http://evil.example") == 403, "a foreign origin was let in"
        assert _handshake(p, origin="null") == 403, "a sandboxed or file:// page was let in"
        assert _handshake(p, origin=f"http://127.0.0.1:{p + 1}") == 403, "another port of this machine was let in"
        # DNS rebinding: evil.example resolved to 127.0.0.1, so the page is same-origin by name only
        assert _handshake(p, origin=f"http://evil.example:{p}", url_host="evil.example") == 403
        assert _handshake(p, origin=f"http://127.0.0.1:{p}") == 101, "the viewer's own page was refused"
        assert _handshake(p, origin=f"http://localhost:{p}", url_host="localhost") == 101
        assert _handshake(p) == 101, "a script (no Origin, as browsers always send one) was refused"
    finally: v.stop()
    v = LiveViewer(port=0, allow_origins=("https://notebooks.example",))
    try:
        assert _handshake(v.port, origin="https://notebooks.example") == 101, "an allowed origin was refused"
        assert _handshake(v.port, origin="http://evil.example") == 403
    finally: v.stop()


def test_view_cli_fails_at_once_on_a_bad_port_or_host(tmp_path, monkeypatch):
    "`fit3d view` with a port or host it cannot listen on stops with the reason and a non-zero exit, instead of hanging."
    from fit3d.formats import write_splats_ply
    from test_webdemo import cli_error, run_cli
    write_splats_ply(tmp_path / "gaussians.ply", toy_splats(200))
    for port in ("99999", "-1"):   # out of range: refused where the settings are made, before anything loads
        r = run_cli("view", "--path", str(tmp_path), "--port", port, cwd=tmp_path)   # a fresh process: the exit status
        assert r.returncode == 2 and f"--port must be >= 0 and <= 65535, got {port}" in r.stderr, r.stderr[-2000:]
    monkeypatch.chdir(tmp_path)
    bad = {"--host 256.1.1.1": "host '256.1.1.1' is neither an address",
           "--host 192.0.2.7": "cannot listen on host '192.0.2.7'"}   # TEST-NET-1: not an address of this machine
    for flags, why in bad.items():
        e = cli_error("view", "--path", str(tmp_path), *flags.split())
        assert isinstance(e, SystemExit) and f"fit3d view: {why}" in str(e), f"fit3d view {flags}: {e!r}"
