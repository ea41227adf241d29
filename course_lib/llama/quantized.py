"""The two 4- and 8-bit formats of lesson 10's GGUF file, decoded by hand: how 135M weights fit in 93 MB.

Both cut each row of a weight matrix into blocks of 32 numbers and store, per block, a float16 scale and small
integers (llama.cpp's ``ggml-quants``):

* **Q8_0** (34 bytes per block): a scale ``d``, then 32 signed bytes ``q``; the weights are ``d * q``.
* **Q4_1** (20 bytes per block): a scale ``d`` and a minimum ``m``, then 16 bytes holding 32 unsigned 4-bit
  numbers ``q`` in 0..15; the weights are ``d * q + m``. Byte j holds weight j in its low 4 bits and weight
  j + 16 in its high 4 bits.

So Q4_1 spends 20 bytes on 32 weights, 5 bits each, where float32 spends 32. tests/test_llama.py proves both
decoders equal the ``gguf`` package's, which :mod:`course_lib.llama.weights` uses for everything else.

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

import numpy as np

BLOCK = 32  # weights per block, in both formats


def _blocks(raw: np.ndarray, block_bytes: int) -> np.ndarray:
    """The raw bytes (rows, n_bytes) of a quantized matrix as (rows, blocks, block_bytes)."""
    raw = np.asarray(raw, dtype=np.uint8)
    if raw.ndim != 2 or raw.shape[1] % block_bytes:
        raise ValueError(f"expected rows of whole {block_bytes}-byte blocks, got bytes of shape {raw.shape}")
    return raw.reshape(raw.shape[0], -1, block_bytes)  # (rows, blocks, block_bytes)


def dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    """float32 (rows, 32 * blocks) from Q8_0 bytes (rows, 34 * blocks): each weight is d * q."""
    blocks = _blocks(raw, 2 + BLOCK)  # (rows, blocks, 34)
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)  # (rows, blocks, 1): d
    q = blocks[..., 2:].view(np.int8).astype(np.float32)  # (rows, blocks, 32)
    return (scale * q).reshape(raw.shape[0], -1)  # (rows, in)


def dequantize_q4_1(raw: np.ndarray) -> np.ndarray:
    """float32 (rows, 32 * blocks) from Q4_1 bytes (rows, 20 * blocks): each weight is d * q + m."""
    blocks = _blocks(raw, 4 + BLOCK // 2)  # (rows, blocks, 20)
    scale = blocks[..., 0:2].copy().view(np.float16).astype(np.float32)  # (rows, blocks, 1): d
    minimum = blocks[..., 2:4].copy().view(np.float16).astype(np.float32)  # (rows, blocks, 1): m
    packed = blocks[..., 4:]  # (rows, blocks, 16): two 4-bit numbers per byte
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.float32)  # (rows, blocks, 32)
    return (scale * q + minimum).reshape(raw.shape[0], -1)  # (rows, in)


DEQUANTIZERS = {"Q8_0": dequantize_q8_0, "Q4_1": dequantize_q4_1}
