"""AXI-lite addresses of FINN's IODMAs, read from a build's Vivado hardware handoff (.hwh).

FINN's Zynq shell (MakeZYNQProject) names the DMA reading the partition's input idma0 and the one
writing its output odma0 (idma1, ... for further inputs or external weights). Each has one AXI-lite
slave, s_axi_control_0, which FINN's TCL maps from 0x40000000 (Zynq-7000, M_AXI_GP0) or 0xA0000000
(UltraScale+, M_AXI_HPM0_FPD) with a range from the slave's address width (at least 4 KiB). Vivado
writes the result into the processing system's MEMORYMAP, as PYNQ's hwh_parser reads it:

    <MEMRANGE ADDRESSBLOCK="Reg0" BASEVALUE="0xA0000000" HIGHVALUE="0xA0000FFF" INSTANCE="idma0"
              MASTERBUSINTERFACE="M_AXI_HPM0_FPD" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control_0" .../>

An IODMA's own MEMORYMAP lists what it reaches (DDR, INSTANCE of the PS, MEMTYPE MEMORY): not matched.

Which DMA moves which graph input or output is not in the numbers (docs/finn.md#multi-tensor-boundaries):
FINN's driver states it (`dma_order`).
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from splitter.finn.errors import HwhError

IODMA_INSTANCE = re.compile(r"[io]dma\d+")
REQUIRED = ("idma0", "odma0")  # every FINN Zynq build has these two


def iodma_ranges(hwh: Path) -> dict[str, dict[str, object]]:
    """{"idma0": {"base": "0x40000000", "range": 4096}, "odma0": ...}: each IODMA's AXI-lite window."""
    try:
        root = ET.parse(hwh).getroot()
    except FileNotFoundError:
        raise HwhError(hwh, "missing: FINN's build left no hardware handoff beside the bitfile") from None
    except (OSError, ET.ParseError) as exc:
        raise HwhError(hwh, f"not readable XML: {exc}") from None
    if root.tag != "EDKSYSTEM":
        raise HwhError(hwh, f"not a Vivado hardware handoff (root element <{root.tag}>, expected <EDKSYSTEM>)")
    ranges: dict[str, dict[str, object]] = {}
    for memrange in root.iter("MEMRANGE"):
        instance = memrange.get("INSTANCE", "")
        if not IODMA_INSTANCE.fullmatch(instance) or memrange.get("MEMTYPE") != "REGISTER":
            continue
        window = _window(hwh, memrange, instance)
        if ranges.setdefault(instance, window) != window:
            raise HwhError(hwh, f"{instance} is mapped twice: {ranges[instance]} and {window}")
    missing = [name for name in REQUIRED if name not in ranges]
    if missing:
        raise HwhError(
            hwh,
            f"no AXI-lite address range for {', '.join(missing)} (found: "
            f"{', '.join(sorted(ranges)) or 'none'}); is this the .hwh of a FINN Zynq build?",
        )
    return dict(sorted(ranges.items()))


def _window(hwh: Path, memrange: ET.Element, instance: str) -> dict[str, object]:
    """Base address (hex string, as the .hwh writes it) and range in bytes of one MEMRANGE."""
    try:
        base, high = int(memrange.get("BASEVALUE", ""), 16), int(memrange.get("HIGHVALUE", ""), 16)
    except ValueError:
        raise HwhError(
            hwh,
            f"{instance}: BASEVALUE/HIGHVALUE {memrange.get('BASEVALUE')!r}/"
            f"{memrange.get('HIGHVALUE')!r} are not hex addresses",
        ) from None
    if high < base:
        raise HwhError(hwh, f"{instance}: HIGHVALUE 0x{high:X} below BASEVALUE 0x{base:X}")
    return {"base": f"0x{base:08X}", "range": high - base + 1}


def dma_order(driver: Path) -> dict[str, list[str]]:
    """{"inputs": ["idma1", "idma0"], "outputs": [...]}: the DMA of each graph input and output, in graph order,
    as FINN's make_pynq_driver writes them into its driver's io_shape_dict (`input_dma_name`, `output_dma_name`)."""
    try:
        text = driver.read_text()
    except OSError as exc:
        raise HwhError(driver, f"FINN's driver is not readable ({exc}); was the pynq_driver output built?") from None
    out: dict[str, list[str]] = {}
    for side, key in (("inputs", "input_dma_name"), ("outputs", "output_dma_name")):
        found = re.search(rf'"{key}"\s*:\s*(\[[^\]]*\])', text)
        try:
            names = ast.literal_eval(found.group(1)) if found else None
        except (ValueError, SyntaxError):
            names = None
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and IODMA_INSTANCE.fullmatch(n) for n in names):
            raise HwhError(driver, f"no list of DMA names for {key!r} in FINN's io_shape_dict")
        out[side] = names
    return out
