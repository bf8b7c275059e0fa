"Weights loading without network, run by pytest beside the notebook checks (never touches the network)."
import os, subprocess, sys, time
import pytest
import timm
import torch
from safetensors.torch import save_file

from fit3d import features
from fit3d.features import WeightsUnavailable, load_backbone, reachable

SMALL = dict(embed_dim=48, depth=1, num_heads=3, img_size=112)


def test_probe_is_bounded():
    t = time.time()
    assert not reachable("https://10.255.255.1/x", timeout=0.5)  # unroutable (or intercepted): no answer from the hub
    assert time.time() - t < 1.5


def test_probe_sees_a_server(monkeypatch):
    "Any HTTP answer, a 404 included, counts as reachable (a local server stands in for the hub)."
    from http.server import HTTPServer, SimpleHTTPRequestHandler
    import threading
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"): monkeypatch.delenv(k, raising=False)
    srv = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: assert reachable(f"http://127.0.0.1:{srv.server_port}/no/such/file", timeout=2)
    finally: srv.shutdown()


def test_unreachable_hub_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(features, "cached_weights", lambda cfg: None)
    monkeypatch.setattr(features, "reachable", lambda url, timeout=3.0: False)
    with pytest.raises(WeightsUnavailable, match=r"huggingface.co cannot be reached[\s\S]*checkpoint=[\s\S]*pretrained=False"):
        load_backbone("dinov2_reg_small", device="cpu", **SMALL)


def test_weights_from_the_local_hub_cache(tmp_path):
    "Offline, weights already in the Hugging Face cache load from there (the layout `hf download` leaves)."
    torch.manual_seed(0)
    src = load_backbone("dinov2_small", pretrained=False, device="cpu", **SMALL)
    snap = tmp_path / "hub" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    (snap / "refs").mkdir(parents=True); (snap / "refs" / "main").write_text("abc123")
    (snap / "snapshots" / "abc123").mkdir(parents=True)
    save_file(src.model.state_dict(), str(snap / "snapshots" / "abc123" / "model.safetensors"))
    x = torch.rand(1, 3, 56, 70)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad(): torch.save(src(x), tmp_path / "want.pt")
    code = (f"import torch; from fit3d.features import load_backbone\n"
            f"bb = load_backbone('dinov2_small', device='cpu', embed_dim=48, depth=1, num_heads=3, img_size=112)\n"
            f"with torch.no_grad(): y = bb(torch.load(r'{tmp_path / 'x.pt'}'))\n"
            f"assert torch.equal(y, torch.load(r'{tmp_path / 'want.pt'}')); print('ok')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "TORCH_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_dinov2_giant_original_naming(tmp_path):
    "ViT-g in the original DINOv2 naming (SwiGLU `w12`/`w3`, `mask_token`) loads through timm's filter."
    src = load_backbone("dinov2_giant", pretrained=False, device="cpu", **SMALL)
    sd = {k.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3"): v for k, v in src.model.state_dict().items()}
    assert any("w12" in k for k in sd)
    sd["mask_token"] = torch.zeros(1, 48)
    torch.save(sd, tmp_path / "dinov2_vitg14_pretrain.pth")
    bb = load_backbone("dinov2_giant", checkpoint=tmp_path / "dinov2_vitg14_pretrain.pth", device="cpu", **SMALL)
    x = torch.rand(1, 3, 42, 70)
    with torch.no_grad(): assert torch.equal(bb(x), src(x))


def test_timm_file_with_a_head_loads_into_a_headless_model(tmp_path):
    m = timm.create_model("deit3_base_patch16_224", num_classes=10, **SMALL)
    save_file(m.state_dict(), str(tmp_path / "deit.safetensors"))
    bb = load_backbone("deit3_base", checkpoint=tmp_path / "deit.safetensors", device="cpu", **SMALL)
    assert torch.equal(bb.model.pos_embed, m.pos_embed)


def test_unreadable_checkpoint(tmp_path):
    (tmp_path / "bad.pth").write_text("not weights")
    with pytest.raises(ValueError, match="bad.pth: cannot read weights"):
        load_backbone("tiny", checkpoint=tmp_path / "bad.pth", device="cpu")


def test_proxy_model_by_name_offline(tmp_path):
    "A proxy model loads by name from its weights file in a fresh offline process; without the file, the message names it."
    from fit3d.features import PROXY_MODELS
    spec = PROXY_MODELS["fit3d_tiny"]
    m = timm.create_model(spec["timm_name"], num_classes=0, **spec["kwargs"])   # as fit3d.pretrain would save it
    save_file({k: v.half() for k, v in m.state_dict().items()}, str(tmp_path / spec["file"]))
    code = ("import torch; from fit3d.features import load_backbone, WeightsUnavailable\n"
            "bb = load_backbone('fit3d_tiny', device='cpu')\n"
            "with torch.no_grad(): f = bb(torch.rand(1, 3, 56, 70))\n"
            "print(tuple(f.shape), bb.name)\n"
            "import os; os.environ['FIT3D_WEIGHTS'] = '/nonexistent'\n"
            "try: load_backbone('fit3d_small', device='cpu')\n"
            "except WeightsUnavailable as e: print(str(e).splitlines()[0])")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FIT3D_WEIGHTS": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = r.stdout.strip().splitlines()
    assert lines[:1] == ["(1, 192, 4, 5) fit3d_tiny"], r.stderr[-2000:]
    assert "/nonexistent/fit3d_small.safetensors does not exist" in lines[1]


def test_unknown_backbone_lists_the_short_names():
    with pytest.raises(ValueError, match=r"unknown backbone 'dinov9'.*dinov2_small.*tiny.*fit3d_small"):
        load_backbone("dinov9", device="cpu")
