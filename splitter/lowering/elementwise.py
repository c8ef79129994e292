"""Monotone elementwise ops between an integer accumulator and a Quant node, and thresholds.

A dataflow layer with an activation computes, per output channel c, an integer accumulator `acc`
whose real value is acc * alpha[c] + beta[c]. The QONNX model then applies an epilogue of elementwise
ops (Mul, Div, Add, Sub, BatchNormalization, Relu) and a Quant node. That composite is monotone in
acc, so it equals a multi-threshold function: output = ActVal + #{t : acc >= T[c, t]}. We find each
threshold by binary search over the integers, evaluating the epilogue in float32 op by op as qonnx's
executor does (onnxruntime per node, numpy for Quant), so ties and rounding follow the reference:
Quant's ROUND is numpy's round-half-to-even, applied after clipping (docs/lowering.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splitter.lowering.onnx_view import QuantParams, resolve_rounding

ELEMENTWISE_OPS = ("Mul", "Div", "Add", "Sub", "BatchNormalization", "Relu")


@dataclass(frozen=True)
class ElementwiseOp:
    """One elementwise op with per-channel float32 constants of shape (C,)."""

    op_type: str
    consts: tuple[np.ndarray, ...] = ()
    const_first: bool = False  # Sub/Div with the constant as the first operand
    epsilon: float = 1e-5  # BatchNormalization only

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to float32 x of shape (C, ...) (constants broadcast along axis 0)."""
        shaped = [c.astype(np.float32).reshape((-1,) + (1,) * (x.ndim - 1)) for c in self.consts]
        if self.op_type == "Relu":
            return np.maximum(x, np.float32(0))
        if self.op_type == "BatchNormalization":
            # onnxruntime's CPU kernel folds BN into one scale and bias per channel, in float32.
            gamma, beta, mean, var = shaped
            new_scale = (np.float32(1) / np.sqrt(var + np.float32(self.epsilon))) * gamma
            new_bias = beta - mean * new_scale
            return x * new_scale + new_bias
        (c,) = shaped
        a, b = (c, x) if self.const_first else (x, c)
        if self.op_type == "Mul":
            return a * b
        if self.op_type == "Div":
            return a / b
        if self.op_type == "Add":
            return a + b
        if self.op_type == "Sub":
            return a - b
        raise ValueError(f"not an elementwise epilogue op: {self.op_type}")


def apply_ops(ops: list[ElementwiseOp], x: np.ndarray) -> np.ndarray:
    """Apply `ops` in order to a float32 array."""
    x = x.astype(np.float32)
    for op in ops:
        x = op.apply(x).astype(np.float32)
    return x


def quant_int(x: np.ndarray, quant: QuantParams, scale: np.ndarray) -> np.ndarray:
    """Integer output of a Quant node (before rescaling), mirroring qonnx's int_quant op by op.

    `scale` is the Quant scale already broadcastable against `x`. A BipolarQuant gives the BINARY
    code of its output: 1 where x >= 0 (output +scale), else 0 (-scale), as qonnx's binary_quant.
    """
    if quant.bipolar:
        return np.where(x.astype(np.float32) >= 0, 1, 0).astype(np.int64)
    y = x.astype(np.float32) / scale.astype(np.float32) + quant.zeropt.reshape(()).astype(np.float32)
    low, high = quant.int_range
    y = np.clip(y, np.float32(low), np.float32(high))
    return resolve_rounding(quant.rounding_mode)(y).astype(np.int64)


@dataclass(frozen=True)
class Activation:
    """The function from accumulator to output integer of one layer."""

    alpha: np.ndarray  # (C,) float64: real value of one accumulator step
    beta: np.ndarray  # (C,) float64: real offset (e.g. from input mean subtraction)
    ops: list[ElementwiseOp]
    quant: QuantParams
    quant_scale: np.ndarray  # (C,) float32: the Quant node's scale per output channel

    @property
    def channels(self) -> int:
        """Number of output channels."""
        return self.alpha.shape[0]

    def evaluate(self, acc: np.ndarray) -> np.ndarray:
        """Output integers for integer accumulators `acc` of shape (C, ...)."""
        shape = (-1,) + (1,) * (acc.ndim - 1)
        real = acc.astype(np.float64) * self.alpha.reshape(shape) + self.beta.reshape(shape)
        return quant_int(apply_ops(self.ops, real.astype(np.float32)), self.quant, self.quant_scale.reshape(shape))


def derive_thresholds(act: Activation, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Thresholds (C, T), per-channel sign (+1/-1) and ActVal for accumulators in [lo, hi].

    A channel whose function decreases gets sign -1: the caller negates that channel's weights, so
    thresholds apply to -acc (as FINN's streamlining factors out negative scales).
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    ends = act.evaluate(np.stack([lo, hi], axis=1))
    sign = np.where(ends[:, 0] > ends[:, 1], -1, 1)
    lo, hi = np.where(sign > 0, lo, -hi), np.where(sign > 0, hi, -lo)
    low, high = act.quant.int_range
    levels = np.arange(low + 1, high + 1, dtype=np.int64)  # output >= level once acc >= threshold
    left = np.repeat(lo[:, None], len(levels), axis=1)
    right = np.repeat(hi[:, None] + 1, len(levels), axis=1)  # hi + 1 means "never reached"
    sign_col = sign[:, None]
    while np.any(left < right):
        mid = (left + right) // 2
        reached = act.evaluate(mid * sign_col) >= levels[None, :]
        right = np.where(reached, mid, right)
        left = np.where(reached, left, mid + 1)
    return left, sign.astype(np.int64), low
