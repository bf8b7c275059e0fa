"""fit3d.raster on the CPU: gsplat's own `rasterization` glue with its CUDA kernels replaced by PyTorch equivalents.

The GPU branch of `render` hands gsplat (C, N, D+3) colours, backgrounds and a `channel_chunk`; gsplat slices the
channels, appends depth and normalises it. Replacing the three CUDA calls in `gsplat.rendering` (projection, tile
intersection, rasterisation) by our PyTorch pieces runs all of that Python on the CPU, so a CPU CI catches glue
mistakes that only the GPU parity check would otherwise see.
"""
import pytest
import torch

import fit3d.raster as fr
from fit3d.raster import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics  # the shim


@pytest.fixture
def mocked_gsplat(monkeypatch):
    import gsplat.rendering as R
    import gsplat.cuda._wrapper as Wr
    ctx = {}

    def project(means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3, packed=False, near_plane=0.01,
                far_plane=1e10, radius_clip=0.0, sparse_grad=False, calc_compensations=False, camera_model="pinhole",
                opacities=None):
        cov, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
        _, m2d, dep, con, comp = _fully_fused_projection(means, cov, viewmats, Ks, width, height, eps2d, near_plane,
                                                         far_plane, calc_compensations)
        op = opacities.expand(len(viewmats), -1) if comp is None else opacities * comp
        radii = fr._radii(m2d.detach(), con.detach(), dep.detach(), op.detach(), width, height, near_plane, far_plane, radius_clip)
        vis = (radii > 0).all(-1)
        ctx.update(radii=radii, depths=dep.detach(), vis=vis, packed=packed)
        if not packed: return radii, m2d, dep, con, comp
        cam, gid = torch.nonzero(vis, as_tuple=True)
        ctx.update(cam=cam)
        return torch.zeros_like(cam), cam, gid, radii[vis], m2d[vis], dep[vis], con[vis], None if comp is None else comp[vis]

    def rasterize(means2d, conics, colors, opacities, W, H, tile_size, isect_offsets, flatten_ids, backgrounds=None,
                  packed=False, absgrad=False):
        ctx.setdefault("chunks", []).append(colors.shape[-1])
        C, vis = ctx["radii"].shape[0], ctx["vis"]
        if packed:
            flat = dict(m2d=means2d, con=conics, opa=opacities, col=colors, rad=ctx["radii"][vis])
            key, orders = ctx["depths"][vis], [torch.nonzero(ctx["cam"] == c).flatten() for c in range(C)]
        else:
            N = means2d.shape[1]
            flat = dict(m2d=means2d.reshape(-1, 2), con=conics.reshape(-1, 3), opa=opacities.reshape(-1),
                        col=colors.reshape(C * N, -1), rad=ctx["radii"].reshape(-1, 2))
            key, orders = ctx["depths"].reshape(-1), [c * N + torch.nonzero(vis[c]).flatten() for c in range(C)]
        imgs, alphas = [], []
        for c in range(C):
            o = orders[c][torch.argsort(key[orders[c]], stable=True)]
            out, logT = fr._composite(**flat, order=o, width=W, height=H, max_pairs=1 << 20)
            T = logT.exp().float()[:, None]
            if backgrounds is not None: out = out + T * backgrounds[c]
            imgs.append(out.view(H, W, -1)); alphas.append((1 - T).view(H, W, 1))
        return torch.stack(imgs), torch.stack(alphas)

    monkeypatch.setattr(R, "fully_fused_projection", project)
    monkeypatch.setattr(R, "isect_tiles", lambda *a, **k: (None, None, None))
    monkeypatch.setattr(R, "isect_offset_encode", lambda ids, I, tw, th: torch.zeros(I, th, tw, dtype=torch.int32))
    monkeypatch.setattr(R, "rasterize_to_pixels", rasterize)
    monkeypatch.setattr(Wr, "spherical_harmonics", lambda d, dirs, coeffs, masks=None: _spherical_harmonics(d, dirs, coeffs))
    return ctx


def gsplat_render(sp, vm, Ks, W, H, packed=False, background=None, channel_chunk=None, feature_grad_geometry=False):
    "The gsplat branch of `render` (which refuses CPU tensors), from its inputs on."
    C = len(vm)
    feats = sp["features"].expand(C, -1, -1) if "features" in sp else None
    D = 0 if feats is None else feats.shape[-1]
    rgb = fr.sh_colors(sp, vm, fr.max_sh_degree(sp), cuda=True)
    geometry = (sp["means"], sp["quats"], sp["scales"].exp(), torch.sigmoid(sp["opacities"]))
    bg = None if background is None else background.expand(C, 3)
    img, alpha, info = fr._render_gsplat(geometry, rgb, feats, (vm, Ks, W, H), bg, False, (0.01, 1e10, 0.3, 0.0, packed),
                                         False, channel_chunk, feature_grad_geometry)
    return fr.Render(img[..., D:D + 3], img[..., :D] if D else None, img[..., -1:], alpha, info)


GEOMETRY = ["means", "quats", "scales", "opacities"]


@pytest.mark.parametrize("D,kw,chunks", [(8, {}, [12]), (64, {}, [64, 4]), (64, dict(channel_chunk=32), [32, 32, 4]),
                                         (0, {}, [4]), (5, dict(packed=True), [9]),
                                         (30, dict(background=torch.tensor([0.1, 0.2, 0.3])), [30, 4]),
                                         (8, dict(fgg=False), [4, 8]), (64, dict(fgg=False, packed=True), [4, 64]),
                                         (30, dict(fgg=False, background=torch.tensor([0.1, 0.2, 0.3])), [4, 30])])
def test_gsplat_glue_matches_torch_backend(mocked_gsplat, D, kw, chunks):
    "Both branches draw the same images and gradients, coupled (one gsplat call) or not (two calls)."
    torch.set_num_threads(1)
    fgg = kw.pop("fgg", True)
    vm, Ks = fr.orbit_cameras(2, 32, 24)
    sp = fr.random_splats(300, D, 2, seed=D)
    a = gsplat_render(sp, vm, Ks, 32, 24, feature_grad_geometry=fgg, **kw)
    b = fr.render(sp, vm, Ks, 32, 24, backend="torch", feature_grad_geometry=fgg, **kw)
    assert mocked_gsplat["chunks"] == chunks
    for x, y in [(a.rgb, b.rgb), (a.alpha, b.alpha), (a.depth * a.alpha, b.depth * b.alpha)] + ([(a.features, b.features)] if D else []):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    assert a.info["radii"].shape == b.info["radii"].shape and a.info["radii"].dtype == b.info["radii"].dtype
    loss = lambda r: r.rgb.sum() + (r.features.sum() if D else 0) + (r.depth * r.alpha).sum()
    for g1, g2 in zip(torch.autograd.grad(loss(a), list(sp.values())), torch.autograd.grad(loss(b), list(sp.values()))):
        torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-3)   # summation order differs per chunk


@pytest.mark.parametrize("backend", ["torch", "gsplat-glue"])
@pytest.mark.parametrize("packed", [False, True])
def test_feature_loss_does_not_move_geometry(mocked_gsplat, backend, packed):
    "Default: the feature loss's gradients wrt means/quats/scales/opacities and means2d are the colour loss's alone."
    torch.set_num_threads(1)
    vm, Ks = fr.orbit_cameras(2, 32, 24)
    sp = fr.random_splats(300, 6, 1, seed=11)
    draw = (lambda **kw: fr.render(sp, vm, Ks, 32, 24, backend="torch", packed=packed, **kw)) if backend == "torch" else \
           (lambda **kw: gsplat_render(sp, vm, Ks, 32, 24, packed=packed, **kw))
    def grads(with_features, **kw):
        for p in sp.values(): p.grad = None
        o = draw(**kw); o.info["means2d"].retain_grad()              # as a strategy's step_pre_backward does
        loss = (o.rgb - 0.3).abs().mean() + 0.2 * (1 - o.rgb.mean())
        if with_features: loss = loss + (o.features - torch.linspace(-1, 1, 6)).abs().mean()
        loss.backward()
        return {k: sp[k].grad.clone() for k in GEOMETRY} | {"means2d": o.info["means2d"].grad.clone()}, sp["features"].grad
    rgb_only, f0 = grads(False)
    default, f1 = grads(True)
    coupled, f2 = grads(True, feature_grad_geometry=True)
    assert f0 is None or f0.abs().sum() == 0
    assert f1.abs().sum() > 0
    torch.testing.assert_close(f1, f2)                                 # the features learn the same either way
    for k in rgb_only:
        torch.testing.assert_close(default[k], rgb_only[k], atol=1e-9, rtol=1e-6)
        assert (coupled[k] - rgb_only[k]).abs().max() > 1e-5, k        # the option restores the coupling


def test_gsplat_backend_refuses_cpu_tensors():
    vm, Ks = fr.orbit_cameras(1, 8, 6)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        fr.render(fr.random_splats(4, 2, 0), vm, Ks, 8, 6, backend="gsplat")
