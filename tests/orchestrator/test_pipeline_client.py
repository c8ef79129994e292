"""The resilient client keeps every frame flowing while a board dies and the chain is re-wired."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import ServerFleet, server_bin  # noqa: F401  (fixture)

from orchestrator.dataplane.pipeline_client import ResilientClient
from orchestrator.dataplane.protocol import WireSpec
from splitter import program
from splitter.executor import execute


@pytest.mark.usefixtures("server_bin")
def test_frames_survive_a_board_dying_mid_stream(zoo_lowered: dict, server_bin: Path, tmp_path: Path) -> None:  # noqa: F811
    _, graph = zoo_lowered["tfc-w2a2"]
    cuts = [(0, 1), (1, 2), (2, len(graph.layers))]
    paths = []
    for k, (a, b) in enumerate(cuts):
        paths.append(tmp_path / f"p{k}.fsprog")
        program.write(graph.slice(a, b, f"p{k}"), paths[-1])
    rng = np.random.default_rng(3)
    frames = [rng.integers(graph.input.dtype.min, graph.input.dtype.max, size=graph.input.shape, endpoint=True)
              for _ in range(300)]
    servers = ServerFleet(server_bin, tmp_path)
    hop: dict[str, tuple[str, int] | None] = {"first": None}
    client = ResilientClient(WireSpec.of(graph.input), WireSpec.of(graph.output), lambda: hop["first"],
                             deadline_s=1.0, window=4)
    try:
        emulate = lambda k: ("--backend", "emulate", "--program", str(paths[k]))  # noqa: E731
        last = servers.start("s2", client.result_address, *emulate(2))
        middle = servers.start("s1", last.address, *emulate(1))
        first = servers.start("s0", middle.address, *emulate(0))
        hop["first"] = first.address

        seen_at_failure: list[int] = []

        def fail_and_rewire() -> None:
            while client.delivered < 30:
                threading.Event().wait(0.005)
            seen_at_failure.append(client.delivered)
            middle.kill()  # the board dies with frames inside
            hop["first"] = None  # the orchestrator notices and re-wires: spare for stage 1, stage 0 re-pointed
            spare = servers.start("s1b", last.address, *emulate(1))
            first.terminate()
            hop["first"] = servers.start("s0b", spare.address, *emulate(0)).address

        failure = threading.Thread(target=fail_and_rewire)
        failure.start()
        results = client.infer_many(frames, timeout_s=60)
        failure.join()
        assert seen_at_failure[0] < len(frames) - 50, "the board must die mid-stream"
        for frame, got in zip(frames, results, strict=True):
            np.testing.assert_array_equal(got, execute(graph, frame))
    finally:
        client.close()
        servers.close()
