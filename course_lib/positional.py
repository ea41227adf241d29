"""Where is position? The reference implementations of lesson 05.

Self-attention is permutation-equivariant: shuffle the tokens and the outputs shuffle the same way, so word
order is invisible unless we add it. Three ways: sinusoidal encodings added to the embeddings ("Attention Is
All You Need"), learned position embeddings (an ``nn.Embedding`` over positions), and rotary embeddings
(RoPE, RoFormer) that rotate queries and keys so that their dot product depends only on the offset.

Lesson: notebooks/05_positions.ipynb. Tests: tests/test_positional.py.
"""
from __future__ import annotations

import torch

from course_lib.validation import require_rank

BASE = 10000.0


def sinusoidal_encoding(num_positions: int, dim: int, base: float = BASE) -> torch.Tensor:
    """(num_positions, dim): even features sin(pos / base^(2i/dim)), odd features cos(pos / base^(2i/dim)).

    Feature pair i oscillates with wavelength 2*pi*base^(2i/dim): fast for the first features, slow for the
    last, like the hands of a clock with ever slower hands.
    """
    if num_positions < 0 or dim < 1:
        raise ValueError(f"need num_positions >= 0 and dim >= 1, got num_positions={num_positions}, dim={dim}")
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    pair = torch.arange(0, dim, 2, dtype=torch.float64)  # (ceil(dim/2),): the 2i of each pair
    angles = positions / base ** (pair / dim)  # (P, ceil(dim/2))
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)  # (P, dim)
    encoding[:, 0::2] = torch.sin(angles)  # even features
    encoding[:, 1::2] = torch.cos(angles[:, : dim // 2])  # odd features (one fewer when dim is odd)
    return encoding.float()


def rope_angles(positions: torch.Tensor, dim: int, base: float = BASE) -> torch.Tensor:
    """(T, D/2): the angle position * base^(-2i/D) by which pair i of a vector at that position is rotated."""
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    return positions.to(torch.float64)[..., None] * frequencies  # (T, D/2)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = BASE) -> torch.Tensor:
    """Rotate each interleaved pair (x[2i], x[2i+1]) of x (..., T, D) by angle position * base^(-2i/D).

    Rotating a query at position m and a key at position n makes their dot product depend on m - n only
    (rotations compose: R(m)^T R(n) = R(n - m)), which is how RoPE encodes relative position.
    """
    require_rank("x", x, at_least=2)
    dim = x.shape[-1]
    if dim % 2:
        raise ValueError(f"apply_rope needs an even feature size to form pairs, got D={dim} (x shape {tuple(x.shape)})")
    positions = torch.as_tensor(positions)
    if positions.shape[-1] != x.shape[-2]:
        raise ValueError(f"positions has {positions.shape[-1]} entries but x has T={x.shape[-2]} positions")
    angles = rope_angles(positions, dim, base)  # (T, D/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each: the two coordinates of every pair
    rotated = torch.empty_like(x)  # (..., T, D)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def apply_rope_rotate_half(x: torch.Tensor, positions: torch.Tensor, base: float = BASE) -> torch.Tensor:
    """RoPE in the **rotate-half** layout of Hugging Face's Llama: feature i pairs with feature i + D/2.

    The same rotations as :func:`apply_rope`, on another pairing of the features: a model trained with one
    layout needs its query and key rows reordered to run with the other (lesson 10,
    :func:`course_lib.llama.weights.rotate_half_order`).
    """
    require_rank("x", x, at_least=2)
    if x.shape[-1] % 2:
        raise ValueError(f"apply_rope_rotate_half needs an even feature size, got D={x.shape[-1]} (x shape {tuple(x.shape)})")
    angles = rope_angles(torch.as_tensor(positions), x.shape[-1], base)  # (T, D/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each
    first, second = x.chunk(2, dim=-1)  # (..., T, D/2) each: pair i is (first[i], second[i])
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)  # (..., T, D)


def rope_score(query: torch.Tensor, key: torch.Tensor, query_position: int, key_position: int) -> torch.Tensor:
    """The dot product of a RoPE-rotated query at one position and a RoPE-rotated key at another."""
    rotated_query = apply_rope(query[None, :], torch.tensor([query_position]))[0]  # (D,)
    rotated_key = apply_rope(key[None, :], torch.tensor([key_position]))[0]  # (D,)
    return rotated_query @ rotated_key
