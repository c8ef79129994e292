"""Writer and reader of the program file format (docs/program-format.md)."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from core.datatypes import datatype, smallest_datatype, smallest_storage
from core.errors import ProgramFormatError
from splitter.graph import DataflowGraph, Layer, TensorSpec

MAGIC = "FINNSPLIT-PROGRAM"
VERSION = 1  # one tensor per boundary; written for every graph that does not branch
BRANCHING_VERSION = 2  # layers with several inputs or outputs (`in=a,b`, `out=a,b`: residual networks)
BOUNDARY_VERSION = 3  # several `input` / `output` lines: a partition cut inside a residual block
VERSIONS = (VERSION, BRANCHING_VERSION, BOUNDARY_VERSION)
ALIGN = 64
_PARAM_KEYS = ("weights", "thresholds", "param")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")
_INT_LIST_RE = re.compile(r"^-?\d+(,-?\d+)*$")


def _fmt(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(int(v)) for v in value)
    text = str(value)
    if not text or any(ch.isspace() for ch in text) or "=" in text:
        raise ValueError(f"attribute value {text!r} cannot be written in a program header")
    return text


def _parse_value(text: str) -> int | str | tuple[int, ...]:
    if _INT_LIST_RE.match(text):
        values = tuple(int(v) for v in text.split(","))
        return values[0] if len(values) == 1 and "," not in text else values
    return text


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"name {name!r} is not allowed in a program (use [A-Za-z0-9_.:/-])")
    return name


def _tensor_line(kind: str, spec: TensorSpec) -> str:
    return f"{kind} name={_check_name(spec.name)} shape={_fmt(spec.shape)} dtype={spec.dtype.name}"


def to_bytes(graph: DataflowGraph) -> bytes:
    """Serialise the layers of `graph` (host ops are not part of a program)."""
    blobs: list[bytes] = []
    blob_lines: list[str] = []
    layer_lines: list[str] = []
    offset = 0
    for layer, out in _format_layers(graph):
        tokens = [
            f"layer {layer.op_type}",
            f"name={_check_name(layer.name)}",
            f"in={','.join(_check_name(name) for name in layer.inputs)}",
            f"out={','.join(_check_name(name) for name in layer.outputs)}",
            f"out_shape={_fmt(out.shape)}",
            f"out_dtype={out.dtype.name}",
        ]
        tokens += [f"{key}={_fmt(value)}" for key, value in layer.attrs.items()]
        for key in _PARAM_KEYS:
            if key not in layer.params:
                continue
            array = np.ascontiguousarray(layer.params[key])
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
            blob_id = len(blobs)
            blob_lines.append(
                f"blob id={blob_id} dtype={array.dtype.name} shape={_fmt(array.shape)} "
                f"offset={offset} nbytes={len(data)} crc32={zlib.crc32(data):08x}"
            )
            blobs.append(data + b"\0" * (-len(data) % ALIGN))
            offset += len(blobs[-1])
            tokens.append(f"{key}={blob_id}")
        layer_lines.append(" ".join(tokens))
    branching = any(layer.extra_inputs or layer.extra_outputs for layer in graph.layers)
    boundary = len(graph.inputs) > 1 or len(graph.outputs) > 1
    version = BOUNDARY_VERSION if boundary else BRANCHING_VERSION if branching else VERSION
    header_lines = [
        f"{MAGIC} {version}",
        f"graph name={_check_name(graph.name)} layers={len(layer_lines)} blobs={len(blobs)}",
        *(_tensor_line("input", spec) for spec in graph.inputs),
        *(_tensor_line("output", spec) for spec in graph.outputs),
        *layer_lines,
        *blob_lines,
        "end",
    ]
    header = ("\n".join(header_lines) + "\n").encode()
    header += b"\0" * (-len(header) % ALIGN)
    return header + b"".join(blobs)


def _format_layers(graph: DataflowGraph) -> list[tuple[Layer, TensorSpec]]:
    """The layers as format version 1 states them: each with its output tensor.

    Version 1 has no XNOR mode. An MVAU with binaryXnorMode=1 (popcount p of BINARY inputs and
    weights w) is written as the same MVAU over bipolar weights 2w - 1, whose sum is p - c with
    c[j] = #{i : w[i, j] = 0}: thresholds shifted by -c, or, without activation, a ChannelwiseOp
    adding c back. The emulate backend computes exactly FINN's popcount layer that way.
    """
    out = []
    for layer in graph.layers:
        spec = graph.tensors[layer.output]
        if not int(layer.attrs.get("binaryXnorMode", 0)):
            out.append((layer, spec))
            continue
        weights = layer.params["weights"].astype(np.int64)
        zeros = (1 - weights).sum(axis=0)
        plain = Layer(layer.op_type, layer.name, layer.input, layer.output,
                      {**layer.attrs, "binaryXnorMode": 0, "weightDataType": "BIPOLAR"},
                      {"weights": (2 * weights - 1).astype(np.int8)}, layer.source)
        if not int(layer.attrs.get("noActivation", 0)):
            given = layer.params["thresholds"].astype(np.int64)
            thresholds = np.broadcast_to(given, (weights.shape[1], given.shape[1])) - zeros[:, None]
            plain.params["thresholds"] = thresholds.astype(smallest_storage(int(thresholds.min()),
                                                                            int(thresholds.max())))
            out.append((plain, spec))
            continue
        sums = smallest_datatype(int(-zeros.max()), int((weights.shape[0] - zeros).max()))
        plain.output = f"{layer.output}_bipolar_sum"
        plain.attrs.update(outputDataType=sums.name, accDataType=sums.name)
        add = Layer("ChannelwiseOp", f"{layer.name}_popcount", plain.output, layer.output,
                    {"Func": "add", "NumChannels": int(weights.shape[1]), "PE": 1, "inputDataType": sums.name,
                     "paramDataType": smallest_datatype(0, int(zeros.max())).name, "outputDataType": spec.dtype.name},
                    {"param": zeros.astype(smallest_storage(0, int(zeros.max())))}, layer.source)
        out += [(plain, TensorSpec(plain.output, spec.shape, sums)), (add, spec)]
    return out


def write(graph: DataflowGraph, path: str | Path) -> int:
    """Write `graph` as a program file; returns its size in bytes."""
    data = to_bytes(graph)
    Path(path).write_bytes(data)
    return len(data)


def _kv(tokens: list[str], where: str) -> dict[str, str]:
    pairs = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise ProgramFormatError(f"{where}: malformed token {token!r}")
        pairs[key] = value
    return pairs


def _tensor(tokens: list[str], where: str) -> TensorSpec:
    kv = _kv(tokens, where)
    try:
        return TensorSpec(kv["name"], tuple(int(d) for d in kv["shape"].split(",")), datatype(kv["dtype"]))
    except (KeyError, ValueError) as exc:
        raise ProgramFormatError(f"{where}: {exc}") from None


def from_bytes(data: bytes, name_hint: str = "program") -> DataflowGraph:
    """Parse a program; raises ProgramFormatError on any malformed or inconsistent content."""
    end = data.find(b"\nend\n")
    if end < 0:
        raise ProgramFormatError(f"{name_hint}: no 'end' line (truncated or not a program file)")
    header_len = end + len(b"\nend\n")
    data_start = header_len + (-header_len % ALIGN)
    try:
        lines = data[:end].decode().split("\n")
    except UnicodeDecodeError:
        raise ProgramFormatError(f"{name_hint}: header is not text") from None
    magic = lines[0].split()
    if len(magic) != 2 or magic[0] != MAGIC:
        raise ProgramFormatError(f"{name_hint}: not a finnsplit program (first line {lines[0][:40]!r})")
    if magic[1] not in {str(v) for v in VERSIONS}:
        known = " and ".join(str(v) for v in VERSIONS)
        raise ProgramFormatError(f"{name_hint}: program format version {magic[1]} (this reader knows {known})")
    version = int(magic[1])
    graph_kv: dict[str, str] = {}
    tensors: dict[str, TensorSpec] = {}
    in_specs: list[TensorSpec] = []
    out_specs: list[TensorSpec] = []
    raw_layers: list[tuple[str, dict[str, str]]] = []
    blobs: dict[int, np.ndarray] = {}
    for number, line in enumerate(lines[1:], start=2):
        where = f"{name_hint} line {number}"
        kind, *tokens = line.split()
        if kind == "graph":
            graph_kv = _kv(tokens, where)
        elif kind in ("input", "output"):
            specs = in_specs if kind == "input" else out_specs
            if specs and version < BOUNDARY_VERSION:
                raise ProgramFormatError(f"{where}: a second {kind} line needs program format version "
                                         f"{BOUNDARY_VERSION}")
            specs.append(_tensor(tokens, where))
        elif kind == "layer" and tokens:
            raw_layers.append((tokens[0], _kv(tokens[1:], where)))
        elif kind == "blob":
            blob_id, array = _read_blob(_kv(tokens, where), data, data_start, where)
            blobs[blob_id] = array
        else:
            raise ProgramFormatError(f"{where}: unknown line kind {kind!r}")
    if not in_specs or not out_specs or not graph_kv:
        raise ProgramFormatError(f"{name_hint}: missing graph, input or output line")
    in_spec, out_spec = in_specs[0], out_specs[0]
    tensors.update((spec.name, spec) for spec in in_specs)
    if len(tensors) != len(in_specs):
        raise ProgramFormatError(f"{name_hint}: an input tensor is named twice")
    layers = []
    previous = in_spec.name
    unread = set(tensors)  # version 2: tensors written and not yet read (each is one stream, read once)
    for op_type, kv in raw_layers:
        layer = _layer(op_type, kv, blobs, tensors, previous if version == VERSION else None, name_hint)
        if version >= BRANCHING_VERSION:
            for name in layer.inputs:
                if name not in unread:
                    raise ProgramFormatError(f"{name_hint}: layer {layer.name} reads {name!r}, which no earlier "
                                             "layer writes or another layer already reads")
                unread.discard(name)
            unread.update(layer.outputs)
        layers.append(layer)
        previous = layer.output
    if len(layers) != int(graph_kv.get("layers", -1)):
        raise ProgramFormatError(f"{name_hint}: header says {graph_kv.get('layers')} layers, found {len(layers)}")
    if version == BOUNDARY_VERSION:
        return _boundary_graph(graph_kv.get("name", name_hint), in_specs, out_specs, layers, tensors, unread,
                               name_hint)
    if version == BRANCHING_VERSION and unread != {previous}:
        raise ProgramFormatError(f"{name_hint}: tensors {sorted(unread - {previous})} are written but never read")
    if previous != out_spec.name:
        raise ProgramFormatError(f"{name_hint}: last layer writes {previous!r} but output is {out_spec.name!r}")
    return DataflowGraph(name=graph_kv.get("name", name_hint), input=in_spec, layers=layers, tensors=tensors)


def _boundary_graph(name: str, in_specs: list[TensorSpec], out_specs: list[TensorSpec], layers: list[Layer],
                    tensors: dict[str, TensorSpec], unread: set[str], name_hint: str) -> DataflowGraph:
    """Version 3: the tensors written and never read are exactly the outputs, each as its line declares."""
    names = [spec.name for spec in out_specs]
    if len(set(names)) != len(names) or unread != set(names):
        raise ProgramFormatError(f"{name_hint}: the outputs {names} are not the tensors written and never read "
                                 f"({sorted(unread)})")
    for spec in out_specs:
        if spec.name in {i.name for i in in_specs}:
            raise ProgramFormatError(f"{name_hint}: output {spec.name!r} is an input: no layer computes it")
        if tensors[spec.name] != spec:
            raise ProgramFormatError(f"{name_hint}: output {spec.name!r} is declared {spec}, its layer writes "
                                     f"{tensors[spec.name]}")
    return DataflowGraph(name=name, input=in_specs[0], layers=layers, tensors=tensors,
                         input_names=tuple(s.name for s in in_specs) if len(in_specs) > 1 else (),
                         output_names=tuple(names) if len(names) > 1 or names != [layers[-1].output] else ())


def _read_blob(kv: dict[str, str], data: bytes, data_start: int, where: str) -> tuple[int, np.ndarray]:
    try:
        blob_id, offset, nbytes = int(kv["id"]), int(kv["offset"]), int(kv["nbytes"])
        dtype = np.dtype(kv["dtype"]).newbyteorder("<")
        shape = tuple(int(d) for d in kv["shape"].split(","))
        crc = int(kv["crc32"], 16)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProgramFormatError(f"{where}: bad blob line ({exc})") from None
    start = data_start + offset
    if offset < 0 or start + nbytes > len(data):
        raise ProgramFormatError(f"{where}: blob {blob_id} lies outside the file (truncated?)")
    raw = data[start : start + nbytes]
    if zlib.crc32(raw) != crc:
        raise ProgramFormatError(f"{where}: blob {blob_id} CRC mismatch (corrupted file)")
    if int(np.prod(shape)) * dtype.itemsize != nbytes:
        raise ProgramFormatError(f"{where}: blob {blob_id} shape {shape} does not match {nbytes} bytes")
    return blob_id, np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _layer(op_type: str, kv: dict[str, str], blobs: dict[int, np.ndarray], tensors: dict[str, TensorSpec],
           previous: str | None, name_hint: str) -> Layer:
    """One layer line; `previous`: the tensor it must read (version 1), None for version 2's lists."""
    try:
        name, srcs, dsts = kv.pop("name"), kv.pop("in").split(","), kv.pop("out").split(",")
        out_shape = tuple(int(d) for d in kv.pop("out_shape").split(","))
        out_dtype = datatype(kv.pop("out_dtype"))
    except (KeyError, ValueError) as exc:
        raise ProgramFormatError(f"{name_hint}: layer {kv.get('name', '?')}: missing or bad field {exc}") from None
    src, dst = srcs[0], dsts[0]
    if previous is not None and (src != previous or len(srcs) != 1 or len(dsts) != 1):
        raise ProgramFormatError(f"{name_hint}: layer {name} reads {','.join(srcs)!r}, expected {previous!r}")
    if not all(srcs) or not all(dsts):
        raise ProgramFormatError(f"{name_hint}: layer {name}: empty tensor name in in= or out=")
    params = {}
    for key in _PARAM_KEYS:
        if key in kv:
            blob_id = int(kv.pop(key))
            if blob_id not in blobs:
                raise ProgramFormatError(f"{name_hint}: layer {name} refers to unknown blob {blob_id}")
            params[key] = blobs[blob_id]
    for out in dsts:
        tensors[out] = TensorSpec(out, out_shape, out_dtype)
    attrs = {key: _parse_value(value) for key, value in kv.items()}
    return Layer(op_type=op_type, name=name, input=src, output=dst, attrs=attrs, params=params,
                 extra_inputs=tuple(srcs[1:]), extra_outputs=tuple(dsts[1:]))


def read(path: str | Path) -> DataflowGraph:
    """Read a program file."""
    path = Path(path)
    return from_bytes(path.read_bytes(), name_hint=path.name)
