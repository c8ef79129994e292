"""Loading a partition's bitstream through the kernel's FPGA manager (sysfs), without PYNQ.

The sequence (shared/reference/deploy-facts.md): write 0 to `flags` (a full, not partial,
bitstream), copy the .bit.bin into the firmware directory, write its file name to `firmware`, and
read `state`, which is "operating" once the PL is programmed. The kernel programs the PL inside the
write to `firmware` and fails that write on error; `state` is still polled briefly after it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import FinnsplitError

OPERATING = "operating"
PREFIX = "finnsplit-"  # firmware files this agent owns (older ones are removed after a load)


class FpgaError(FinnsplitError):
    """The bitstream could not be loaded: no FPGA manager, a missing file, or a state other than operating."""


@dataclass(frozen=True)
class FpgaManager:
    """One fpga_manager device (e.g. /sys/class/fpga_manager/fpga0) and the firmware directory."""

    root: Path
    firmware_dir: Path
    timeout_s: float = 10.0

    def state(self) -> str:
        """The manager's `state` ("operating", "write error", "unknown", ...)."""
        try:
            return (self.root / "state").read_text().strip()
        except OSError as exc:
            raise FpgaError(f"no FPGA manager at {self.root} ({exc.strerror}; is CONFIG_FPGA_MGR enabled "
                            "and the fpga_manager path in the agent config right?)") from None

    def load(self, bitbin: Path, name: str) -> None:
        """Program the PL with `bitbin` (a .bit.bin) as firmware file `name`; raises FpgaError."""
        self.state()  # fails early, naming the path, where there is no FPGA manager
        if not bitbin.is_file():
            raise FpgaError(f"bitstream {bitbin} is missing")
        if not name.startswith(PREFIX) or "/" in name:
            raise FpgaError(f"firmware name {name!r} must start with {PREFIX!r} and contain no '/'")
        self._write("flags", "0")
        target = self.firmware_dir / name
        scratch = self.firmware_dir / f".{name}.partial"
        try:
            self.firmware_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bitbin, scratch)
            os.replace(scratch, target)  # the loader never reads a half-copied file
        except OSError as exc:
            raise FpgaError(f"cannot copy {bitbin} to {target}: {exc.strerror}") from None
        self._write("firmware", name)
        self._wait_operating(name)
        self._remove_others(name)

    def _write(self, attribute: str, value: str) -> None:
        path = self.root / attribute
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, value.encode())  # sysfs takes one write per value
            finally:
                os.close(fd)
        except OSError as exc:
            raise FpgaError(f"writing {value!r} to {path} failed: {exc.strerror} (state: {self.state()})") from None

    def _wait_operating(self, name: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while (state := self.state()) != OPERATING:
            if state.endswith("error") or time.monotonic() > deadline:  # "write init error", ...
                raise FpgaError(f"{self.root}: state is {state!r}, not {OPERATING!r}, after loading {name}")
            time.sleep(0.02)

    def _remove_others(self, keep: str) -> None:
        for path in self.firmware_dir.glob(f"{PREFIX}*.bit.bin"):
            if path.name != keep:
                path.unlink(missing_ok=True)


def firmware_name(bundle_id: str, partition: int) -> str:
    """The firmware file name of a bundle's partition (unique per bundle, so loads never collide)."""
    return f"{PREFIX}{bundle_id}-p{partition}.bit.bin"
