"The feature demo in a real browser: headless Chromium loads the page, connects, and shows the input and both models' pictures."
import copy, json, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fit3d.features import load_backbone
from fit3d.browser import HeadlessBrowser, ViserClient, client_watch, coloured, need_chromium, pixels
from fit3d.serving import md_literal, stop_server
from fit3d.webdemo import UPLOADS_IN_FLIGHT, serve_demo

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
            while md_literal("stripes.png") not in d.status.content and time.monotonic() - t < 30: time.sleep(0.1)
            assert md_literal("stripes.png") in d.status.content, f"the upload did not arrive: {d.status.content!r}"
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
            while md_literal("noise.png") not in d.status.content and time.monotonic() - t < 30: time.sleep(0.1)
    finally: stop_server(server)
    assert d.status.content.startswith(f"refused {md_literal('noise.png')}:") and "over the upload limit of 0.1 MB" in d.status.content, d.status.content
    assert (d.pca.image == before).all()
    assert not server.gui._current_file_upload_states, "the refused upload is still being buffered"


# ---- hostile input: what a second client, a script or a hostile page can send (issue 24) ----------------------------

def until(cond, timeout: float = 30) -> bool:
    "Wait until `cond()` is true; whether it became so within `timeout` seconds."
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout: return False
        time.sleep(0.02)
    return True


def png_bytes(w: int, h: int, mode: str = "RGB") -> bytes:
    "A PNG of w x h pixels, as bytes (a flat image compresses to almost nothing, whatever its size)."
    import io
    buf = io.BytesIO(); Image.new(mode, (w, h)).save(buf, "PNG"); return buf.getvalue()


HOSTILE = {  # name -> JavaScript that is true if the name did something in the page
    "<iframe srcdoc=\"<script>parent.document.title='pwned'</script>\">x.png":
        "document.title === 'pwned' || !!document.querySelector('iframe')",
    "<img src=x onerror=\"document.title='img'\">.png":
        "document.title === 'img' || !!document.querySelector('img[onerror], img[src=x]')",
    "<style>body{background:rgb(255,0,0)!important}</style>y.png":
        "getComputedStyle(document.body).backgroundColor === 'rgb(255, 0, 0)'",
    "[link](http://evil.example/) ![p](http://evil.example/t.png) www.evil.example z.png":
        "!!document.querySelector('a[href*=\"evil\"], img[src*=\"evil\"]')",
}


def test_hostile_names_are_text_in_another_browser():
    "File and example names that are HTML or markdown show as text in a second client's page and run nothing there."
    need_chromium()
    torch.set_num_threads(2)
    ex_name = "<img src=x onerror=\"document.title='example'\">room"
    server = serve_demo(*tiny_pair(), examples={ex_name: drawn_room()}, port=0, long_side=56, height=48,
                        max_upload_mb=0.05)
    d = server.fit3d_demo
    names = list(HOSTILE)
    try:
        with HeadlessBrowser((1024, 700)) as b, ViserClient(server.get_port()) as attacker:
            b.open(f"http://127.0.0.1:{server.get_port()}", ready=lambda: len(server.get_clients()) > 0)
            literal = lambda s: f"document.body.innerText.includes({json.dumps(s)})"
            title = b.evaluate("document.title")
            # the example's name, shown in the status line since the server started (a stored name)
            assert b.wait_for(literal(ex_name), 20), f"example name not shown as text: {d.status.content!r}"
            assert not b.evaluate("document.title === 'example' || !!document.querySelector('img[onerror]')")
            attacker.hello()
            assert until(lambda: len(server.get_clients()) == 2)
            # a readable image (the result line), bytes that are no image (the error line), an upload over the cap
            # (the refusal line), and markdown links and pictures
            sends = [dict(content=png_bytes(40, 30)), dict(content=b"not an image"),
                     dict(content=bytes(100), size_bytes=10**6), dict(content=b"GIF89a")]
            for name, send in zip(names, sends):
                attacker.upload(d.upload, name, **send)
                assert b.wait_for(literal(name), 30), f"{name!r} not shown as text: {d.status.content!r}"
                assert until(lambda: "computing" not in d.status.content)
                b.frames(5)
                assert not b.evaluate(HOSTILE[name]), f"{name!r} did something in the page"
            # a dropdown value that is no example, sent by hand
            from viser._messages import GuiUpdateMessage
            pick = "<img src=x onerror=\"document.title='pick'\">"
            attacker.send(GuiUpdateMessage(d.pick._impl.uuid, {"value": pick}))
            assert b.wait_for(literal(f"no example named {pick}"), 30), d.status.content
            assert not b.evaluate("document.title === 'pick' || !!document.querySelector('img[onerror]')")
            assert b.evaluate("document.title") == title, "a name's script changed the page's title"
    finally: stop_server(server)


def drawn_room() -> np.ndarray:
    from fit3d.webdemo import drawn_examples
    return drawn_examples(112, 84)["room"]


def buffered(server) -> int:
    "Bytes the server holds in unfinished uploads."
    return sum(sum(len(p) for p in s["parts"].values()) for s in list(server.gui._current_file_upload_states.values()))


def test_upload_cap_counts_the_bytes_that_arrive():
    "A client that declares 100 bytes and sends 1 MB parts is cut off at the cap; parts of a client gone are freed."
    import threading
    torch.set_num_threads(2)
    server = serve_demo(*tiny_pair(), port=0, long_side=56, height=48, max_upload_mb=2)
    d, most, done = server.fit3d_demo, [0], threading.Event()
    def watch():
        while not done.is_set(): most[0] = max(most[0], buffered(server)); time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()
    try:
        with ViserClient(server.get_port()) as c:
            c.hello()
            c.upload(d.upload, "liar.png", bytes(12 << 20), size_bytes=100, part_count=40)   # 12 of 40 parts
            assert until(lambda: md_literal("liar.png") in d.status.content, 30), \
                f"no refusal; {buffered(server) / 1e6:.0f} MB buffered"
            assert d.status.content.startswith(f"refused {md_literal('liar.png')}:"), d.status.content
            assert until(lambda: buffered(server) == 0, 10), f"{buffered(server) / 1e6:.0f} MB still buffered"
        assert most[0] <= 3 << 20, f"{most[0] / 1e6:.0f} MB buffered at most, over the 2 MB cap plus one part"
        # a client that never sends a camera message and drops the connection mid-transfer
        c = ViserClient(server.get_port())
        t = c.upload(d.upload, "half.png", bytes(3 << 19), part_size=1 << 19, parts=2)
        assert until(lambda: buffered(server) == 1 << 20, 10)
        c.close()
        assert until(lambda: t not in server.gui._current_file_upload_states, 10), \
            f"{buffered(server) / 1e6:.1f} MB kept after the client left"
        # one client, many transfers at once: only its latest is kept
        with ViserClient(server.get_port()) as c:
            for i in range(5): c.upload(d.upload, f"many{i}.png", bytes(3 << 19), part_size=1 << 19, parts=2)
            assert until(lambda: buffered(server) == 1 << 20, 10), f"{buffered(server) / 1e6:.1f} MB in flight"
        # many clients at once: all together hold at most UPLOADS_IN_FLIGHT uploads' worth
        assert until(lambda: buffered(server) == 0, 10)
        crowd = [ViserClient(server.get_port()) for _ in range(UPLOADS_IN_FLIGHT + 1)]
        try:
            for i, c in enumerate(crowd):   # 1.8 of the 1.9 MB each declares
                c.upload(d.upload, f"crowd{i}.png", bytes(1_800_000), part_size=900_000, size_bytes=1_900_000, part_count=3)
            assert until(lambda: "busy" in d.status.content, 10), f"{buffered(server) / 1e6:.1f} MB in flight"
            assert buffered(server) <= UPLOADS_IN_FLIGHT * 2_000_000
        finally:
            for c in crowd: c.close()
    finally:
        done.set(); stop_server(server)


def test_huge_images_refused_before_decoding_and_every_upload_ends_in_a_line():
    "Small files of absurd shapes are refused from the header; a failing model ends in an error line, not 'computing'."
    torch.set_num_threads(2)
    server = serve_demo(*tiny_pair(), port=0, long_side=56, height=48)
    d = server.fit3d_demo
    before = d.pca.image.copy()
    try:
        with ViserClient(server.get_port()) as c:
            c.hello()
            assert until(lambda: len(server.get_clients()) == 1)
            for name, (w, h) in {"wide.png": (250_000, 4), "tall.png": (1, 4_000_000)}.items():
                data = png_bytes(w, h, "L")
                assert len(data) < 20_000
                c.upload(d.upload, name, data)
                assert until(lambda: md_literal(name) in d.status.content and "computing" not in d.status.content, 60), \
                    d.status.content
                assert d.status.content.startswith(f"refused {md_literal(name)}:") and f"{w} x {h}" in d.status.content, \
                    d.status.content
            assert (d.pca.image == before).all()
            # whatever fails while computing, the status line ends with it
            def broken(x): raise MemoryError("simulated: out of memory")
            broken.patch_size = 14
            d.models = (broken, broken)
            c.upload(d.upload, "fine.png", png_bytes(40, 30))
            assert until(lambda: md_literal("fine.png") in d.status.content and "computing" not in d.status.content, 30), \
                f"stuck at {d.status.content!r}"
            assert d.status.content.startswith(f"could not show {md_literal('fine.png')}:") and "out of memory" in d.status.content
    finally: stop_server(server)


def run_cli(*args, cwd, timeout: float = 120) -> "subprocess.CompletedProcess":
    "Run `fit3d ARGS` in a fresh process; a command that is still running after `timeout` seconds fails the test."
    import os, subprocess, sys
    import fit3d
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(fit3d.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run([sys.executable, "-m", "fit3d.cli", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fit3d {' '.join(args)} still running after {timeout} s (it should have stopped with a reason)")


def cli_error(*args, timeout: float = 60) -> BaseException:
    "What `fit3d ARGS` raises when run in this process; a command still running after `timeout` s fails the test."
    import threading
    from fit3d.cli import main
    out = []
    def run():
        try: main(list(args)); out.append(None)
        except BaseException as e: out.append(e)
    t = threading.Thread(target=run, daemon=True); t.start(); t.join(timeout)
    if not out: pytest.fail(f"fit3d {' '.join(args)} still running after {timeout} s (it should have stopped with a reason)")
    return out[0]


def test_webdemo_cli_refuses_weights_tuned_from_another_model_and_bad_ports(tmp_path, monkeypatch):
    "`fit3d webdemo` stops at once, with the reason, on fine-tuned weights of another original and on a bad port."
    from fit3d.finetune import export_weights
    w = export_weights(load_backbone("tiny", device="cpu").model, tmp_path / "other.safetensors",
                       dict(start_weights="0" * 16, settings={}), "tiny", 1)
    base = ["webdemo", "--backbone", "tiny", "--device", "cpu", "--finetuned", str(w)]
    r = run_cli(*base, "--port", "0", cwd=tmp_path)           # a fresh process: the exit status and the message
    assert r.returncode != 0 and "fine-tuned from weights 0000000000000000" in r.stderr, r.stderr[-2000:]
    monkeypatch.chdir(tmp_path)
    r = run_cli(*base, "--port", "99999", cwd=tmp_path)      # refused where the settings are made
    assert r.returncode == 2 and "--port must be >= 0 and <= 65535, got 99999" in r.stderr, r.stderr[-2000:]
    e = cli_error(*base, "--host", "256.1.1.1")              # a host that is no address: refused before serving
    assert isinstance(e, SystemExit) and "fit3d webdemo: host '256.1.1.1' is neither an address" in str(e), repr(e)
