"""The accumulator width FINN gives an XNOR-popcount MVAU, which its LUT estimate reads.

FINN's step_minimize_bit_width (MVAU.minimize_accumulator_width) re-derives accDataType before
the estimate step. For binaryXnorMode it turns the BINARY weights w back into 2w - 1 and takes
calculate_matvec_accumulator_range over BINARY inputs: [-max_j #{w_ij = 0}, max_j #{w_ij = 1}],
not the popcount's [0, MW]; thresholds are clipped into that range, so it is the final one. With
runtime-writeable weights (URAM) it takes the worst case of the weight datatype instead: [0, MW].
The lowering's accDataType is the popcount's; the cost model uses this one where FINN does.
"""

from __future__ import annotations

import numpy as np

from core.datatypes import DataType, smallest_datatype
from splitter.graph import Layer


def finn_xnor_accumulator(layer: Layer, runtime_writeable: bool) -> DataType:
    """accDataType of an XNOR MVAU after FINN's step_minimize_bit_width."""
    weights = np.asarray(layer.params["weights"], dtype=np.int64)
    if runtime_writeable:
        return smallest_datatype(0, weights.shape[0])
    ones = weights.sum(axis=0)
    return smallest_datatype(-int((weights.shape[0] - ones).max()), int(ones.max()))
