"""What `bootgen -image X.bif -arch A -process_bitstream bin -w` does, as far as finnsplit's runner can tell.

Reads the bitstream the BIF names (relative to the working directory) and writes it, 32-bit words
byte-swapped, as <name>.bin beside it. Records each call in $FAKE_BOOTGEN_LOG; fails if
$FAKE_BOOTGEN_FAIL is set.
"""

import json
import os
import sys

args = sys.argv[1:]
with open(args[args.index("-image") + 1]) as f:
    bif = f.read()
with open(os.environ["FAKE_BOOTGEN_LOG"], "a") as f:
    f.write(json.dumps({"args": args, "cwd": os.getcwd(), "bif": bif}) + "\n")
if os.environ.get("FAKE_BOOTGEN_FAIL"):
    sys.exit("[ERROR]  : stand-in bootgen told to fail")
name = bif.split("{")[1].split("}")[0].split()[-1]
with open(name, "rb") as f:
    data = f.read()
data += bytes(-len(data) % 4)
with open(name + ".bin", "wb") as f:
    f.write(b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4)))
