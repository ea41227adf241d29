"""Errors at the door: shape checks shared by every lesson's implementations (numpy arrays and torch tensors).

Each raises a ``ValueError`` that names the argument, the shape it got and the shape it needs, so a learner
never meets an index error from deep inside a matrix product.
"""
from __future__ import annotations

import numbers

from typing import Sequence


def _shape(x) -> tuple[int, ...]:
    return tuple(int(n) for n in x.shape)


def require_whole_numbers(smallest: int = 1, **counts) -> None:
    """Raise unless every count is a whole number (an int or a numpy integer, not a bool) >= ``smallest``, naming the
    first that is not."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < smallest:
            wanted = "a positive whole number" if smallest == 1 else f"a whole number >= {smallest}"
            raise ValueError(f"{name} must be {wanted}, got {value!r}")


def require_rank(name: str, x, at_least: int = 1, at_most: int | None = None) -> None:
    """Raise unless ``x`` has between ``at_least`` and ``at_most`` axes."""
    rank = len(_shape(x))
    if rank < at_least or (at_most is not None and rank > at_most):
        wanted = f"{at_least}" if at_most == at_least else f"at least {at_least}"
        if at_most is not None and at_most != at_least:
            wanted = f"{at_least} to {at_most}"
        raise ValueError(f"{name} must have {wanted} dimensions, got shape {_shape(x)} ({rank} dimensions)")


def require_matching_features(name_a: str, a, name_b: str, b) -> None:
    """Raise unless the last axes agree (queries and keys must share their feature size D)."""
    if _shape(a)[-1] != _shape(b)[-1]:
        raise ValueError(
            f"{name_a} have feature size {_shape(a)[-1]} but {name_b} have {_shape(b)[-1]}: "
            f"{name_a} (..., T, D) and {name_b} (..., S, D) must share D; got {name_a} {_shape(a)}, "
            f"{name_b} {_shape(b)}"
        )


def require_attention_inputs(query, key, value) -> None:
    """Raise unless query (..., T, D), key (..., S, D) and value (..., S, Dv) fit together for attention."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        require_rank(name, x, at_least=2)
    require_matching_features("query", query, "key", key)
    if _shape(key)[-2] != _shape(value)[-2]:
        raise ValueError(
            f"key has {_shape(key)[-2]} positions but value has {_shape(value)[-2]}: key (..., S, D) and value "
            f"(..., S, Dv) must share S; got key {_shape(key)}, value {_shape(value)}"
        )


def broadcast_shapes(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """numpy/torch broadcasting of two shapes, or None when they do not broadcast."""
    result = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        result.append(max(x, y) if 1 not in (x, y) else x * y)
    return tuple(reversed(result))


def require_mask_shape(mask, scores_shape: Sequence[int], name: str = "mask") -> None:
    """Raise unless ``mask`` broadcasts to the scores' shape (..., T, S) without changing it."""
    scores_shape = tuple(int(n) for n in scores_shape)
    if broadcast_shapes(_shape(mask), scores_shape) != scores_shape:
        raise ValueError(
            f"{name} of shape {_shape(mask)} does not broadcast to the attention scores' shape {scores_shape} "
            f"(..., T queries, S keys); a (T, S) mask, or one with size-1 axes such as "
            f"{_size_one_example(scores_shape)}, is expected"
        )


def _size_one_example(scores_shape: Sequence[int]) -> str:
    """A mask shape that fits scores of this rank: (B, 1, S) for (B, T, S), (B, 1, 1, S) for (B, H, T, S)..."""
    if len(scores_shape) <= 2:
        return "(1, S)"
    return "(" + ", ".join(["B"] + ["1"] * (len(scores_shape) - 2) + ["S"]) + ")" + (
        f" for {len(scores_shape)}-D scores" if len(scores_shape) > 3 else "")
