"""`finnsplit daemon --web --ingress` on a virtual fleet (namespaces, sshd, Mosquitto, agents, servers):
two programs send frames concurrently through the ingress and each gets exactly its own results,
bit-exact; unauthenticated, wrong-key and malformed requests get clear errors and disturb nothing;
the dashboard, loaded in headless Chromium, shows the running fleet, updates, and shows a failover.
The screenshot is kept (tmp dir, and artifacts/dashboard.png, printed)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture)

from core.manifest import load_manifest
from orchestrator.dataplane.bundle_io import finish_output, prepare_input
from orchestrator.dataplane.ingress_client import IngressClient, IngressRequestError
from orchestrator.rigs.netns import netns_available
from orchestrator.rigs.vfleet import VirtualFleet
from orchestrator.rigs.virtual import random_inputs
from splitter import program
from splitter.executor import execute

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.skipif(netns_available() is not None, reason=str(netns_available())),
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/setup.sh installs it)")]
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def cnv_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cnv-w2a2 split over 3 Zedboards, one stage each."""
    from splitter.zoo import export

    work = tmp_path_factory.mktemp("dash")
    export("cnv-w2a2", work / "cnv.onnx", seed=0)
    done = subprocess.run([*FINNSPLIT, "build", str(work / "cnv.onnx"), "--boards", "3", "--no-replicate",
                           "--finn", "no", "-o", str(work / "cnv")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert len(load_manifest(work / "cnv").partitions) == 3
    return work / "cnv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as answer:
        return json.loads(answer.read())


def _chromium(url: str, *args: str, budget_ms: int = 6000) -> str:
    """Chromium's DOM (or screenshot) after the page ran `budget_ms` of virtual time: timers run fast,
    but a pending fetch holds the clock, so every poll really reaches the daemon."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--virtual-time-budget={budget_ms}", *args, url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _reference(bundle: Path, manifest: dict):
    pieces = [program.read(bundle / p.files["program"].path) for p in manifest.partitions]

    def run(raw: np.ndarray) -> np.ndarray:
        x = prepare_input(manifest, bundle, raw)
        for piece in pieces:
            x = execute(piece, x)
        return finish_output(manifest, x, bundle)

    return run


def _refusals(client: IngressClient, shape: list[int]) -> None:
    """What a stranger or a broken program sends: each refused with a clear error, nothing else happens."""
    good = np.zeros([1, *shape[1:]], np.float32)
    cases = [
        ({"token": ""}, {"tensors": {}}, 401, "authentication required"),
        ({"token": "0" * 43}, {"tensors": {}}, 403, "wrong ingress token"),
        ({}, None, 405, "use POST"),
        ({}, {"tensors": {"dtype": "float32", "shape": [1, 3, 3], "data": ""}}, 400, "must be [N,"),
        ({}, {"tensors": {"dtype": "complex64", "shape": [1, *shape[1:]], "data": ""}}, 400, "dtype"),
        ({}, {"tensors": {"dtype": "float32", "shape": list(good.shape), "data": "!!"}}, 400, "base64"),
        ({}, {"tensors": {"dtype": "float32", "shape": list(good.shape), "data": "AAAA"}}, 400, "holds 3 B"),
        ({}, {"images": [base64.b64encode(b"not an image").decode()]}, 400, "images[0] is not a readable"),
        ({}, {"images": [], "tensors": {}}, 400, "exactly one"),
        ({}, {"tensors": {}, "top": "5"}, 400, "'top' must be"),
        ({}, {"frames": 1}, 400, "unknown fields"),
    ]
    for options, payload, status, words in cases:
        with pytest.raises(IngressRequestError) as refused:
            client.request("/v1/infer", payload, **options)
        assert refused.value.status == status and words in str(refused.value), (payload, str(refused.value))
    raw = urllib.request.Request(client.url + "/v1/infer", data=b"{" * 5000,
                                 headers={"Authorization": f"Bearer {client.token}"})
    with pytest.raises(urllib.error.HTTPError) as not_json:
        urllib.request.urlopen(raw, context=client.context, timeout=10)
    assert not_json.value.code == 400 and b"not JSON" in not_json.value.read()
    with pytest.raises((OSError, http.client.HTTPException)):  # plaintext HTTP gets no answer from the TLS port
        urllib.request.urlopen(client.url.replace("https://", "http://") + "/v1/model", timeout=10)


@pytest.mark.usefixtures("server_bin")
def test_daemon_ingress_and_dashboard(cnv_bundle: Path, tmp_path: Path) -> None:
    manifest = load_manifest(cnv_bundle)
    shape = [int(d) for d in manifest.host.model_input.shape]
    reference = _reference(cnv_bundle, manifest)

    def inputs(count: int, seed: int) -> np.ndarray:
        return np.concatenate(random_inputs(manifest, count, seed))

    boards = [("z0", "zedboard"), ("z1", "zedboard"), ("z2", "zedboard"), ("z3", "zedboard")]
    with VirtualFleet(tmp_path / "fleet", boards, heartbeat_s=0.5) as vfleet:
        assert vfleet.secrets is not None
        web, ingress = _free_port(), _free_port()
        log_path = tmp_path / "daemon.log"
        daemon = subprocess.Popen([*FINNSPLIT, "daemon", str(cnv_bundle), "--fleet", str(vfleet.fleet_path),
                                   "--report-s", "2", "--web", f"127.0.0.1:{web}", "--ingress",
                                   f"127.0.0.1:{ingress}"], stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
        status = None
        try:
            deadline = time.monotonic() + 240
            while True:
                assert daemon.poll() is None, log_path.read_text()
                try:
                    if _state(web)["state"] == "running":
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
            status_port = _free_port()  # `finnsplit status --web`: the same dashboard from the broker alone
            status = subprocess.Popen([*FINNSPLIT, "status", "--fleet", str(vfleet.fleet_path), "--web",
                                       f"127.0.0.1:{status_port}"], stdout=subprocess.DEVNULL,
                                      stderr=(tmp_path / "status.log").open("wb"))
            client = IngressClient(f"https://127.0.0.1:{ingress}", vfleet.secrets.ingress_token_file,
                                   vfleet.secrets.ca_file)
            assert client.request("/v1/model")["input_shape"] == shape

            # two programs at once: each gets back exactly its own frames' results, in its order
            def sender(seed: int, out: list) -> None:
                for k in range(5):
                    batch = inputs(6, seed * 100 + k)
                    out.append((batch, client.infer(batch)))

            got: dict[int, list] = {1: [], 2: []}
            threads = [threading.Thread(target=sender, args=(seed, got[seed])) for seed in got]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=180)
            for seed, answers in got.items():
                assert len(answers) == 5, seed
                for batch, outputs in answers:
                    expected = np.concatenate([reference(batch[i:i + 1]) for i in range(len(batch))])
                    np.testing.assert_array_equal(outputs, expected)

            _refusals(client, shape)
            from PIL import Image

            png = io.BytesIO()
            Image.fromarray(np.random.default_rng(5).integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(png, "PNG")
            answer = client.infer_images([png.getvalue()], top=5)
            assert len(answer["top"]) == 1 and len(answer["top"][0]) == 5, answer
            batch = inputs(4, 9)
            np.testing.assert_array_equal(client.infer(batch),  # the pipeline is undisturbed
                                          np.concatenate([reference(batch[i:i + 1]) for i in range(4)]))

            # the dashboard in a real browser while frames flow: it loads, shows the fleet, updates
            stop = threading.Event()

            def stream() -> None:
                batch = inputs(8, 3)
                while not stop.is_set():
                    try:
                        client.infer(batch)
                    except IngressRequestError:
                        time.sleep(0.2)  # a failover in progress

            feeder = threading.Thread(target=stream)
            feeder.start()
            try:
                time.sleep(3)
                dom = _chromium(f"http://127.0.0.1:{web}/", "--dump-dom", budget_ms=120_000)
                (tmp_path / "dashboard-running.html").write_text(dom)
                samples = [int(s) for s in dom.split('data-samples="', 1)[1].split('"', 1)[0].split(",")]
                assert len(set(samples)) >= 2, samples  # the page redrew with a newer sample on its own
                assert '<span id="state" class="pill running">running</span>' in dom, dom[:3000]
                for name in ("z0", "z1", "z2", "z3"):
                    assert f'data-board="{name}"' in dom
                assert dom.count('class="series"') == 3, tmp_path  # fps over time, one line per stage
                snap = _state(web)
                assert snap["bottleneck"] is not None and all(s["fps"] > 0 for s in snap["stages"]), snap["stages"]
                assert snap["ingress"]["refused"] >= 11 and snap["ingress"]["frames"] >= 60, snap["ingress"]

                seen = _state(status_port)
                assert seen["state"] == "running" and [s["board"] for s in seen["stages"]] == \
                    [s["board"] for s in snap["stages"]], seen
                assert all(s["fps"] > 0 for s in seen["stages"]), seen["stages"]
                status.send_signal(signal.SIGINT)
                assert status.wait(timeout=20) == 0, (tmp_path / "status.log").read_text()
                victim = next(s["board"] for s in snap["stages"] if s["stage"] == "1")
                vfleet.kill(victim)
                deadline = time.monotonic() + 60
                while not (snap := _state(web))["failovers"] or snap["state"] != "running":
                    assert time.monotonic() < deadline, snap
                    time.sleep(0.5)
                time.sleep(3)  # fps of the new stage 1 on the chart
                shot = tmp_path / "dashboard.png"
                _chromium(f"http://127.0.0.1:{web}/", f"--screenshot={shot}", "--window-size=1280,1000")
                dom = _chromium(f"http://127.0.0.1:{web}/", "--dump-dom")
            finally:
                stop.set()
                feeder.join(timeout=60)
            assert snap["failovers"][0]["from"] == victim, snap["failovers"]
            (tmp_path / "dashboard-failover.html").write_text(dom)
            assert f"stage 1: {victim} \u2192 z3" in dom, dom[:4000]
            assert victim in dom.split('id="errors"', 1)[1].split("</ul>", 1)[0]  # the lost board, in the errors
            assert shot.stat().st_size > 20_000
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / "dashboard.png")
            print(f"dashboard screenshot: {shot} and {ARTIFACTS / 'dashboard.png'}")
        finally:
            if status is not None and status.poll() is None:
                status.kill()
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=40)
            except subprocess.TimeoutExpired:
                daemon.kill()
        text = log_path.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "ingress at https://127.0.0.1:" in text and "dashboard at http://127.0.0.1:" in text, text[-2000:]
