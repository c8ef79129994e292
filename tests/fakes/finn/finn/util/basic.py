"""finn.util.basic's board tables, as FINN v0.10.1 has them (shortened)."""

pynq_part_map = {"Pynq-Z1": "xc7z020clg400-1", "Pynq-Z2": "xc7z020clg400-1",
                 "Ultra96-V2": "xczu3eg-sbva484-1-i", "ZCU104": "xczu7ev-ffvc1156-2-e"}
pynq_native_port_width = {"Pynq-Z1": 64, "Pynq-Z2": 64, "Ultra96-V2": 128, "ZCU104": 128}
retired_pynq_boards = {"Pynq-Z1", "Pynq-Z2"}
part_map = {**pynq_part_map, "U250": "xcu250-figd2104-2L-e"}
