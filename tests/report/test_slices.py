"""Plane-checkpoint markers read from HDF5 arrive as numpy arrays; labels must still be read."""

import numpy as np

from landscape.report.slices import _markers


def test_plane_markers_from_numpy_arrays():
    d = {"points": np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 1.0]]),
         "plane_checkpoints": np.array([b"a.pt", b"b.pt", b"c.pt"])}
    markers = _markers(d, {}, np.linspace(-1, 2, 5), np.linspace(-1, 2, 5), False)
    assert [m.label for m in markers] == ["a.pt", "b.pt", "c.pt"]
    assert [(m.x, m.y) for m in markers] == [(0.0, 0.0), (1.0, 0.0), (0.3, 1.0)]
