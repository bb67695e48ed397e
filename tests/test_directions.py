"""Directions: filter/layer normalisation, seeds, eigenvectors, plane, PCA, direction files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from cases import dense_hessian, objective_for

from landscape.directions import (
    CheckpointPoint,
    filter_norms,
    normalize_direction,
    pca_directions,
    plane_directions,
    random_directions,
    read_direction_file,
)
from landscape.errors import LandscapeError


@pytest.fixture(scope="module")
def bn_obj():
    return objective_for("bn_cnn", dtype=torch.float64)


def test_filter_normalised_random_directions_have_the_weights_filter_norms(bn_obj):
    space, theta = bn_obj.space, bn_obj.theta0
    d = random_directions(space, theta, k=2, seed=3, norm="filter")
    w_norms = filter_norms(theta, space)
    for row in d.vectors:
        d_norms = filter_norms(row, space)
        for name, kind in zip(space.names, space.kinds):
            if kind == "weight":
                assert torch.allclose(d_norms[name], w_norms[name], rtol=1e-9), name
                assert len(d_norms[name]) == dict(zip(space.names, space.shapes))[name][0]
            else:  # biases and BatchNorm weights are zeroed by default
                assert float(d_norms[name].abs().max()) == 0.0, name
    # the running statistics are buffers: not part of the direction at all
    assert d.vectors.shape == (2, bn_obj.dim)


def test_include_bn_rescales_1d_tensors_as_a_whole(bn_obj):
    space, theta = bn_obj.space, bn_obj.theta0
    d = random_directions(space, theta, k=1, seed=3, norm="filter", include_bn=True).vectors[0]
    blocks = space.blocks()
    for name, kind in zip(space.names, space.kinds):
        if kind != "weight":
            dv, wv = d[blocks[name]], theta[blocks[name]]
            assert float(dv.norm()) == pytest.approx(float(wv.norm()), rel=1e-9)
            # not element-wise: the entries are not all ±|w_i|
            assert not torch.allclose(dv.abs(), wv.abs())
    # the weights' directions do not depend on include_bn (same random numbers)
    plain = random_directions(space, theta, k=1, seed=3, norm="filter").vectors[0]
    mask = space.mask(["weight"], like=theta).bool()
    assert torch.equal(plain[mask], d[mask])


def test_layer_and_none_normalisation(bn_obj):
    space, theta = bn_obj.space, bn_obj.theta0
    lay = random_directions(space, theta, k=1, seed=5, norm="layer").vectors[0]
    for name, kind in zip(space.names, space.kinds):
        blk = space.blocks()[name]
        if kind == "weight":
            assert float(lay[blk].norm()) == pytest.approx(float(theta[blk].norm()), rel=1e-9)
    raw = random_directions(space, theta, k=1, seed=5, norm="none", include_bn=True).vectors[0]
    gen = torch.Generator().manual_seed(5)
    expect = torch.cat([torch.randn(int(torch.Size(s).numel()), generator=gen) for s in space.shapes])
    assert torch.allclose(raw, expect.double())


def test_seeds_reproduce_and_differ(bn_obj):
    space, theta = bn_obj.space, bn_obj.theta0
    a = random_directions(space, theta, k=2, seed=11).vectors
    b = random_directions(space, theta, k=2, seed=11).vectors
    c = random_directions(space, theta, k=2, seed=12).vectors
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # two independent draws


def test_normalize_rejects_unknown_norm(bn_obj):
    with pytest.raises(LandscapeError):
        normalize_direction(bn_obj.theta0, bn_obj.theta0, bn_obj.space, norm="bogus")


def test_eigen_directions_match_dense_hessian():
    pytest.importorskip("landscape.hessian.lanczos")
    from landscape.directions import eigen_directions

    obj = objective_for("mlp_tanh", dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(dense_hessian(obj))
    d = eigen_directions(obj, k=2, seed=0, tol=1e-8)
    assert d.info["eigenvalues"][0] == pytest.approx(float(evals[-1]), rel=1e-6)
    assert d.info["eigenvalues"][1] == pytest.approx(float(evals[-2]), rel=1e-6)
    for j, v in enumerate(d.vectors):
        assert float(v.norm()) == pytest.approx(1.0, abs=1e-9)
        assert abs(float(v @ evecs[:, -1 - j])) == pytest.approx(1.0, abs=1e-6)


def _point(theta, bufs=None, name="p"):
    return CheckpointPoint(name, "0" * 64, theta, bufs or {})


def test_plane_puts_the_three_checkpoints_at_their_coordinates():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(3))
    ba, bb, bc = (torch.rand(4, generator=g, dtype=torch.float64) + 0.5 for _ in range(3))
    d = plane_directions(_point(a, {"bn.running_var": ba}), _point(b, {"bn.running_var": bb}),
                         _point(c, {"bn.running_var": bc}))
    coords = [cc["coordinates"] for cc in d.info["checkpoints"]]
    assert coords[0] == [0.0, 0.0] and coords[1] == [1.0, 0.0] and coords[2][1] == 1.0
    assert abs(float(d.vectors[0] @ d.vectors[1])) < 1e-9 * float(d.vectors[0].norm() * d.vectors[1].norm())
    x, y = coords[2]
    assert torch.allclose(a + x * d.vectors[0] + y * d.vectors[1], c)
    e = d.buffer_vectors["bn.running_var"]
    assert torch.allclose(ba + x * e[0] + y * e[1], bc)
    assert torch.allclose(ba + e[0], bb)


def test_pca_matches_centred_svd_and_projects_the_trajectory(bn_obj):
    space = bn_obj.space
    g = torch.Generator().manual_seed(1)
    centre = torch.randn(bn_obj.dim, generator=g, dtype=torch.float64)
    traj = centre + torch.randn(6, bn_obj.dim, generator=g, dtype=torch.float64) * torch.linspace(1, 0.1, bn_obj.dim, dtype=torch.float64)
    d = pca_directions(centre, traj, space, k=2, include_bn=True)
    rows = (traj - centre).numpy()
    centred = rows - rows.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    for j in range(2):
        assert abs(float(d.vectors[j].numpy() @ vt[j])) == pytest.approx(1.0, abs=1e-9)
    ratio = s ** 2 / (s ** 2).sum()
    assert np.allclose(d.info["explained_variance_ratio"], ratio[:2], rtol=1e-9)
    assert np.allclose(d.info["explained_variance"], s[:2] ** 2 / 5, rtol=1e-9)
    coords = np.array(d.info["trajectory"]["coordinates"])
    assert np.allclose(coords, rows @ d.vectors.numpy().T)
    # excluding biases/BN: those coordinates never move
    d2 = pca_directions(centre, traj, space, k=2)
    mask = space.mask(["weight"], like=centre)
    assert float((d2.vectors * (1 - mask)).abs().max()) == 0.0
    with pytest.raises(LandscapeError):
        pca_directions(centre, traj[:2], space, k=2)


def test_direction_files_pt_and_h5(tmp_path, bn_obj):
    space, theta = bn_obj.space, bn_obj.theta0
    d = random_directions(space, theta, k=2, seed=0).vectors
    kw = dict(device=theta.device, dtype=theta.dtype)
    # a list of state-dict-like dicts, one name missing (= zero)
    rows = [space.unflatten(v.clone()) for v in d]
    missing = space.names[0]
    for r in rows:
        del r[missing]
    torch.save(rows, tmp_path / "d.pt")
    got = read_direction_file(str(tmp_path / "d.pt"), space, k=2, **kw)
    expect = d.clone()
    expect[:, space.blocks()[missing]] = 0
    assert torch.equal(got.vectors, expect)
    # a flat (k, dim) tensor
    torch.save(d.clone(), tmp_path / "flat.pt")
    assert torch.equal(read_direction_file(str(tmp_path / "flat.pt"), space, k=2, **kw).vectors, d)
    # Li et al.'s layout: xdirection/ydirection with datasets in parameter order
    with h5py.File(tmp_path / "li.h5", "w") as f:
        for key, v in zip(("xdirection", "ydirection"), d):
            grp = f.create_group(key)
            for i, t in enumerate(space.unflatten(v).values()):
                grp.create_dataset(str(i), data=t.numpy())
    assert torch.equal(read_direction_file(str(tmp_path / "li.h5"), space, k=2, **kw).vectors, d)
    # unknown names and too few directions are one-line errors
    torch.save({"nope.weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(LandscapeError, match="not a parameter"):
        read_direction_file(str(tmp_path / "bad.pt"), space, k=1, **kw)
    torch.save(space.unflatten(d[0].clone()), tmp_path / "one.pt")
    with pytest.raises(LandscapeError, match="holds 1"):
        read_direction_file(str(tmp_path / "one.pt"), space, k=2, **kw)
