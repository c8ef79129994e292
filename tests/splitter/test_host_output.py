"""One host output conversion: what users get (orchestrator.dataplane.bundle_io.finish_output) is what the tests check
(splitter.model_io.final_output), for one-pixel and spatial outputs, with and without an affine."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.manifest import HostOutput
from orchestrator.dataplane.bundle_io import finish_output
from splitter.graph import Affine
from splitter.model_io import final_output


@pytest.mark.parametrize("shape", [(1, 1, 1, 10), (1, 2, 3, 4)])
@pytest.mark.parametrize("with_affine", [True, False])
def test_users_and_tests_get_the_same_output(shape: tuple[int, ...], with_affine: bool) -> None:
    rng = np.random.default_rng(sum(shape))
    y = rng.integers(-8, 8, size=shape)
    channels = shape[-1]
    affine = Affine(rng.random(channels).astype(np.float32), rng.random(channels).astype(np.float32))
    graph = SimpleNamespace(output_affine=affine if with_affine else None, output_stage=None)
    host = (HostOutput("affine", scale=tuple(affine.scale.tolist()), bias=tuple(affine.bias.tolist()))
            if with_affine else HostOutput("integer"))
    # the two manifest fields finish_output reads (core.manifest.Manifest.host.output, .output.shape)
    manifest = SimpleNamespace(host=SimpleNamespace(output=host), output=SimpleNamespace(shape=tuple(shape)))
    expected = final_output(graph, y)
    got = finish_output(manifest, y.reshape(-1))  # the wire delivers the last board's tensor flat
    np.testing.assert_array_equal(got, expected)
    if with_affine and shape[1:3] != (1, 1):
        assert got.shape == (1, shape[3], shape[1], shape[2])  # the model's NCHW, not flattened NHWC
