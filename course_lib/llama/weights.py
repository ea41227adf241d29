"""Reading a GGUF file: the model's shape (:class:`Config`) and its weights, dequantized to float32.

GGUF (llama.cpp's format) stores each weight matrix as ``(out, in)`` rows, most of them quantized to 4 bits
in blocks of 32 (Q4_1: a scale and a minimum per block). ``gguf.quants.dequantize`` turns them back into
float32. The names follow llama.cpp: ``blk.3.attn_q.weight`` is layer 3's query projection.

One thing to know about the query and key rows: Hugging Face's Llama stores each head's features in the
**rotate-half** layout (feature i pairs with feature i + D/2), and llama.cpp's converter reorders every head's
rows so that the pairs sit side by side, (2i, 2i + 1): the **interleaved** layout of lesson 05's
``apply_rope``. So lesson 05's RoPE applies to these weights as they are. :func:`rotate_half_order` undoes
the reordering, for comparison with Hugging Face's convention (tests/test_llama.py proves both agree).

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib.llama.quantized import DEQUANTIZERS


@dataclass(frozen=True)
class Config:
    """The architecture, read from the GGUF's metadata (SmolLM2-135M: 30 layers, 576 wide, 9 heads, 3 KV heads)."""

    num_layers: int
    hidden_size: int
    ffn_size: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    context_length: int
    rope_base: float
    norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        raise ValueError(f"the GGUF file has no metadata field {key!r}: is it a Llama model?")
    return field.contents()


def read_config(reader) -> Config:
    architecture = _field(reader, "general.architecture")
    if architecture != "llama":
        raise ValueError(f"lesson 10 runs Llama models; this GGUF holds a {architecture!r} model")
    return Config(
        num_layers=int(_field(reader, "llama.block_count")),
        hidden_size=int(_field(reader, "llama.embedding_length")),
        ffn_size=int(_field(reader, "llama.feed_forward_length")),
        num_heads=int(_field(reader, "llama.attention.head_count")),
        num_kv_heads=int(_field(reader, "llama.attention.head_count_kv")),
        vocab_size=int(_field(reader, "llama.vocab_size")),
        context_length=int(_field(reader, "llama.context_length")),
        rope_base=float(_field(reader, "llama.rope.freq_base")),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
    )


def read_tensors(path: Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Some tensors of a GGUF file, by name, as float32 (without decoding the rest)."""
    from gguf import GGUFReader

    found = {tensor.name: _decoded(tensor) for tensor in GGUFReader(str(path)).tensors if tensor.name in names}
    missing = [name for name in names if name not in found]
    if missing:
        raise KeyError(f"the GGUF file {path} has no tensor {', '.join(map(repr, missing))}")
    return found


def _decoded(tensor) -> torch.Tensor:
    from gguf.quants import dequantize

    decode = DEQUANTIZERS.get(tensor.tensor_type.name)
    values = decode(tensor.data) if decode else dequantize(tensor.data, tensor.tensor_type)  # (out, in) or (n,)
    return torch.from_numpy(np.array(values, dtype=np.float32))  # a copy: the file is read-only


def read_weights(reader) -> dict[str, torch.Tensor]:
    """Every tensor of the file, by its GGUF name, as float32: matrices (out, in), vectors (n,). Q4_1 and Q8_0
    (all of SmolLM2's matrices) are decoded by :mod:`course_lib.llama.quantized`, anything else by ``gguf``."""
    return {tensor.name: _decoded(tensor) for tensor in reader.tensors}


def read(path: Path) -> tuple[Config, dict[str, torch.Tensor], object]:
    """The config, the float32 weights and the reader (whose metadata holds the tokenizer) of a GGUF file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return read_config(reader), read_weights(reader), reader


def rotate_half_order(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Query or key rows (H * D, in) from llama.cpp's interleaved pairs back to Hugging Face's rotate-half order.

    Within each head, llama.cpp's row 2i + k (k = 0, 1) is Hugging Face's row i + k * D/2.
    """
    rows, columns = weight.shape
    head_dim = rows // num_heads
    per_head = weight.reshape(num_heads, head_dim // 2, 2, columns)  # (H, D/2, 2, in): pair i, member k
    return per_head.transpose(1, 2).reshape(rows, columns)  # (H * D, in): all first members, then all second
