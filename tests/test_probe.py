"Linear-probe checks beside the notebook: mixed feature sizes, bad input, metric edge cases."
import math
import numpy as np
import pytest
import torch
from fit3d.probe import (ProbeConfig, DepthProbeConfig, train_seg_probe, eval_seg_probe, train_depth_probe,
                         eval_depth_probe, toy_seg_data, toy_depth_data, seg_metrics, confusion_matrix, depth_metrics, eval_crop)

torch.set_num_threads(1)


def test_seg_probe_on_maps_of_different_sizes():
    fx, lx = toy_seg_data(n=12, seed=0)
    # crop half of the samples to another aspect ratio: features and labels stay aligned
    feats = [f if i % 2 else f[:, :, :4] for i, f in enumerate(fx)]
    labels = [l if i % 2 else l[:, :16] for i, l in enumerate(lx)]
    head = train_seg_probe(feats, labels, 4, ProbeConfig(iters=120, batch_size=6, lr=1e-2, progress=False))
    assert eval_seg_probe(head, feats, labels)["mIoU"] > 0.9


def test_numpy_inputs_and_int16_labels():
    fx, lx = toy_seg_data(n=8, seed=0)
    head = train_seg_probe(fx.numpy(), lx.to(torch.int16).numpy(), 4, ProbeConfig(iters=60, batch_size=4, lr=1e-2, progress=False))
    assert eval_seg_probe(head, fx, lx.to(torch.int16))["aAcc"] > 0.9


def test_mismatched_inputs_fail_clearly():
    fx, lx = toy_seg_data(n=4)
    with pytest.raises(ValueError, match="4 feature maps but 3 label maps"):
        train_seg_probe(fx, lx[:3], 4, ProbeConfig(iters=1, progress=False))
    with pytest.raises(ValueError, match="expected \\(C, h, w\\)"):
        train_seg_probe([f[0] for f in fx], lx, 4, ProbeConfig(iters=1, progress=False))
    with pytest.raises(ValueError, match="schedule"):
        train_seg_probe(fx, lx, 4, ProbeConfig(iters=2, schedule="step", progress=False))


def test_metric_edge_cases():
    # a class predicted but absent from the ground truth counts as IoU 0 (mmseg), and has no accuracy
    m = seg_metrics(confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2))
    assert m["IoU"] == [0.5, 0.0] and math.isnan(m["Acc"][1]) and m["mAcc"] == 0.5
    # perfect depth
    gt = torch.rand(5, 7) * 5 + 1
    d = depth_metrics(gt.clone(), gt)
    assert d["a1"] == 1 and d["abs_rel"] == 0 and d["rmse"] == 0
    # the max-depth cap excludes far pixels
    gt[0, 0] = 50.0
    assert depth_metrics(gt * 0 + 1, gt, max_depth=10)["a1"] < 1 and not math.isnan(depth_metrics(gt, gt, max_depth=10)["rmse"])
    with pytest.raises(ValueError, match="unknown depth evaluation crop"):
        eval_crop(10, 10, "kb")


def test_depth_probe_median_scaling_removes_global_scale():
    fx, dx = toy_depth_data(n=8, seed=0)
    cfg = DepthProbeConfig(iters=150, batch_size=4, head="regression", lr=0.3, upsample=1, warmup=0.05, progress=False)
    head = train_depth_probe(fx, dx, cfg)
    r = eval_depth_probe(head, fx, dx * 2, max_depth=20)          # ground truth twice as far
    rm = eval_depth_probe(head, fx, dx * 2, max_depth=20, median_scaling=True)
    assert rm["abs_rel"] < r["abs_rel"] / 3


# --- the protocol (fit3d.protocol): rows, both protocols end to end, provenance of results ---
from fit3d.features import load_backbone
from fit3d.probe import SegHead, fit_heads, seg_loss_fn, _cached_batches
from fit3d.protocol import (FeatureSets, SegAugment, DepthAugment, run_probes, toy_probe_samples, results_table,
                            seg_augment, windows, PAPER)
from fit3d.store import NonFiniteLoss


def _pair():
    orig, tuned = load_backbone("tiny", device="cpu"), load_backbone("tiny", device="cpu")
    with torch.no_grad(): tuned.model.blocks[-1].mlp.fc2.weight.mul_(1.5)
    return orig, tuned


def test_rows_trained_together_equal_one_head_trained_alone():
    "Several heads on one batch stream see exactly the batches (order, flips) a single head would see."
    fx, lx = toy_seg_data(n=8, seed=0)
    cfg = ProbeConfig(iters=20, batch_size=3, lr=1e-2, progress=False, device="cpu")
    alone = train_seg_probe(fx, lx, 4, cfg)
    torch.manual_seed(cfg.seed)
    heads = {"a": SegHead(8, 4), "b": SegHead(16, 4)}
    feats = {"a": list(fx), "b": [torch.cat([f, f]) for f in fx]}
    fit_heads(heads, _cached_batches(feats, list(lx), cfg), seg_loss_fn(cfg), cfg)
    torch.testing.assert_close(heads["a"].conv.weight, alone.conv.weight)


def test_official_and_quick_protocols_run_end_to_end():
    orig, tuned = _pair()
    train, val = toy_probe_samples(4, 56, 70, seed=0), toy_probe_samples(2, 56, 70, seed=1)
    scfg = ProbeConfig(iters=3, batch_size=2, progress=False, device="cpu")
    dcfg = DepthProbeConfig(iters=3, batch_size=2, n_bins=16, upsample=1, progress=False, device="cpu")
    seg_aug = SegAugment(scale=(112, 28), crop=(28, 42), stride=(20, 30), test_scale=(112, 28))
    for protocol in ("official", "quick"):
        s = run_probes(FeatureSets(orig, tuned, "seg"), train, val, scfg, protocol, n_classes=3, aug=seg_aug)
        d = run_probes(FeatureSets(orig, tuned, "depth"), train, val, dcfg, protocol, aug=DepthAugment(crop=(42, 56)),
                       flip_extract=True)
        assert set(s) == {"original", "duplicated", "finetuned", "combined", "_seconds"}
        assert all(0 <= s[r]["mIoU"] <= 1 and d[r]["rmse"] > 0 for r in ("original", "combined"))
    with pytest.raises(ValueError, match="protocol is 'fast'"):
        run_probes(FeatureSets(orig, tuned, "seg"), train, val, scfg, "fast", n_classes=3)
    with pytest.raises(ValueError, match="needs n_classes"):
        run_probes(FeatureSets(orig, tuned, "seg"), train, val, scfg)


def test_non_finite_loss_stops_a_protocol_run():
    orig, tuned = _pair()
    with torch.no_grad(): tuned.model.blocks[0].mlp.fc2.bias.fill_(float("nan"))
    train = toy_probe_samples(2, 56, 70, seed=0)
    cfg = ProbeConfig(iters=2, batch_size=2, progress=False, device="cpu", solver="adamw")
    with pytest.raises(NonFiniteLoss, match="finetuned step 0: loss is nan"):
        run_probes(FeatureSets(orig, tuned, "seg"), train, train, cfg, "quick", n_classes=3)
    with pytest.raises(NonFiniteLoss, match="finetuned: the cached features hold NaN or Inf"):   # solved (the default)
        run_probes(FeatureSets(orig, tuned, "seg"), train, train, ProbeConfig(progress=False, device="cpu"), "quick",
                   n_classes=3)


def test_windows_cover_every_pixel_and_crops_pad_with_ignore():
    for H, W in [(512, 683), (300, 1000), (600, 600)]:
        cover = torch.zeros(H, W)
        for y0, y1, x0, x1 in windows(H, W, (512, 512), (341, 341)): cover[y0:y1, x0:x1] += 1
        assert cover.min() >= 1
    img, lab = torch.rand(3, 20, 30), torch.zeros(20, 30, dtype=torch.long)
    im, lb = seg_augment(img, lab, torch.Generator().manual_seed(0), SegAugment(scale=(30, 20), ratio=(1, 1), crop=(32, 32)))
    assert im.shape == (3, 32, 32) and (lb == -1).sum() == 32 * 32 - 20 * 30


def test_results_table_prints_the_papers_numbers_where_they_match():
    res = {r: dict(seg=dict(mIoU=0.3), depth=dict(rmse=0.4, abs_rel=0.1)) for r in ("original", "duplicated", "finetuned", "combined")}
    t = results_table(res, "dinov2_small", "scannetpp")
    assert "30.19" in t and "30.31" in t and "32.76" in t and "0.3676" in t and "Table 13" in t
    k = results_table(res, "dinov2_small", "kitti")      # KITTI: the paper has depth only
    assert "2.9125" in k and k.splitlines()[0].count("paper") == 1
    assert all(k[0] in ("dinov2_small", "dinov2_base", "dinov2_reg_small", "clip_base", "mae_base", "deit3_base") for k in PAPER)


def test_solved_probes_score_the_duplicated_control_as_the_original():
    "The invariant every table is checked against (fit3d.protocol.control_check): converged heads cannot tell a doubled width."
    from fit3d.protocol import control_check
    orig, tuned = _pair()
    train, val = toy_probe_samples(8, 56, 70, seed=0), toy_probe_samples(4, 56, 70, seed=1)
    def table(**kw):
        s = run_probes(FeatureSets(orig, tuned, "seg"), train, val, ProbeConfig(progress=False, device="cpu", **kw),
                       "quick", n_classes=3)
        d = run_probes(FeatureSets(orig, tuned, "depth"), train, val,
                       DepthProbeConfig(n_bins=16, progress=False, device="cpu", **kw), "quick")
        return {r: dict(segmentation=s[r], depth=d[r]) for r in ("original", "duplicated")}
    solved = table()
    assert all(solved[r][t]["converged"] for r in solved for t in ("segmentation", "depth")), solved
    check = control_check(solved)
    assert check["ok"], check["text"]
    assert abs(check["miou"]) <= 0.3 and abs(check["rmse"]) <= 0.01
    stepped = control_check(table(solver="adamw", iters=30, batch_size=4))   # a few fixed steps: the wider input learns faster
    assert stepped["ok"] is False and "FAILED" in stepped["text"], stepped["text"]


@pytest.mark.parametrize("box", [(45, 472, 43), (45.0, 472, 43, 608), (472, 45, 43, 608), (45, 472, 608, 43),
                                 (-1, 472, 43, 608), (45, 45, 43, 608)])
def test_depth_pre_crop_is_checked_where_it_is_made(box):
    with pytest.raises(ValueError, match=r"DepthAugment.pre_crop must be"): DepthAugment(pre_crop=box)


def test_depth_pre_crop_outside_an_image_names_the_sample():
    from fit3d.protocol import depth_augment
    aug = DepthAugment(crop=(32, 40), pre_crop=(45, 472, 43, 608), rotate=0, flip=0, color=0)   # NYUCrop on a 56x70 image
    ci, cd = depth_augment(torch.rand(3, 480, 640), torch.ones(480, 640), torch.Generator(), aug)
    assert (cd > 0).all()   # inside a 480x640 image: cropped, no padding
    orig, tuned = _pair()
    train = toy_probe_samples(2, 56, 70, seed=0)
    cfg = DepthProbeConfig(iters=1, batch_size=2, n_bins=16, upsample=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"toy\d: DepthAugment.pre_crop \(45, 472, 43, 608\) .* 56x70 image"):
        run_probes(FeatureSets(orig, tuned, "depth"), train, train, cfg, "official", aug=aug)
