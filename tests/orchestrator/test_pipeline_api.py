"""Image files in, labelled top-K out, and the Python API (docs/python-api.md), on real virtual boards.

Images are generated with Pillow; every result is compared with the Python executor's.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cpp_fixtures import server_bin  # noqa: F401  (fixture: builds cpp_server)
from PIL import Image

from core.manifest import Manifest, load_manifest
from orchestrator.dataplane.bundle_io import finish_output, prepare_input
from orchestrator.dataplane.user_io import Preprocessing, UserInputError, load_image, preprocessing_for
from splitter.fast_executor import FastExecutor

REPO = Path(__file__).resolve().parents[2]
FINNSPLIT = [sys.executable, "-c", "from cli.main import main; main()"]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def finnsplit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FINNSPLIT, *args], capture_output=True, text=True, cwd=cwd or REPO, timeout=600)


@pytest.fixture(scope="module")
def workdir(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory, server_bin: Path) -> Path:  # noqa: F811
    """A directory with a CNV-w2a2 bundle in build/, images in images/ and the CIFAR-10 names."""
    root = tmp_path_factory.mktemp("api")
    built = finnsplit("build", str(zoo_dir / "cnv-w2a2.onnx"), "--boards", "2", "--no-replicate", "--finn", "no",
                      "-o", str(root / "build"))
    assert built.returncode == 0, built.stderr
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(32, 32), (48, 64), (100, 40), (32, 32), (57, 33)]):
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, size=(40, 40), dtype=np.uint8)).save(root / "images" / "5.png")  # gray
    Image.fromarray(rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8)).save(root / "photo.jpg")
    (root / "labels.txt").write_text("\n".join(CIFAR10) + "\n")
    (root / "model.onnx").write_bytes((zoo_dir / "cnv-w2a2.onnx").read_bytes())  # for the references
    return root


def _expected(root: Path, path: Path) -> np.ndarray:
    """The model's output for an image, by the Python executor (the bundle's own host steps)."""
    from splitter.load import input_spec_of_bundle, load_and_lower

    manifest = load_manifest(root / "build")
    graph = load_and_lower(str(root / "model.onnx"), input_spec_of_bundle(manifest))[1]
    raw = load_image(path, preprocessing_for(manifest))
    y = FastExecutor(graph)(prepare_input(manifest, root / "build", raw))
    return finish_output(manifest, y, root / "build").reshape(-1)


def test_the_documented_example_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    text = (REPO / "docs" / "python-api.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(workdir)
    scope: dict = {}
    exec(compile(example, "docs/python-api.md", "exec"), scope)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("0.png [(")
    assert "6 images," in printed
    for result, path in zip(scope["streamed"], scope["files"], strict=True):
        assert result.name == path.name
        assert np.array_equal(result.output, _expected(workdir, path)), path.name
        assert result.top(1)[0][1] == CIFAR10[int(np.argmax(result.output))]


def test_cli_prints_labelled_top_k_for_image_files(workdir: Path) -> None:
    done = finnsplit("virtual", str(workdir / "build"), "--images", str(workdir / "images"),
                     "--images", str(workdir / "photo.jpg"), "--labels", str(workdir / "labels.txt"), "--top", "3")
    assert done.returncode == 0, done.stderr
    assert "7 images: RGB, shorter side resized to 32 (direct), center crop 32x32, pixel / 255 floats" in done.stderr
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines() if re.match(r"^\S+\.(png|jpg): ", line)}
    assert sorted(lines) == [*(f"{i}.png" for i in range(6)), "photo.jpg"]
    for line in lines.values():
        names = re.findall(r"(\w+) \((-?[\d.e+-]+)\)", line.split(": ", 1)[1])
        assert len(names) == 3 and all(n in CIFAR10 for n, _ in names)
        scores = [float(s) for _, s in names]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--images", "nowhere.png"], "nowhere.png: no such image file or directory"),
    (["--images", "labels.txt"], "labels.txt: not a readable JPEG or PNG image"),
    (["--images", "images", "--labels", "build/manifest.json"], "labels, but the model has 10 classes"),
    (["--images", "images", "--random", "3"], "give one of --images, --inputs and --random"),
])
def test_bad_inputs_are_named_before_anything_runs(workdir: Path, args: list[str], message: str) -> None:
    done = finnsplit("virtual", "build", *args, cwd=workdir)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def test_resize_and_center_crop(tmp_path: Path) -> None:
    # columns numbered 0..63 on a 32x64 image: 'direct' keeps the scale and crops the middle 32 columns
    columns = np.tile(np.arange(64, dtype=np.uint8), (32, 1))
    Image.fromarray(np.stack([columns] * 3, axis=-1)).save(tmp_path / "wide.png")
    raw = load_image(tmp_path / "wide.png", Preprocessing(32, 32, 3, "direct", "integers"))
    assert raw.shape == (1, 3, 32, 32) and raw.dtype == np.int64
    assert np.array_equal(raw[0, 0, 0], np.arange(16, 48))
    # 'imagenet': shorter side to 224 / 0.875 = 256, then the middle 224 x 224
    Image.fromarray(np.full((300, 600, 3), 7, dtype=np.uint8)).save(tmp_path / "big.png")
    big = load_image(tmp_path / "big.png", Preprocessing(224, 224, 3, "imagenet", "unit"))
    assert big.shape == (1, 3, 224, 224) and np.allclose(big, 7 / 255)


def test_preprocessing_from_the_manifest(workdir: Path) -> None:
    manifest = load_manifest(workdir / "build")
    assert preprocessing_for(manifest) == Preprocessing(32, 32, 3, "direct", "unit")
    def resized(how: str) -> Manifest:
        return dataclasses.replace(manifest, host=dataclasses.replace(manifest.host, preprocess={"resize": how}))

    assert preprocessing_for(resized("imagenet")).resize == "imagenet"
    with pytest.raises(UserInputError, match="stretch"):
        preprocessing_for(resized("stretch"))


def test_run_on_a_virtual_fleet_prints_labelled_top_5(workdir: Path) -> None:
    from orchestrator.rigs.netns import netns_available

    if netns_available() is not None:
        pytest.skip(str(netns_available()))
    done = finnsplit("run", "build", "--virtual-fleet", "0", "--images", "images", "--labels", "labels.txt",
                     cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if re.match(r"^\d\.png: ", line)]
    assert [line.split(":")[0] for line in lines] == [f"{i}.png" for i in range(6)]
    for line, i in zip(lines, range(6), strict=True):
        best = re.findall(r"(\w+) \(", line)
        expected = _expected(workdir, workdir / "images" / f"{i}.png")
        assert len(best) == 5 and best[0] == CIFAR10[int(np.argmax(expected))]
