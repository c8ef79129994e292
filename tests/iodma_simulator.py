"""Simulated FINN IODMAs for the finn-zynq backend's tests (there is no FPGA here).

Their register blocks and the u-dma-buf buffers are plain files that the server maps exactly as it
maps /dev/uioN and /dev/udmabufN on a board; a thread behaves like FINN's IODMAs (finn-facts §3),
one per graph input and output: once the input DMAs are started it checks the protocol (addresses,
numReps, every output DMA started first), runs the partition with the Python executor on the
unpacked input buffers, writes the FINN-packed results, and raises ap_done/ap_idle. FINN's packing
is reproduced as finn.util.data_packing does it.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from core.datatypes import DataType
from splitter.executor import execute, execute_boundary
from splitter.graph import DataflowGraph

CTRL, ADDR_LO, ADDR_HI, NUM_REPS = 0x00, 0x10, 0x14, 0x1C
AP_START, AP_DONE, AP_IDLE = 1, 2, 4
IN_PHYS, OUT_PHYS = 0x1F000000, 0x3E000000


# ---- FINN's packing, as finn.util.data_packing.finnpy_to_packed_bytearray does it -----------------


def _word_hex_bits(word: np.ndarray, dtype: DataType, pad_to_nbits: int, reverse: bool) -> str:
    """array2hexstring: elements as bit strings, first element leftmost unless reversed, left-padded."""
    values = np.flip(word) if reverse else word
    bits = ""
    for value in values.tolist():
        if dtype.is_bipolar:
            value = (value + 1) // 2
        code = value & ((1 << dtype.bitwidth) - 1)  # BitArray(int=...) two's complement / BitArray(uint=...)
        bits += format(code, f"0{dtype.bitwidth}b")
    return "0" * (pad_to_nbits - len(bits)) + bits


def finnpy_to_packed_bytearray(values: np.ndarray, dtype: DataType, reverse_inner: bool = True,
                               reverse_endian: bool = True) -> np.ndarray:
    """Reference: pack the innermost dimension into ceil(n*b/8)-byte words (FINN's driver packing)."""
    inner = values.shape[-1]
    pad_to_nbits = (inner * dtype.bitwidth + 7) // 8 * 8
    words = values.reshape(-1, inner)
    out = []
    for word in words:
        bits = _word_hex_bits(word, dtype, pad_to_nbits, reverse_inner)
        data = int(bits, 2).to_bytes(pad_to_nbits // 8, "big")  # hexstring2npbytearray
        out.append(np.frombuffer(data[::-1] if reverse_endian else data, dtype=np.uint8))
    return np.stack(out).reshape(*values.shape[:-1], pad_to_nbits // 8)


def packed_bytearray_to_finnpy(data: bytes, dtype: DataType, folded_shape: tuple[int, ...]) -> np.ndarray:
    """Reference inverse (FINN's packed_bytearray_to_finnpy with the same flags)."""
    inner = folded_shape[-1]
    word_bytes = (inner * dtype.bitwidth + 7) // 8
    values = []
    for start in range(0, len(data), word_bytes):
        word = int.from_bytes(data[start : start + word_bytes], "little")
        for i in range(inner):
            code = (word >> (i * dtype.bitwidth)) & ((1 << dtype.bitwidth) - 1)
            if dtype.is_bipolar:
                values.append(2 * code - 1)
            elif dtype.signed and code >= 1 << (dtype.bitwidth - 1):
                values.append(code - (1 << dtype.bitwidth))
            else:
                values.append(code)
    return np.array(values, dtype=np.int64).reshape(folded_shape)


# ---- simulated IODMAs ---------------------------------------------------------------------------


def _names(prefix: str, count: int) -> list[str]:
    """One tensor: the historic single names (idma.regs); several: numbered as FINN numbers them (idma0.regs, ...)."""
    return [prefix] if count == 1 else [f"{prefix}{k}" for k in range(count)]


class IodmaSimulator:
    """Services IODMA register files like FINN's IODMAs, computing with the Python executor.

    One IODMA per graph input and per graph output, in boundary order (FINN's InsertIODMA:
    idma0, idma1, ... / odma0, ...); `in_elems` / `out_elems` give each tensor's word width (one int
    for a one-tensor side). `stuck_outputs`: output DMAs (by index) that never raise ap_done.
    """

    def __init__(self, work: Path, graph: DataflowGraph, in_elems: int | Sequence[int], out_elems: int | Sequence[int],
                 stuck_outputs: Collection[int] = ()):
        """Create the register and buffer files (all zero, every DMA idle)."""
        self.graph = graph
        self.in_specs, self.out_specs = graph.inputs, graph.outputs
        self.in_elems = [in_elems] if isinstance(in_elems, int) else list(in_elems)
        self.out_elems = [out_elems] if isinstance(out_elems, int) else list(out_elems)
        assert len(self.in_elems) == len(self.in_specs) and len(self.out_elems) == len(self.out_specs)
        self.stuck_outputs = set(stuck_outputs)
        self.idmas = [f"{n}.regs" for n in _names("idma", len(self.in_specs))]
        self.odmas = [f"{n}.regs" for n in _names("odma", len(self.out_specs))]
        self.in_bufs = _names("udmabuf-in", len(self.in_specs))
        self.out_bufs = _names("udmabuf-out", len(self.out_specs))
        self.in_phys = [IN_PHYS + k * 0x100000 for k in range(len(self.in_specs))]
        self.out_phys = [OUT_PHYS + k * 0x100000 for k in range(len(self.out_specs))]
        self.in_bytes = [_packed_bytes(s.num_elements, s.dtype, e) for s, e in zip(self.in_specs, self.in_elems,
                                                                                   strict=True)]
        self.out_bytes = [_packed_bytes(s.num_elements, s.dtype, e) for s, e in zip(self.out_specs, self.out_elems,
                                                                                    strict=True)]
        sizes = {**dict.fromkeys(self.idmas + self.odmas, 4096), **dict(zip(self.in_bufs, self.in_bytes, strict=True)),
                 **dict(zip(self.out_bufs, self.out_bytes, strict=True))}
        self.paths = {name: work / name for name in sizes}
        self.maps = {}
        for name, size in sizes.items():
            self.paths[name].write_bytes(bytes(size))
            with self.paths[name].open("r+b") as f:
                self.maps[name] = mmap.mmap(f.fileno(), 0)
        for regs in self.idmas + self.odmas:
            self._write(regs, CTRL, AP_IDLE)
        self.frames = 0
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, regs: str, offset: int) -> int:
        return struct.unpack_from("<I", self.maps[regs], offset)[0]

    def _write(self, regs: str, offset: int, value: int) -> None:
        struct.pack_into("<I", self.maps[regs], offset, value)

    def server_args(self) -> list[str]:
        """The finn-zynq flags that point the server at this simulator (comma lists: one value per tensor)."""
        def join(items: Sequence[object]) -> str:
            return ",".join(map(str, items))
        return ["--backend", "finn-zynq", "--idma", join(self.paths[n] for n in self.idmas),
                "--odma", join(f"{self.paths[n]}@0" for n in self.odmas),
                "--dmabuf-in", join(self.paths[n] for n in self.in_bufs),
                "--dmabuf-out", join(self.paths[n] for n in self.out_bufs),
                "--dmabuf-in-phys", join(map(hex, self.in_phys)), "--dmabuf-out-phys", join(map(hex, self.out_phys)),
                "--in-word-elems", join(self.in_elems), "--out-word-elems", join(self.out_elems),
                "--done-timeout-ms", "5000"]

    def start(self) -> None:
        """Start servicing the registers."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the simulator thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _check(self, regs: str, phys: int) -> None:
        address = self._read(regs, ADDR_LO) | (self._read(regs, ADDR_HI) << 32)
        if address != phys:
            self.violations.append(f"{regs}: buffer address {address:#x}, expected {phys:#x}")
        if self._read(regs, NUM_REPS) != 1:
            self.violations.append(f"{regs}: numReps {self._read(regs, NUM_REPS)}")

    def _started(self, regs: str) -> bool:
        return bool(self._read(regs, CTRL) & AP_START)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not any(self._started(r) for r in self.idmas):
                time.sleep(0.0002)
                continue
            late = [r for r in self.odmas if not self._started(r)]
            if late:
                self.violations.append(f"an input DMA started before the output DMA(s) {late}")
            deadline = time.monotonic() + 2.0  # the server starts the input DMAs one after another
            while not all(self._started(r) for r in self.idmas) and time.monotonic() < deadline:
                time.sleep(0.0002)
            idle = [r for r in self.idmas if not self._started(r)]
            if idle:
                self.violations.append(f"input DMA(s) {idle} never started")
            self._frame()

    def _frame(self) -> None:
        """One frame: check the registers, compute, write the outputs, raise ap_done."""
        for regs, phys in zip(self.idmas + self.odmas, self.in_phys + self.out_phys, strict=True):
            self._check(regs, phys)
            self._write(regs, CTRL, 0)  # running: start self-clears, not idle, not done
        xs = []
        for spec, elems, buf, size in zip(self.in_specs, self.in_elems, self.in_bufs, self.in_bytes, strict=True):
            folded = (*spec.shape[:-1], spec.shape[-1] // elems, elems)
            xs.append(packed_bytearray_to_finnpy(bytes(self.maps[buf][:size]), spec.dtype, folded).reshape(spec.shape))
        branching = len(xs) > 1 or len(self.out_specs) > 1
        ys = execute_boundary(self.graph, xs) if branching else [execute(self.graph, xs[0])]
        for spec, elems, buf, y in zip(self.out_specs, self.out_elems, self.out_bufs, ys, strict=True):
            folded = (*spec.shape[:-1], spec.shape[-1] // elems, elems)
            packed = finnpy_to_packed_bytearray(y.reshape(folded), spec.dtype).tobytes()
            self.maps[buf][: len(packed)] = packed
        self.frames += 1
        for regs in self.idmas:
            self._write(regs, CTRL, AP_DONE | AP_IDLE)
        for k, regs in enumerate(self.odmas):
            if k not in self.stuck_outputs:
                self._write(regs, CTRL, AP_DONE | AP_IDLE)


def _packed_bytes(count: int, dtype: DataType, word_elems: int) -> int:
    """Bytes of FINN's buffer: whole words of ceil(word_elems * bits / 8) bytes."""
    return (count // word_elems) * ((word_elems * dtype.bitwidth + 7) // 8)
