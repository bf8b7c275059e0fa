"Multi-view correspondence checks beside the notebook."
import torch
from fit3d.testing import toy_posed_scene
from fit3d.correspondence import correspondences, correspondence_recall, position_features, match, feature_consistency

torch.set_num_threads(1)


def test_correspondences_are_mutual(tmp_path):
    sc = toy_posed_scene(tmp_path, n=2, width=64, height=48)
    ua, ub = correspondences(sc, 0, 1, n_points=200)
    # projecting B's locations back into A lands within a pixel of where they came from (mostly)
    ub_px = ub.floor() + 0.5
    back_a, back_b = correspondences(sc, 1, 0, n_points=None)
    lut = {tuple(p.tolist()): q for p, q in zip(back_a, back_b)}
    hits = [(lut[tuple(p.tolist())] - a).norm() for p, a in zip(ub_px, ua) if tuple(p.tolist()) in lut]
    assert len(hits) > 0.8 * len(ua) and torch.tensor(hits).median() < 1.0


def test_native_grid_matching_is_quantised(tmp_path):
    sc = toy_posed_scene(tmp_path, n=2, width=64, height=48)
    f = {i: position_features(sc, i, pool=8) for i in range(2)}
    coarse = correspondence_recall(sc, f, n_points=300, match_stride=None, thresholds=(1, 8))
    fine = correspondence_recall(sc, f, n_points=300, match_stride=2, thresholds=(1, 8))
    assert fine["recall@1"] > coarse["recall@1"] and coarse["recall@8"] > 0.8


def test_match_finds_a_planted_feature():
    fb = torch.randn(5, 6, 8)
    q = fb[:, 2, 3][None]
    assert match(q, fb, (12, 16), stride=None).tolist() == [[7.0, 5.0]]   # cell (2, 3) of a 6x8 grid over 12x16 px


def test_empty_mask_gives_nan():
    f = torch.randn(3, 4, 4)
    assert feature_consistency(f, f, torch.zeros(8, 8, dtype=torch.bool))["cos"] != feature_consistency(f, f, torch.zeros(8, 8, dtype=torch.bool))["cos"]
