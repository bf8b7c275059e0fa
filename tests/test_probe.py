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
