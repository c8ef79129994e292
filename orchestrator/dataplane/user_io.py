"""What users send and read: image files in, class names with scores out (docs/images.md).

Images are decoded with Pillow, converted to the model's channels (RGB for 3, grayscale for 1),
resized and center-cropped to the model input, and handed over as the original model's input
layout (NCHW). The preprocessing comes from the bundle manifest (`host.preprocess`, written by
whoever knows how the model was trained) or, without one, from defaults by input size:

- `imagenet` (inputs of 128 pixels and more): shorter side to H / 0.875 (256 for 224), center
  crop H x W - torchvision's ImageNet evaluation transform;
- `direct` (smaller, CIFAR-10 / MNIST sized): shorter side to H, center crop H x W.

Pixel values: a bundle whose input quantization is declared (e.g. UINT8, scale 1/255, mean, std)
gets the raw 0..255 integers, which the declared quantization scales; a bundle whose model
quantizes a float input itself gets pixel / 255 in [0, 1] (the BNN-PYNQ models' convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import FinnsplitError
from core.manifest import Manifest

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_RESIZE_RATIO = {"imagenet": 0.875, "direct": 1.0}


class UserInputError(FinnsplitError):
    """An image or label file that cannot be used, naming the file and why."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes one model input."""

    height: int
    width: int
    channels: int  # 3: RGB, 1: grayscale
    resize: str  # "imagenet" (shorter side to H / 0.875, then crop) or "direct" (shorter side to H)
    pixels: str  # "integers" (raw 0..255, the bundle's declared quantization scales) or "unit" (/ 255)

    def describe(self) -> str:
        """One line for the user: what is done to every image."""
        side = round(min(self.height, self.width) / _RESIZE_RATIO[self.resize])
        mode = {3: "RGB", 1: "grayscale"}[self.channels]
        values = "raw 0..255 integers" if self.pixels == "integers" else "pixel / 255 floats"
        return (f"{mode}, shorter side resized to {side} ({self.resize}), center crop {self.height}x{self.width}, "
                f"{values}")


def preprocessing_for(manifest: Manifest) -> Preprocessing:
    """The bundle's preprocessing (host.preprocess, if present) or the defaults for its input shape."""
    shape = list(manifest.host.model_input.shape)
    if len(shape) != 4:
        raise UserInputError(f"images need a model with an NCHW image input, this one takes shape {shape}")
    _, channels, height, width = (int(d) for d in shape)
    if channels not in (1, 3):
        raise UserInputError(f"images need a model input of 1 or 3 channels, this one has {channels}")
    given = manifest.host.preprocess or {}
    resize = given.get("resize", "imagenet" if min(height, width) >= 128 else "direct")
    if resize not in _RESIZE_RATIO:
        raise UserInputError(f"bundle preprocess.resize {resize!r} is not one of {', '.join(_RESIZE_RATIO)}")
    host_input = manifest.host.input
    pixels = "unit" if host_input.kind == "onnx" else "integers"
    if pixels == "integers" and host_input.dtype != "UINT8":
        raise UserInputError(f"images are 0..255 pixels, but this model's integer input is {host_input.dtype}")
    return Preprocessing(height, width, channels, resize, given.get("pixels", pixels))


def image_files(paths: list[str]) -> list[Path]:
    """The image files named, directories expanded to their JPEG and PNG files (sorted)."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UserInputError(f"{path}: no .jpg, .jpeg or .png files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UserInputError(f"{path}: no such image file or directory")
    return files


def load_image(path: Path, prep: Preprocessing) -> np.ndarray:
    """One image as the model's input, shape (1, C, H, W)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if prep.channels == 3 else "L")
            ratio = _RESIZE_RATIO[prep.resize]
            scale = max(prep.height / ratio / image.height, prep.width / ratio / image.width)
            size = (max(prep.width, round(image.width * scale)), max(prep.height, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - prep.width) // 2, (size[1] - prep.height) // 2
            pixels = np.asarray(image.crop((left, top, left + prep.width, top + prep.height)))
    except (UnidentifiedImageError, OSError) as exc:
        raise UserInputError(f"{path}: not a readable JPEG or PNG image ({exc})") from None
    chw = pixels.reshape(prep.height, prep.width, prep.channels).transpose(2, 0, 1)[None]
    return chw.astype(np.int64) if prep.pixels == "integers" else (chw / 255.0).astype(np.float32)


def load_images(paths: list[str], manifest: Manifest) -> tuple[list[Path], list[np.ndarray]]:
    """(files, model inputs) for image files and directories, preprocessed for the bundle."""
    prep = preprocessing_for(manifest)
    files = image_files(paths)
    return files, [load_image(path, prep) for path in files]


def load_labels(path: str | Path, classes: int | None) -> list[str]:
    """Class names, one per line (blank lines at the end ignored); `classes`: how many there must be."""
    try:
        lines = Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot read the labels ({exc})") from None
    labels = [line.strip() for line in lines]
    if classes is not None and len(labels) != classes:
        raise UserInputError(f"{path}: {len(labels)} labels, but the model has {classes} classes")
    return labels


def select_inputs(manifest: Manifest, images: tuple[str, ...], random_count: int | None, npy: str | None,
                  seed: int) -> tuple[list[str], list[np.ndarray]]:
    """(a name per input, the inputs in the original model's layout) from the command line's choice.

    One of: image files/directories, a .npy file (N first), `random_count` seeded random inputs.
    """
    from orchestrator.rigs.virtual import random_inputs

    if sum(bool(x) for x in (images, npy, random_count is not None)) > 1:
        raise UserInputError("give one of --images, --inputs and --random")
    if images:
        files, raws = load_images(list(images), manifest)
        return [f.name for f in files], raws
    rank = len(manifest.host.model_input.shape)
    if npy:
        try:
            raws = list(np.load(npy))
        except (OSError, ValueError) as exc:
            raise UserInputError(f"{npy}: not a readable .npy array ({exc})") from None
        raws = [r.reshape(1, *r.shape) if r.ndim == rank - 1 else r for r in raws]
        return [f"{Path(npy).name}[{i}]" for i in range(len(raws))], raws
    raws = random_inputs(manifest, random_count or 0, seed)
    return [f"random {i}" for i in range(len(raws))], raws


def classes_of(manifest: Manifest) -> int | None:
    """How many classes the output scores (None when the outputs are top-K indices)."""
    if outputs_are_labels(manifest):
        return None
    return int(np.prod(manifest.output.shape))


def outputs_are_labels(manifest: Manifest) -> bool:
    """True when the model ends in a top-K (LabelSelect): its outputs are class indices, best first."""
    return any(name.startswith("LabelSelect") for name in manifest.partitions[-1].layers)


def top_k(result: np.ndarray, k: int, labels: list[str] | None = None,
          indices: bool = False) -> list[tuple[int, str, float | None]]:
    """The k best classes of one result: (class index, label or the index as text, score).

    `indices`: the result already is class indices, best first (outputs_are_labels); no scores.
    """
    values = np.asarray(result).reshape(-1)
    if indices:
        order, scores = values[:k].astype(np.int64), None
    else:
        scores = values.astype(np.float64)
        order = np.argsort(-scores, kind="stable")[:k]
    if labels is not None and len(order) and (order.min() < 0 or order.max() >= len(labels)):
        raise UserInputError(f"class index {int(order.max())} has no label ({len(labels)} labels)")
    return [(int(i), labels[i] if labels else str(int(i)), None if scores is None else float(scores[i]))
            for i in order]


def format_top(name: str, result: np.ndarray, k: int, labels: list[str] | None = None,
               indices: bool = False) -> str:
    """`name: label (score), ...` for one result."""
    best = top_k(result, k, labels, indices)
    return f"{name}: " + ", ".join(label if score is None else f"{label} ({score:.3g})" for _, label, score in best)
