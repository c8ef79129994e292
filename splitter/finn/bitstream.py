"""The bitstream a Zynq board loads: FINN's .bit turned into a .bit.bin by bootgen (docs/finn.md).

Linux's fpga_manager (sysfs firmware loading, fpgautil, overlays) takes a raw bitstream without the
.bit header (on Zynq-7000 also byte-swapped). bootgen's `-process_bitstream bin` writes that next to
the .bit its BIF names, called <name>.bit.bin. The `-arch` follows the part: zynq for Zynq-7000,
zynqmp for Zynq UltraScale+ (whose BIF must also say the bitstream goes to the PL).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from splitter.finn.errors import BootgenError, FinnConfigError
from splitter.finn.status import BOOTGEN

BITBIN_SUFFIX = ".bin"  # bootgen appends it to the bitstream's name: finn-accel.bit -> finn-accel.bit.bin
BIF_SUFFIX = ".bif"  # the BIF is written next to the bitstream: finn-accel.bif
ARCHS = (("xc7z", "zynq"), ("xczu", "zynqmp"), ("xck", "zynqmp"))  # (part prefix, bootgen -arch)
TIMEOUT_S = 600  # bootgen takes seconds; a hang must not stall a multi-partition build


def bootgen_arch(fpga_part: str) -> str:
    """bootgen's -arch for a part: zynq (xc7z...) or zynqmp (xczu..., xck26...)."""
    for prefix, arch in ARCHS:
        if fpga_part.lower().startswith(prefix):
            return arch
    raise FinnConfigError(
        f"part {fpga_part}: not a Zynq-7000 (xc7z) or Zynq UltraScale+ (xczu, xck) part; bootgen has no -arch for it"
    )


def bif_text(bitstream_name: str, arch: str) -> str:
    """A BIF holding only the bitstream (a file name: BIF paths end at whitespace)."""
    destination = "[destination_device = pl] " if arch == "zynqmp" else ""
    return f"all:\n{{\n    {destination}{bitstream_name}\n}}\n"


def make_bitbin(bitfile: Path, fpga_part: str) -> Path:
    """Run bootgen on FINN's `bitfile` for `fpga_part`; return the .bit.bin it wrote beside it."""
    bitfile = Path(bitfile).resolve()
    arch = bootgen_arch(fpga_part)
    bootgen = shutil.which(BOOTGEN)
    if bootgen is None:
        raise BootgenError(bitfile, f"{BOOTGEN} not on PATH (it comes with Vivado: source its settings64.sh)")
    if any(c.isspace() for c in bitfile.name):
        raise BootgenError(bitfile, "a bitstream name with whitespace cannot be written into a BIF")
    bif = bitfile.with_suffix(BIF_SUFFIX)
    bif.write_text(bif_text(bitfile.name, arch))
    bitbin = bitfile.with_name(bitfile.name + BITBIN_SUFFIX)
    bitbin.unlink(missing_ok=True)  # one left by an earlier build must not pass for this build's
    # Relative names in a BIF resolve against the working directory; -w overwrites earlier outputs.
    cmd = [bootgen, "-image", bif.name, "-arch", arch, "-process_bitstream", "bin", "-w"]
    try:
        done = subprocess.run(cmd, cwd=bitfile.parent, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BootgenError(bitfile, f"`{' '.join(cmd)}` failed: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join(line for line in (done.stdout + done.stderr).splitlines() if line.strip())[-600:]
        raise BootgenError(bitfile, f"`{' '.join(cmd)}` exited with {done.returncode}: {tail}")
    if not bitbin.is_file() or bitbin.stat().st_size == 0:
        raise BootgenError(bitfile, f"`{' '.join(cmd)}` succeeded but left no {bitbin.name} beside the .bit")
    return bitbin
