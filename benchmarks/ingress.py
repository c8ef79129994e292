"""What the daemon's ingress costs (docs/ingress.md), measured in this run.

A bundle runs on virtual boards on loopback (the delay backend: each partition's predicted compute
time per frame, real wire sizes). The same frames go through it twice: straight through the
resilient client the daemon uses (what the Python API does), and through the ingress (HTTPS, the
bearer token, JSON with base64 tensors, batches of B frames per request, from 1 and from 2
concurrent senders). Printed: the host's input stage per frame (orchestrator/dataplane/bundle_io.py, which both
paths run), frames/s of each and the ratio ingress / direct (with the host stage) per batch size.

Usage: .venv/bin/python benchmarks/ingress.py [BUNDLE] [--frames 512]
       (without BUNDLE: tfc-w2a2 is exported and built in a temporary directory)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.manifest import load_manifest  # noqa: E402
from orchestrator.control.pki import ensure_ca, write_private  # noqa: E402
from orchestrator.dataplane.bundle_io import prepare_input  # noqa: E402
from orchestrator.dataplane.ingress import Ingress, server_tls  # noqa: E402
from orchestrator.dataplane.ingress_client import IngressClient  # noqa: E402
from orchestrator.dataplane.link_auth import new_key  # noqa: E402
from orchestrator.dataplane.pipeline_client import ResilientClient  # noqa: E402
from orchestrator.dataplane.protocol import WireSpec  # noqa: E402
from orchestrator.rigs.virtual import VirtualChain, last_stage_nodes, random_inputs  # noqa: E402
from orchestrator.web.server import WebServer  # noqa: E402


def build(work: Path) -> Path:
    from splitter.zoo import export

    export("tfc-w2a2", work / "tfc.onnx", seed=0)
    subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "build", str(work / "tfc.onnx"),
                    "--boards", "3", "--no-replicate", "--finn", "no", "-o", str(work / "tfc")], check=True,
                   capture_output=True)
    return work / "tfc"


def through_ingress(client: IngressClient, raws: np.ndarray, batch: int, senders: int) -> float:
    parts = np.array_split(raws, senders)

    def send(part: np.ndarray) -> None:
        for start in range(0, len(part), batch):
            client.infer(part[start:start + batch])

    threads = [threading.Thread(target=send, args=(p,)) for p in parts]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(raws) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--frames", type=int, default=512)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="finnsplit-ingress-bench-"))
    bundle = Path(args.bundle) if args.bundle else build(work)
    manifest = load_manifest(bundle)
    raws = np.concatenate(random_inputs(manifest, args.frames, seed=1))
    key = new_key()
    chain_box: dict[str, VirtualChain] = {}
    client = ResilientClient(WireSpec.parse(manifest.input.wire), WireSpec.parse(manifest.output.wire),
                             lambda: chain_box["c"].first_hop if "c" in chain_box else None, key=key,
                             last_stage=lambda: last_stage_nodes(manifest))
    secrets = work / "secrets"
    secrets.mkdir()
    ensure_ca(secrets, "bench CA")
    token = "t" * 43
    write_private(secrets / "ingress.token", token.encode())
    with VirtualChain(bundle, client.result_address, work / "logs", manifest=manifest, key=key,
                      backend="delay") as chain:
        chain_box["c"] = chain
        for i in range(8):  # warm-up: the host stage's model is loaded once
            prepare_input(manifest, bundle, raws[i:i + 1])
        began = time.perf_counter()
        tensors = [prepare_input(manifest, bundle, raws[i:i + 1]) for i in range(len(raws))]
        prepare_s = time.perf_counter() - began
        client.infer_many(tensors[:16])  # warm-up
        began = time.perf_counter()
        client.infer_many(tensors)
        stream_s = time.perf_counter() - began
        pipeline, direct = len(tensors) / stream_s, len(tensors) / (stream_s + prepare_s)
        ingress = Ingress(client, manifest, bundle, token.encode(), lambda: "running")
        server = WebServer(("127.0.0.1", 0), ingress.routes(), server_tls(secrets, ["127.0.0.1"]))
        try:
            sender = IngressClient(server.url, secrets / "ingress.token", secrets / "ca.crt")
            print(f"{bundle.name}: {len(manifest.partitions)} partitions, delay backend, plan "
                  f"{manifest.plan.fps:.0f} fps; {args.frames} frames")
            print(f"the host's input stage ({manifest.host.input.kind}): "
                  f"{prepare_s / len(tensors) * 1000:.2f} ms per frame")
            print(f"direct, the pipeline alone (resilient client): {pipeline:8.1f} fps")
            print(f"direct, with the host's input stage:           {direct:8.1f} fps  (the reference)")
            for batch in (1, 8, 64):
                for senders in (1, 2):
                    fps = through_ingress(sender, raws, batch, senders)
                    print(f"ingress, {batch:2d} frames/request, {senders} sender(s):    {fps:8.1f} fps  "
                          f"ratio {fps / direct:.2f}")
        finally:
            server.close()
            ingress.close()
            client.close()


if __name__ == "__main__":
    main()
