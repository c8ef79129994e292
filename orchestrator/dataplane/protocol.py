"""The finnsplit wire protocol (docs/protocol.md, version 2): frames, the handshake, tensor payloads.

The C++ server (cpp_server/src/Frame.h, Hello.h) implements the same format. Tensor payloads are
packed by core.packing, the one Python implementation of the dense wire packing. Link
authentication (the AUTH exchange and the per-frame tags) is orchestrator/dataplane/link_auth.py; the frame
functions here take its session to tag and verify frames.
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np

from core.datatypes import DataType, datatype
from core.errors import FinnsplitError
from core.packing import pack, packed_size, unpack
from splitter.graph import TensorSpec

MAGIC = b"FSPL"
VERSION = 2
FLAG_TAGGED = 0x0001  # a 16-byte authentication tag follows the payload
TAG_BYTES = 16
HEADER = struct.Struct("<4sBBHQII")  # magic, version, type, flags, seq, payload length, checksum
CHECKSUMMED_HEADER_BYTES = 20
MAX_CONTROL_PAYLOAD = 4096
PACKING = "dense"


class FrameType(IntEnum):
    """Frame types; the numbers are on the wire."""

    HELLO = 1
    TENSOR = 2
    ERROR = 3
    BYE = 4
    AUTH = 5


class Tagger(Protocol):
    """What tags and verifies the frames of an authenticated link (link_auth.LinkSession)."""

    def tag_outgoing(self, header: bytes, payload: bytes) -> bytes:
        """The tag of the next frame this end sends."""

    def verify_incoming(self, header: bytes, payload: bytes, tag: bytes) -> bool:
        """Whether `tag` is the peer's tag of its next frame."""


class ProtocolError(FinnsplitError):
    """A peer sent something that is not a valid frame, or the connection broke mid-frame."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection cleanly between frames."""


class HandshakeError(ProtocolError):
    """The peer refused the handshake (or this side refused the peer's); the message names both specs."""


class PeerError(ProtocolError):
    """The peer sent an ERROR frame; the message is the peer's."""


@dataclass(frozen=True)
class WireSpec:
    """What flows over one link: datatype and NHWC shape, packed densely."""

    dtype: DataType
    shape: tuple[int, ...]

    @classmethod
    def of(cls, spec: TensorSpec | WireSpec) -> WireSpec:
        """The wire spec of a dataflow tensor."""
        return spec if isinstance(spec, WireSpec) else cls(spec.dtype, tuple(int(d) for d in spec.shape))

    @classmethod
    def parse(cls, text: str) -> WireSpec:
        """Parse "UINT4:1,56,56,128" (the server's --spec-in/--spec-out form)."""
        name, _, dims = text.partition(":")
        return cls(datatype(name), tuple(int(d) for d in dims.split(",")))

    @property
    def num_elements(self) -> int:
        """Values in one frame."""
        return int(np.prod(self.shape))

    @property
    def packed_size(self) -> int:
        """Bytes of one densely packed frame."""
        return packed_size(self.num_elements, self.dtype)

    def flag(self) -> str:
        """The --spec-in/--spec-out form, "UINT4:1,56,56,128"."""
        return f"{self.dtype.name}:{','.join(map(str, self.shape))}"

    def __str__(self) -> str:
        return f"{self.dtype.name} {'x'.join(map(str, self.shape))}"


@dataclass(frozen=True)
class Frame:
    """One received frame."""

    type: FrameType
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Hello:
    """A handshake message: the role and name of a peer and the spec it sends or expects."""

    role: str
    node: str
    spec: WireSpec
    packing: str = PACKING
    auth: str = ""  # "hmac-sha256": the sender authenticates the link
    nonce: str = ""  # the sender's nonce, 32 hex digits (with auth)
    order: str = ""  # "any": the sender merges replicated stages, its frames come in any sequence order

    def encode(self) -> bytes:
        """The HELLO payload."""
        node = "".join(ch if ch.isprintable() and not ch.isspace() and ch != "=" else "_" for ch in self.node)[:64]
        dims = ",".join(map(str, self.spec.shape))
        order = f" order={self.order}" if self.order else ""
        auth = f" auth={self.auth} nonce={self.nonce}" if self.auth else ""
        return (f"FSPL-HELLO role={self.role} node={node or '-'} dtype={self.spec.dtype.name} "
                f"shape={dims} packing={self.packing}{order}{auth}").encode()

    @classmethod
    def parse(cls, payload: bytes) -> Hello:
        """Parse a HELLO payload; raises ProtocolError if it is malformed."""
        try:
            tokens = payload.decode("ascii").split()
        except UnicodeDecodeError:
            raise ProtocolError("HELLO payload is not ASCII") from None
        if not tokens or tokens[0] != "FSPL-HELLO":
            raise ProtocolError("HELLO payload does not start with FSPL-HELLO")
        fields = dict(token.partition("=")[::2] for token in tokens[1:])
        try:
            spec = WireSpec(datatype(fields["dtype"]), tuple(int(d) for d in fields["shape"].split(",")))
            order = fields.get("order", "")
            if order not in ("", "seq", "any"):
                raise ValueError(f"order must be seq or any, not {order[:20]!r}")
            return cls(fields["role"], fields.get("node", "-"), spec, fields["packing"], fields.get("auth", ""),
                       fields.get("nonce", ""), order)
        except (KeyError, ValueError, FinnsplitError) as exc:
            raise ProtocolError(f"malformed HELLO {payload[:200]!r}: {exc}") from None


def encode_frame(ftype: int, seq: int, payload: bytes = b"", *, session: Tagger | None = None, magic: bytes = MAGIC,
                 version: int = VERSION, flags: int | None = None, length: int | None = None,
                 checksum: int | None = None) -> bytes:
    """One frame as bytes, tagged when `session` is given; the other overrides build malformed frames in tests."""
    size = len(payload) if length is None else length
    flags = (FLAG_TAGGED if session is not None else 0) if flags is None else flags
    head = HEADER.pack(magic, version, int(ftype), flags, seq, size, 0)[:CHECKSUMMED_HEADER_BYTES]
    covered = b"" if flags & FLAG_TAGGED else payload  # a tagged frame's payload is protected by its tag
    crc = zlib.crc32(covered, zlib.crc32(head)) if checksum is None else checksum
    header = head + struct.pack("<I", crc)
    if session is None:
        return header + payload
    return header + payload + session.tag_outgoing(header, payload)


def _recv_exact(sock: socket.socket, size: int, what: str) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = sock.recv(min(size - len(chunks), 1 << 20))
        except TimeoutError:
            raise ProtocolError(f"timed out reading {what}") from None
        except OSError as exc:
            raise ProtocolError(f"connection lost reading {what}: {exc}") from None
        if not chunk:
            if not chunks and what == "frame header":
                raise ConnectionClosed("peer closed the connection")
            raise ProtocolError(f"peer closed the connection after {len(chunks)} of {size} bytes of {what}")
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket, tensor_bytes: int, session: Tagger | None = None) -> Frame:
    """Read and validate one frame (a TENSOR must carry exactly `tensor_bytes`); with `session`, its tag too."""
    raw = _recv_exact(sock, HEADER.size, "frame header")
    magic, version, ftype, flags, seq, length, checksum = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r} (not a finnsplit frame)")
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (this client speaks {VERSION})")
    if ftype not in FrameType._value2member_map_ or flags & ~FLAG_TAGGED:
        raise ProtocolError(f"unknown frame type {ftype} or flags {flags:#x}")
    if bool(flags & FLAG_TAGGED) != (session is not None):
        raise ProtocolError("a tagged frame on a link that is not authenticated" if session is None
                            else "an untagged frame on an authenticated link")
    ftype = FrameType(ftype)
    if ftype == FrameType.TENSOR and length != tensor_bytes:
        raise ProtocolError(f"TENSOR frame of {length} bytes, the agreed spec packs to {tensor_bytes}")
    if ftype != FrameType.TENSOR and length > MAX_CONTROL_PAYLOAD:
        raise ProtocolError(f"{ftype.name} frame of {length} bytes (limit {MAX_CONTROL_PAYLOAD})")
    payload = _recv_exact(sock, length, f"{ftype.name} payload")
    tag = _recv_exact(sock, TAG_BYTES, f"{ftype.name} tag") if session is not None else b""
    if zlib.crc32(b"" if flags & FLAG_TAGGED else payload, zlib.crc32(raw[:CHECKSUMMED_HEADER_BYTES])) != checksum:
        raise ProtocolError(f"checksum mismatch in {ftype.name} frame seq {seq}")
    if session is not None and not session.verify_incoming(raw, payload, tag):
        raise ProtocolError(f"authentication tag mismatch in {ftype.name} frame seq {seq} (not from the peer)")
    return Frame(ftype, seq, payload)


def expect_hello(frame: Frame) -> Hello:
    """The Hello in `frame`; raises PeerError for an ERROR frame, ProtocolError for anything else."""
    if frame.type == FrameType.ERROR:
        raise PeerError(frame.payload.decode(errors="replace"))
    if frame.type != FrameType.HELLO:
        raise ProtocolError(f"expected HELLO, got {frame.type.name}")
    return Hello.parse(frame.payload)


def mismatch(peer: Hello, expected: WireSpec, self_role: str) -> str:
    """"" if the peer's spec is `expected`, else a message naming both (same text as the server)."""
    verb, self_verb = ("sends", "expects") if peer.role == "sender" else ("expects", "sends")
    if peer.packing != PACKING:
        return f"peer {verb} packing '{peer.packing}' but this {self_role} speaks only dense packing"
    if peer.spec == expected:
        return ""
    return f"peer {verb} {peer.spec} but this {self_role} {self_verb} {expected}"


def encode_tensor(values: np.ndarray, spec: WireSpec) -> bytes:
    """Pack one frame of `values` (shape spec.shape or any shape with as many elements)."""
    values = np.asarray(values)
    if values.size != spec.num_elements:
        raise ValueError(f"tensor of {values.size} values does not match {spec}")
    return pack(values, spec.dtype)


def decode_tensor(payload: bytes, spec: WireSpec) -> np.ndarray:
    """Unpack one frame into an int64 array of spec.shape."""
    return unpack(payload, spec.dtype, spec.shape)
