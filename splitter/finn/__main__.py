"""`python -m splitter.finn BUNDLE_DIR [--partition K ...]`: build a bundle's partitions with FINN.

For FINN's docker, where finnsplit's pinned dependencies must not replace FINN's: this entry point
needs only the standard library and FINN (docs/finn.md#building-bitstreams). `--status` reports
what FINN needs and whether it is here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import FinnsplitError
from splitter.finn.runner import run_builds
from splitter.finn.status import finn_status


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the builds, print errors without a trace; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m splitter.finn", description=__doc__.splitlines()[0])
    parser.add_argument("bundle_dir", type=Path, nargs="?", help="directory written by `finnsplit build`")
    parser.add_argument("--partition", type=int, action="append", help="build only this partition (repeatable)")
    parser.add_argument("--status", action="store_true", help="report whether FINN can build here, then exit")
    args = parser.parse_args(argv)
    if args.status or args.bundle_dir is None:
        status = finn_status()
        print(f"FINN {'available' if status.available else 'unavailable: ' + status.why}")
        for field in ("finn_root", "finn_version", "vivado", "vivado_version", "vitis_hls", "bootgen"):
            print(f"  {field}: {getattr(status, field)}")
        return 0 if status.available else 1
    try:
        for bitfile in run_builds(args.bundle_dir, args.partition):
            print(bitfile)
    except FinnsplitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
