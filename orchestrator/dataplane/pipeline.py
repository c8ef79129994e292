"""finnsplit as a Python library: a bundle running on boards, fed from a program (docs/python-api.md).

    from orchestrator.dataplane.pipeline import Pipeline

    with Pipeline("build/", virtual=True, labels="labels.txt") as pipe:   # or fleet="fleet.yaml"
        for result in pipe.infer(["cat.jpg", "dog.png"]):
            print(result.name, result.top(5))
        for result in pipe.stream(camera_frames()):                        # any iterable, results in order
            ...

Where it runs: `fleet=` a fleet.yaml (deployed over SSH, started over MQTT, failures survived as
`finnsplit run` does), or `virtual=True`: one emulate server per partition on this machine
(`finnsplit virtual`). Inputs are image files (preprocessed as orchestrator.dataplane.user_io says) or
arrays in the original model's input layout.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FinnsplitError
from core.manifest import load_manifest
from orchestrator.dataplane.bundle_io import finish_output, prepare_input
from orchestrator.dataplane.user_io import (
    classes_of,
    load_image,
    load_labels,
    outputs_are_labels,
    preprocessing_for,
    top_k,
)

Input = str | Path | np.ndarray


@dataclass(frozen=True)
class Result:
    """One input's result: the model's output (scores, or top-K class indices) and its name."""

    name: str  # the image file's name, or "#i" for the i-th array
    output: np.ndarray  # what the original model outputs for it (float scores, or integer labels)
    labels: tuple[str, ...] | None = None
    indices: bool = False  # output holds class indices, best first (the model ends in a top-K)

    def top(self, k: int = 5) -> list[tuple[int, str, float | None]]:
        """The k best classes: (index, name or index as text, score; None for index outputs)."""
        return top_k(self.output, k, list(self.labels) if self.labels else None, self.indices)


class Pipeline:
    """A bundle running on a fleet or on virtual boards, until `close` (or the end of a `with`)."""

    def __init__(self, bundle: str | Path, fleet: str | Path | None = None, *, virtual: bool = False,
                 labels: str | Path | None = None, backend: str = "emulate", log_dir: str | Path | None = None,
                 log: Any = None) -> None:
        """Start the pipeline: `fleet` (a fleet.yaml) or `virtual=True`; `labels`: class names file."""
        if (fleet is None) == (not virtual):
            raise FinnsplitError("Pipeline: give exactly one of fleet=FLEET.yaml and virtual=True")
        self.bundle = str(bundle)
        self.manifest = load_manifest(self.bundle)
        self.labels = tuple(load_labels(labels, classes_of(self.manifest))) if labels else None
        self._log = log or (lambda _message: None)
        self._stack = contextlib.ExitStack()
        self._counter = itertools.count()
        try:
            self._infer_many = self._start_fleet(fleet, backend) if fleet else self._start_virtual(log_dir)
        except BaseException:
            self._stack.close()
            raise

    def _start_virtual(self, log_dir: str | Path | None) -> Any:
        from orchestrator.dataplane.client import ChainClient
        from orchestrator.dataplane.link_auth import new_key
        from orchestrator.dataplane.protocol import WireSpec
        from orchestrator.rigs.virtual import VirtualChain, is_replicated, last_stage_nodes

        key = new_key()
        client = self._stack.enter_context(ChainClient(
            WireSpec.parse(self.manifest.input.wire), WireSpec.parse(self.manifest.output.wire),
            key=key, last_stage=last_stage_nodes(self.manifest), ordered=not is_replicated(self.manifest)))
        chain = self._stack.enter_context(VirtualChain(self.bundle, client.result_address,
                                                       log_dir or Path(self.bundle) / "logs",
                                                       manifest=self.manifest, key=key))
        client.connect(chain.first_hop)
        return client.infer_many

    def _start_fleet(self, fleet: str | Path, backend: str) -> Any:
        from orchestrator.control.daemon import DaemonConfig
        from orchestrator.control.fleet import load_fleet
        from orchestrator.control.session import FleetSession

        session = FleetSession(load_fleet(str(fleet)), self.bundle, DaemonConfig(backend=backend), self._log,
                               self.manifest)
        self._stack.callback(session.close)
        session.wait_running()
        return lambda tensors: session.client.infer_many(tensors, timeout_s=600)

    def _prepare(self, item: Input) -> tuple[str, np.ndarray]:
        """(name, first board's tensor) of one input."""
        number = next(self._counter)
        if isinstance(item, (str, Path)):
            raw, name = load_image(Path(item), preprocessing_for(self.manifest)), Path(item).name
        else:
            raw, name = np.asarray(item), f"#{number}"
            if raw.ndim == len(self.manifest.host.model_input.shape) - 1:
                raw = raw[None]
        return name, prepare_input(self.manifest, self.bundle, raw)

    def infer(self, batch: Sequence[Input]) -> list[Result]:
        """Results of a batch of inputs, in order (the batch streams through the boards at once)."""
        prepared = [self._prepare(item) for item in batch]
        outputs = self._infer_many([tensor for _, tensor in prepared]) if prepared else []
        indices = outputs_are_labels(self.manifest)
        return [Result(name, finish_output(self.manifest, y, self.bundle).reshape(-1), self.labels, indices)
                for (name, _), y in zip(prepared, outputs, strict=True)]

    def stream(self, inputs: Iterable[Input], chunk: int = 16) -> Iterator[Result]:
        """Results of any iterable of inputs, in order, `chunk` inputs in flight at a time."""
        iterator = iter(inputs)
        while batch := list(itertools.islice(iterator, chunk)):
            yield from self.infer(batch)

    def close(self) -> None:
        """Stop the virtual boards or the orchestrator and the client."""
        self._stack.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
