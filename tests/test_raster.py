"""fit3d.raster on the CPU: gsplat's own `rasterization` glue with its CUDA kernels replaced by PyTorch equivalents.

The GPU branch of `render` hands gsplat (C, N, D+3) colours, backgrounds and a `channel_chunk`; gsplat slices the
channels, appends depth and normalises it. Replacing the three CUDA calls in `gsplat.rendering` (projection, tile
intersection, rasterisation) by our PyTorch pieces runs all of that Python on the CPU, so a CPU CI catches glue
mistakes that only the GPU parity check would otherwise see.
"""
import pytest
import torch

import fit3d.raster as fr
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics


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


def gsplat_render(sp, vm, Ks, W, H, packed=False, background=None, channel_chunk=None):
    "The gsplat branch of `render` (which refuses CPU tensors), step by step."
    C, D = len(vm), sp["features"].shape[1] if "features" in sp else 0
    colors = fr.sh_colors(sp, vm, fr.max_sh_degree(sp), cuda=True)
    if D: colors = torch.cat([sp["features"].expand(C, -1, -1), colors], -1)
    bg = None if background is None else torch.cat([torch.zeros(C, D), background.expand(C, 3)], -1)
    img, alpha, info = fr._gsplat_rasterize(sp["means"], sp["quats"], sp["scales"].exp(), torch.sigmoid(sp["opacities"]),
                                            colors, vm, Ks, W, H, 0.01, 1e10, 0.3, 0.0, packed, bg, False, False,
                                            channel_chunk or fr.auto_channel_chunk(D))
    return fr.Render(img[..., D:D + 3], img[..., :D] if D else None, img[..., -1:], alpha, info)


@pytest.mark.parametrize("D,kw,chunks", [(8, {}, [12]), (64, {}, [64, 4]), (64, dict(channel_chunk=32), [32, 32, 4]),
                                         (0, {}, [4]), (5, dict(packed=True), [9]),
                                         (30, dict(background=torch.tensor([0.1, 0.2, 0.3])), [30, 4])])
def test_gsplat_glue_matches_torch_backend(mocked_gsplat, D, kw, chunks):
    torch.set_num_threads(1)
    vm, Ks = fr.orbit_cameras(2, 32, 24)
    sp = fr.random_splats(300, D, 2, seed=D)
    a, b = gsplat_render(sp, vm, Ks, 32, 24, **kw), fr.render(sp, vm, Ks, 32, 24, backend="torch", **kw)
    assert mocked_gsplat["chunks"] == chunks
    for x, y in [(a.rgb, b.rgb), (a.alpha, b.alpha), (a.depth * a.alpha, b.depth * b.alpha)] + ([(a.features, b.features)] if D else []):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    assert a.info["radii"].shape == b.info["radii"].shape and a.info["radii"].dtype == b.info["radii"].dtype
    loss = lambda r: r.rgb.sum() + (r.features.sum() if D else 0) + (r.depth * r.alpha).sum()
    for g1, g2 in zip(torch.autograd.grad(loss(a), list(sp.values())), torch.autograd.grad(loss(b), list(sp.values()))):
        torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-3)   # summation order differs per chunk


def test_gsplat_backend_refuses_cpu_tensors():
    vm, Ks = fr.orbit_cameras(1, 8, 6)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        fr.render(fr.random_splats(4, 2, 0), vm, Ks, 8, 6, backend="gsplat")
