"""The manifest's types: frozen dataclasses, each read from and written to its JSON object here.

Standard library only. The format is docs/bundle.md#manifest. `Manifest.from_json` checks every
field it types and names the file and field of anything malformed (BundleError); `to_json` writes
the keys in the order `finnsplit build` always has, so an unchanged manifest is the same bytes
(a bundle's id is a hash of them). Open-ended entries (`predicted`, `finn_estimates`, `versions`,
FINN's `iodma` and `estimates`) stay read-only mappings; unknown keys are kept in `extra`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.manifest.files import BundleError, FileEntry

EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen(value: Any) -> Any:
    """`value` (parsed JSON) with every object a read-only mapping and every list a tuple."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """`value` as plain JSON data (dicts and lists), for json.dumps."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class _Obj:
    """A JSON object being read, with the file and field it is at (for the messages)."""

    def __init__(self, value: object, where: str, name: str) -> None:
        if not isinstance(value, dict):
            raise BundleError(f"{where}: '{name}' must be an object, got {value!r:.80}")
        self.data, self.where, self.name = value, where, name

    def at(self, key: str | int) -> str:
        return f"{self.name}[{key}]" if isinstance(key, int) else f"{self.name}.{key}" if self.name else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, optional: bool = False) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise BundleError(f"{self.where}: '{self.at(key)}' is missing")
        return self.data[key]

    def _bad(self, key: str, what: str, value: object) -> BundleError:
        return BundleError(f"{self.where}: '{self.at(key)}' must be {what}, got {value!r:.80}")

    def obj(self, key: str, optional: bool = False) -> _Obj | None:
        value = self.raw(key, optional)
        return None if value is None and optional else _Obj(value, self.where, self.at(key))

    def text(self, key: str, optional: bool = False) -> str | None:
        value = self.raw(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def int(self, key: str, optional: bool = False) -> int | None:
        value = self.raw(key, optional)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer", value)
        return value

    def number(self, key: str, optional: bool = False) -> float | None:
        value = self.raw(key, optional)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number", value)
        return value

    def list(self, key: str, optional: bool = False) -> list[Any] | None:
        value = self.raw(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value

    def ints(self, key: str, optional: bool = False) -> tuple[int, ...] | None:
        value = self.list(key, optional)
        if value is None:
            return None
        if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise self._bad(key, "a list of integers", value)
        return tuple(value)

    def numbers(self, key: str, optional: bool = False) -> tuple[float, ...] | None:
        value = self.list(key, optional)
        if value is None:
            return None
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
            raise self._bad(key, "a list of numbers", value)
        return tuple(value)

    def texts(self, key: str, optional: bool = False) -> tuple[str, ...] | None:
        value = self.list(key, optional)
        if value is None:
            return None
        if not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings", value)
        return tuple(value)

    def mapping(self, key: str, optional: bool = False) -> Mapping[str, Any] | None:
        value = self.obj(key, optional)
        return None if value is None else frozen(value.data)

    def items(self, key: str) -> list[_Obj]:
        """The objects of list `key`."""
        values = self.list(key)
        return [_Obj(v, self.where, f"{self.at(key)}[{k}]") for k, v in enumerate(values)]

    def files(self, key: str = "files") -> Mapping[str, FileEntry]:
        files = self.obj(key)
        return MappingProxyType({name: FileEntry.from_json(files.obj(name)) for name in files.data})

    def extra(self, known: Iterable[str]) -> Mapping[str, Any]:
        known = set(known)
        return frozen({k: v for k, v in self.data.items() if k not in known})


def _from_file_entry(obj: _Obj) -> FileEntry:
    return FileEntry(obj.text("path"), obj.int("bytes"), obj.text("sha256"))


FileEntry.from_json = staticmethod(_from_file_entry)  # type: ignore[attr-defined]  # FileEntry lives in files.py


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set out[key] = value unless value is None (an absent optional key)."""
    if value is not None:
        out[key] = plain(value)


@dataclass(frozen=True)
class TensorEntry:
    """A tensor crossing a link: dataflow name, FINN datatype, NHWC shape, wire spec, packed bytes."""

    tensor: str
    dtype: str
    shape: tuple[int, ...]
    wire: str  # the data plane's --spec-in/--spec-out form, UINT4:1,28,28,256
    packed_bytes: int
    onnx_shape: tuple[int, ...] | None = None  # in a partition's entries: the sub-model's shape

    @staticmethod
    def from_json(obj: _Obj) -> TensorEntry:
        """Read one tensor entry."""
        return TensorEntry(obj.text("tensor"), obj.text("dtype"), obj.ints("shape"), obj.text("wire"),
                           obj.int("packed_bytes"), obj.ints("onnx_shape", optional=True))

    def to_json(self) -> dict[str, Any]:
        """The tensor's JSON object."""
        out = {"tensor": self.tensor, "dtype": self.dtype, "shape": list(self.shape), "wire": self.wire,
               "packed_bytes": self.packed_bytes}
        _put(out, "onnx_shape", self.onnx_shape)
        return out


@dataclass(frozen=True)
class Boundary:
    """A partition's input or output: every tensor crossing it, in boundary order (docs/bundle.md)."""

    tensors: tuple[TensorEntry, ...]

    @property
    def wire(self) -> str:
        """The whole frame's spec: the tensors' wire specs joined by `+`."""
        return "+".join(t.wire for t in self.tensors)

    @property
    def packed_bytes(self) -> int:
        """The whole frame's bytes: the sum of its tensors'."""
        return sum(t.packed_bytes for t in self.tensors)

    @staticmethod
    def from_json(obj: _Obj) -> Boundary:
        """Read a boundary entry; a version 1 entry (no `tensors`) is its one tensor."""
        if not obj.has("tensors"):
            return Boundary((TensorEntry.from_json(obj),))
        tensors = tuple(TensorEntry.from_json(t) for t in obj.items("tensors"))
        if not tensors:
            raise BundleError(f"{obj.where}: '{obj.at('tensors')}' must be a non-empty list of tensor entries")
        return Boundary(tensors)

    def to_json(self) -> dict[str, Any]:
        """The boundary's JSON object: one tensor's keys besides `tensors`, or the frame's wire and bytes."""
        tensors = [t.to_json() for t in self.tensors]
        if len(tensors) == 1:
            return {**tensors[0], "tensors": [dict(tensors[0])]}
        return {"tensors": tensors, "wire": self.wire, "packed_bytes": self.packed_bytes}


@dataclass(frozen=True)
class ModelInfo:
    """The model the bundle was built from: its name, source file name and SHA-256."""

    name: str
    file: str | None = None
    sha256: str | None = None

    @staticmethod
    def from_json(obj: _Obj) -> ModelInfo:
        """Read the `model` entry."""
        return ModelInfo(obj.text("name"), obj.text("file", optional=True), obj.text("sha256", optional=True))

    def to_json(self) -> dict[str, Any]:
        """The `model` JSON object."""
        out: dict[str, Any] = {"name": self.name}
        _put(out, "file", self.file)
        _put(out, "sha256", self.sha256)
        return out


@dataclass(frozen=True)
class Plan:
    """The plan's summary: strategy, predicted pipeline fps, what limits it, boards and power."""

    strategy: str
    fps: float
    limited_by: str
    boards_used: int
    unused_boards: tuple[str, ...]
    power_w: float

    @staticmethod
    def from_json(obj: _Obj) -> Plan:
        """Read the `plan` entry."""
        return Plan(obj.text("strategy"), obj.number("fps"), obj.text("limited_by"), obj.int("boards_used"),
                    tuple(frozen(obj.list("unused_boards"))), obj.number("power_w"))

    def to_json(self) -> dict[str, Any]:
        """The `plan` JSON object."""
        return {"strategy": self.strategy, "fps": self.fps, "limited_by": self.limited_by,
                "boards_used": self.boards_used, "unused_boards": plain(self.unused_boards), "power_w": self.power_w}


@dataclass(frozen=True)
class HostInput:
    """What the host does to a model input before the first board (`host.input`, docs/bundle.md)."""

    kind: str  # "declared", "onnx" or "integer"
    dtype: str
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None
    ops: tuple[str, ...] | None = None  # kind "onnx": the op types of host/input_quant.onnx
    factor: float | None = None  # with `shift`: the first board gets x * factor - shift[c]
    shift: tuple[float, ...] | None = None

    @staticmethod
    def from_json(obj: _Obj) -> HostInput:
        """Read `host.input`."""
        std = obj.raw("std", optional=True)
        std = obj.numbers("std") if isinstance(std, list) else obj.number("std", optional=True)
        return HostInput(obj.text("kind"), obj.text("dtype"), obj.number("scale", optional=True),
                         obj.numbers("mean", optional=True), std, obj.texts("ops", optional=True),
                         obj.number("factor", optional=True), obj.numbers("shift", optional=True))

    def to_json(self) -> dict[str, Any]:
        """The `host.input` JSON object."""
        out: dict[str, Any] = {"kind": self.kind, "dtype": self.dtype}
        for key in ("scale", "mean", "std", "ops", "factor", "shift"):
            _put(out, key, getattr(self, key))
        return out


@dataclass(frozen=True)
class HostStage:
    """The host's output stage: host/output_stage.onnx run on y reshaped to `shape` (docs/lowering.md)."""

    input: str
    shape: tuple[int, ...]
    ops: tuple[str, ...]

    @staticmethod
    def from_json(obj: _Obj) -> HostStage:
        """Read `host.output.stage`."""
        return HostStage(obj.text("input"), obj.ints("shape"), obj.texts("ops"))

    def to_json(self) -> dict[str, Any]:
        """The stage's JSON object."""
        return {"input": self.input, "shape": list(self.shape), "ops": list(self.ops)}


@dataclass(frozen=True)
class HostOutput:
    """What the host does after the last board (`host.output`): an affine or nothing, then a stage."""

    kind: str  # "affine" or "integer"
    scale: tuple[float, ...] | None = None
    bias: tuple[float, ...] | None = None
    stage: HostStage | None = None

    @staticmethod
    def from_json(obj: _Obj) -> HostOutput:
        """Read `host.output`."""
        stage = obj.obj("stage", optional=True)
        return HostOutput(obj.text("kind"), obj.numbers("scale", optional=True), obj.numbers("bias", optional=True),
                          None if stage is None else HostStage.from_json(stage))

    def to_json(self) -> dict[str, Any]:
        """The `host.output` JSON object."""
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("scale", "bias", "stage"):
            _put(out, key, getattr(self, key))
        return out


@dataclass(frozen=True)
class ModelInput:
    """The original model's input: its name and NCHW shape."""

    name: str
    shape: tuple[int, ...]

    @staticmethod
    def from_json(obj: _Obj) -> ModelInput:
        """Read `host.model_input`."""
        return ModelInput(obj.text("name"), obj.ints("shape"))

    def to_json(self) -> dict[str, Any]:
        """The `host.model_input` JSON object."""
        return {"name": self.name, "shape": list(self.shape)}


@dataclass(frozen=True)
class HostSection:
    """The laptop's part: its files, the model's input, the input and output conversions (`host`)."""

    files: Mapping[str, FileEntry]  # "input_quant", "output_stage" when the model has them
    model_input: ModelInput
    input: HostInput
    output: HostOutput
    onnx_output: str  # the original model's output name
    preprocess: Mapping[str, Any] | None = None  # image preprocessing (`resize`: orchestrator.dataplane.user_io)
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # keys this finnsplit does not know, kept

    KEYS = ("files", "model_input", "input", "output", "onnx_output", "preprocess")

    @staticmethod
    def from_json(obj: _Obj) -> HostSection:
        """Read `host`."""
        return HostSection(obj.files(), ModelInput.from_json(obj.obj("model_input")),
                           HostInput.from_json(obj.obj("input")), HostOutput.from_json(obj.obj("output")),
                           obj.text("onnx_output"), obj.mapping("preprocess", optional=True),
                           obj.extra(HostSection.KEYS))

    def to_json(self) -> dict[str, Any]:
        """The `host` JSON object."""
        out = {"files": plain(self.files), "model_input": self.model_input.to_json(), "input": self.input.to_json(),
               "output": self.output.to_json(), "onnx_output": self.onnx_output}
        _put(out, "preprocess", self.preprocess)
        return {**out, **plain(self.extra)}


@dataclass(frozen=True)
class FinnIO:
    """Elements per word of FINN's IODMA buffers (the finn-zynq backend's --in/--out-word-elems)."""

    in_word_elems: int | tuple[int, ...]  # a tuple, one per tensor, for a boundary of several
    out_word_elems: int | tuple[int, ...]

    @staticmethod
    def from_json(obj: _Obj) -> FinnIO:
        """Read a partition's `finn_io`."""
        def elems(key: str) -> int | tuple[int, ...]:
            value = obj.raw(key)
            if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                         for v in value):
                return tuple(value)
            return obj.int(key)  # type: ignore[return-value]  # not optional: an int or a BundleError
        return FinnIO(elems("in_word_elems"), elems("out_word_elems"))

    def to_json(self) -> dict[str, Any]:
        """The `finn_io` JSON object."""
        return {"in_word_elems": plain(self.in_word_elems), "out_word_elems": plain(self.out_word_elems)}


@dataclass(frozen=True)
class FinnBuild:
    """A partition's FINN build (`partitions[k].finn`, docs/finn.md#the-manifest-entry)."""

    files: Mapping[str, FileEntry]  # "bitfile", "bitbin" (what fpga_manager loads), "hwh"
    iodma: Mapping[str, Any]  # idma0/odma0: AXI-lite `base`, `range`
    arch: str | None = None
    estimates: Mapping[str, Any] | None = None  # FINN's estimate_network_performance
    versions: Mapping[str, Any] | None = None  # finn, vivado
    iodma_order: Mapping[str, Any] | None = None  # inputs/outputs: the DMA of each boundary tensor (FINN's driver)

    @staticmethod
    def from_json(obj: _Obj) -> FinnBuild:
        """Read `partitions[k].finn`."""
        return FinnBuild(obj.files(), obj.mapping("iodma"), obj.text("arch", optional=True),
                         obj.mapping("estimates", optional=True), obj.mapping("versions", optional=True),
                         obj.mapping("iodma_order", optional=True))

    def to_json(self) -> dict[str, Any]:
        """The `finn` JSON object."""
        out: dict[str, Any] = {"files": plain(self.files)}
        _put(out, "arch", self.arch)
        out["iodma"] = plain(self.iodma)
        _put(out, "iodma_order", self.iodma_order)
        _put(out, "estimates", self.estimates)
        _put(out, "versions", self.versions)
        return out


@dataclass(frozen=True)
class Partition:
    """One stage of the chain: which board runs which layers, what crosses its links, its files."""

    index: int
    dir: str
    board: str  # the board file's name (splitter.boards)
    part: str  # the FPGA part
    replicas: int
    layers: tuple[str, ...]
    input: Boundary
    output: Boundary
    files: Mapping[str, FileEntry]  # model, qonnx, program, folding, finn_build
    finn_io: FinnIO
    predicted: Mapping[str, Any]  # the plan's prediction (docs/bundle.md#manifest)
    finn_estimates: Mapping[str, Any] | None = None  # after `finnsplit finn-build --estimates-only`
    finn: FinnBuild | None = None  # after `finnsplit finn-build`
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    KEYS = ("index", "dir", "board", "part", "replicas", "layers", "input", "output", "files", "finn_io",
            "predicted", "finn_estimates", "finn")

    @staticmethod
    def from_json(obj: _Obj) -> Partition:
        """Read one `partitions[k]`."""
        finn = obj.obj("finn", optional=True)
        return Partition(obj.int("index"), obj.text("dir"), obj.text("board"), obj.text("part"), obj.int("replicas"),
                         obj.texts("layers"), Boundary.from_json(obj.obj("input")),
                         Boundary.from_json(obj.obj("output")), obj.files(), FinnIO.from_json(obj.obj("finn_io")),
                         obj.mapping("predicted"), obj.mapping("finn_estimates", optional=True),
                         None if finn is None else FinnBuild.from_json(finn), obj.extra(Partition.KEYS))

    def to_json(self) -> dict[str, Any]:
        """The partition's JSON object."""
        out = {"index": self.index, "dir": self.dir, "board": self.board, "part": self.part,
               "replicas": self.replicas, "layers": list(self.layers), "input": self.input.to_json(),
               "output": self.output.to_json(), "files": plain(self.files), "finn_io": self.finn_io.to_json(),
               "predicted": plain(self.predicted)}
        _put(out, "finn_estimates", self.finn_estimates)
        _put(out, "finn", self.finn)
        return {**out, **plain(self.extra)}

    def all_files(self) -> list[FileEntry]:
        """The partition's files and its FINN build's (a board holds only its own partition's)."""
        return [*self.files.values(), *(self.finn.files.values() if self.finn else ())]


@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest.json (docs/bundle.md#manifest); read it with `load_manifest`."""

    format: str
    version: int
    model: ModelInfo
    created: str
    versions: Mapping[str, Any]  # python, finnsplit, onnx, ... program_format
    plan: Plan
    host: HostSection
    input: TensorEntry  # the chain's first integer tensor
    output: TensorEntry  # and its last
    partitions: tuple[Partition, ...]
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    KEYS = ("format", "version", "model", "created", "versions", "plan", "host", "input", "output", "partitions")

    @staticmethod
    def from_json(data: object, where: str = "manifest") -> Manifest:
        """The manifest in parsed JSON `data`; BundleError naming `where` and the field if malformed."""
        obj = _Obj(data, where, "")
        return Manifest(obj.text("format"), obj.int("version"), ModelInfo.from_json(obj.obj("model")),
                        obj.text("created"), obj.mapping("versions"), Plan.from_json(obj.obj("plan")),
                        HostSection.from_json(obj.obj("host")), TensorEntry.from_json(obj.obj("input")),
                        TensorEntry.from_json(obj.obj("output")),
                        tuple(Partition.from_json(p) for p in obj.items("partitions")), obj.extra(Manifest.KEYS))

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON data, keys in the order `finnsplit build` writes them."""
        out = {"format": self.format, "version": self.version, "model": self.model.to_json(),
               "created": self.created, "versions": plain(self.versions), "plan": self.plan.to_json(),
               "host": self.host.to_json(), "input": self.input.to_json(), "output": self.output.to_json(),
               "partitions": [p.to_json() for p in self.partitions]}
        return {**out, **plain(self.extra)}

    def partition(self, index: int) -> Partition:
        """The partition with `index`; BundleError if the bundle has none."""
        for part in self.partitions:
            if part.index == index:
                return part
        raise BundleError(f"the bundle has no partition {index}")

    def replace_partition(self, index: int, **changes: Any) -> Manifest:
        """This manifest with partition `index`'s fields changed (`dataclasses.replace`)."""
        self.partition(index)
        parts = tuple(dataclasses.replace(p, **changes) if p.index == index else p for p in self.partitions)
        return dataclasses.replace(self, partitions=parts)

    def all_files(self) -> list[FileEntry]:
        """Every file the manifest lists: the host's, each partition's and its FINN build's."""
        return [*self.host.files.values(), *(f for p in self.partitions for f in p.all_files())]

    @property
    def boards(self) -> int:
        """The boards the chain runs on, replicas included."""
        return sum(p.replicas for p in self.partitions)
