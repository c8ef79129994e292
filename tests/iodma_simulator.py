"""A simulated pair of FINN IODMAs for the finn-zynq backend's tests (there is no FPGA here).

Their register blocks and the u-dma-buf buffers are plain files that the server maps exactly as it
maps /dev/uioN and /dev/udmabufN on a board; a thread behaves like FINN's IODMAs (finn-facts §3):
on ap_start of the input DMA it checks the protocol (addresses, numReps, output DMA started first),
runs the partition with the Python executor on the unpacked input buffer, writes the FINN-packed
result, and raises ap_done/ap_idle. FINN's packing is reproduced as finn.util.data_packing does it.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from pathlib import Path

import numpy as np

from core.datatypes import DataType
from splitter.executor import execute
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


class IodmaSimulator:
    """Services two IODMA register files like FINN's IODMAs, computing with the Python executor."""

    def __init__(self, work: Path, graph: DataflowGraph, in_elems: int, out_elems: int):
        """Create the register and buffer files (all zero, both DMAs idle)."""
        self.graph = graph
        self.in_elems, self.out_elems = in_elems, out_elems
        spec_in, spec_out = graph.input, graph.output
        self.in_bytes = (spec_in.num_elements // in_elems) * ((in_elems * spec_in.dtype.bitwidth + 7) // 8)
        self.out_bytes = (spec_out.num_elements // out_elems) * ((out_elems * spec_out.dtype.bitwidth + 7) // 8)
        self.paths = {name: work / name for name in ("idma.regs", "odma.regs", "udmabuf-in", "udmabuf-out")}
        for name, size in (("idma.regs", 4096), ("odma.regs", 4096), ("udmabuf-in", self.in_bytes),
                           ("udmabuf-out", self.out_bytes)):
            self.paths[name].write_bytes(bytes(size))
        self.maps = {}
        for name, path in self.paths.items():
            with path.open("r+b") as f:
                self.maps[name] = mmap.mmap(f.fileno(), 0)
        for regs in ("idma.regs", "odma.regs"):
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
        """The finn-zynq flags that point the server at this simulator."""
        return ["--backend", "finn-zynq", "--idma", str(self.paths["idma.regs"]), "--odma",
                f"{self.paths['odma.regs']}@0", "--dmabuf-in", str(self.paths["udmabuf-in"]),
                "--dmabuf-out", str(self.paths["udmabuf-out"]), "--dmabuf-in-phys", hex(IN_PHYS),
                "--dmabuf-out-phys", hex(OUT_PHYS), "--in-word-elems", str(self.in_elems),
                "--out-word-elems", str(self.out_elems), "--done-timeout-ms", "5000"]

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

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._read("idma.regs", CTRL) & AP_START:
                time.sleep(0.0002)
                continue
            if not self._read("odma.regs", CTRL) & AP_START:
                self.violations.append("input DMA started before the output DMA")
            self._check("idma.regs", IN_PHYS)
            self._check("odma.regs", OUT_PHYS)
            for regs in ("idma.regs", "odma.regs"):
                self._write(regs, CTRL, 0)  # running: start self-clears, not idle, not done
            spec_in, spec_out = self.graph.input, self.graph.output
            folded_in = (*spec_in.shape[:-1], spec_in.shape[-1] // self.in_elems, self.in_elems)
            x = packed_bytearray_to_finnpy(bytes(self.maps["udmabuf-in"][: self.in_bytes]), spec_in.dtype, folded_in)
            y = execute(self.graph, x.reshape(spec_in.shape))
            folded_out = (*spec_out.shape[:-1], spec_out.shape[-1] // self.out_elems, self.out_elems)
            packed = finnpy_to_packed_bytearray(y.reshape(folded_out), spec_out.dtype).tobytes()
            self.maps["udmabuf-out"][: len(packed)] = packed
            self.frames += 1
            self._write("idma.regs", CTRL, AP_DONE | AP_IDLE)
            self._write("odma.regs", CTRL, AP_DONE | AP_IDLE)
