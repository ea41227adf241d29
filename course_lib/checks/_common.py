"""What the lesson checks share: seeded inputs, the error predicates of their hints, and what doing the job
with someone else's code means (the course's attention and torch's, for ``withholds`` and ``library``).

Used by every module of :mod:`course_lib.checks`. Tests: tests/checks/test_framework.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.checking import Case


def random(rng: np.random.Generator, *shape: int, dtype=np.float64) -> np.ndarray:
    """A numpy array of standard normal numbers (lessons 01 and 02 work in numpy)."""
    return rng.standard_normal(shape).astype(dtype)


def tensor(rng: np.random.Generator, *shape: int, dtype: str = "float32"):
    """A torch tensor of standard normal numbers, drawn from ``rng`` (so that the cases are seeded)."""
    import torch

    return torch.from_numpy(rng.standard_normal(shape)).to(getattr(torch, dtype))


def long_inputs(rng: np.random.Generator, length: int = 4096, dim: int = 16) -> tuple:
    """Query, key and value (1, 1, T, D) for a memory probe: long enough that a (T, S) tensor stands out."""
    return tuple(tensor(rng, 1, 1, length, dim) for _ in range(3))  # (B, H, T, D) each


def attention_where(query, key, value, allowed):
    """Dense attention (lesson 03) where query i sees key j iff ``allowed(rows, cols)``, rows (T, 1) and cols (S,)
    the positions, gives True; rows that see no key give 0. For simulating masks that learners get wrong."""
    import torch

    from course_lib.attention import scaled_dot_product_attention

    rows = torch.arange(query.shape[-2]).unsqueeze(-1)  # (T, 1)
    cols = torch.arange(key.shape[-2])  # (S,)
    return scaled_dot_product_attention(query, key, value, attn_mask=allowed(rows, cols))[0]  # (..., T, Dv)


def rank(case: Case, position: int = 0) -> int:
    return np.ndim(case.args[position])


# The errors that learners' code raises, recognised for the error hints ----------------------------------

def matmul_error(case: Case, error: BaseException) -> bool:
    """numpy's complaint about a matrix product whose inner sizes do not match."""
    return isinstance(error, ValueError) and ("matmul" in str(error) or "mismatch" in str(error))


def torch_shape_error(case: Case, error: BaseException) -> bool:
    """A torch error from tensors whose sizes do not fit (a matmul, an elementwise op, a broadcast)."""
    return any(text in str(error) for text in ("must match the size", "mat1 and mat2", "size of tensor"))


def in_place_error(case: Case, error: BaseException) -> bool:
    """Autograd's complaint about an in-place operation (at once, or when the gradient is computed)."""
    return isinstance(error, RuntimeError) and ("inplace" in str(error) or "in-place" in str(error))


def unpack_error(case: Case, error: BaseException) -> bool:
    """A fixed number of names for a shape of another rank: `B, T, D = query.shape` on (B, H, T, D) inputs."""
    return isinstance(error, ValueError) and "values to unpack" in str(error)


# Doing the job with someone else's code (the grader, course_lib.grading) ----------------------------------
# ``withholds``: the course's other code that computes the same result, absent from the grader's sandbox like
# the implementation itself; ``library``: names of torch functions that do the job, found in the submitted
# source (an attribute, an imported name, a keyword or a string that contains one of them earns 0).

COURSE_ATTENTION = (
    "course_lib.numpy_attention.scaled_dot_product_attention", "course_lib.attention.scaled_dot_product_attention",
    "course_lib.attention.masked_softmax", "course_lib.attention.SelfAttention",
    "course_lib.multihead.grouped_query_attention", "course_lib.multihead.MultiHeadAttention",
    "course_lib.flash.flash_attention", "course_lib.flash.flash_attention_forward",
    "course_lib.flash.FlashAttentionFunction", "course_lib.sparse.sliding_window_attention",
    "course_lib.trophy.attend")
TORCH_MODULE_ATTENTION = ("multi_head_attention", "MultiheadAttention", "Transformer")  # whole attention layers
TORCH_ATTENTION = ("scaled_dot_product", *TORCH_MODULE_ATTENTION,
                   "flash_attention_forward", "_efficient_attention")  # F.sdpa, F.mha_forward, the aten ops
