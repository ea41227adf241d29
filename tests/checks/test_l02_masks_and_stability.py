"""Fixtures for the checks of lesson 02, course_lib/checks/l02_masks_and_stability.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import numpy as np

from course_lib import numpy_attention as ref
from verdicts import fixture_tests
from test_l01_attention_by_hand import naive_softmax


def causal_reversed(n):
    return ~ref.causal_mask(n)


def causal_int(n):
    return np.tril(np.ones((n, n), dtype=int))


def causal_no_diagonal(n):
    return np.tril(np.ones((n, n), dtype=bool), k=-1)


def causal_upper(n):
    return np.triu(np.ones((n, n), dtype=bool))


def padding_reversed(lengths, n):
    return ~ref.padding_mask(lengths, n)


def padding_off_by_one(lengths, n):
    return np.arange(n)[None, :] <= np.asarray(lengths)[:, None]


def padding_transposed(lengths, n):
    return ref.padding_mask(lengths, n).T


def masked_after_softmax(q, k, v, mask):
    weights = ref.softmax(ref.attention_scores(q, k)) * mask
    return weights @ v, weights


def masked_reversed(q, k, v, mask):
    return ref.scaled_dot_product_attention(q, k, v, ~mask)


def masked_nan_rows(q, k, v, mask):
    scores = np.where(mask, ref.attention_scores(q, k), -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    weights = e / e.sum(-1, keepdims=True)
    return weights @ v, weights


def masked_times_inf(q, k, v, mask):
    scores = ref.attention_scores(q, k) + (~mask) * -np.inf
    weights = naive_softmax(scores - scores.max(-1, keepdims=True))  # exercise 02's textbook softmax
    return weights @ v, weights


def masked_large_negative(q, k, v, mask):
    weights = ref.softmax(np.where(mask, ref.attention_scores(q, k), -1e9))
    return weights @ v, weights


def masked_reversed_nan_rows(q, k, v, mask):
    return masked_nan_rows(q, k, v, ~mask)


def causal_loop(n):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        mask[i, : i + 1] = True
    return mask


def causal_compare(n):
    return np.arange(n)[:, None] >= np.arange(n)[None, :]


def padding_loop(lengths, n):
    return np.array([[position < length for position in range(n)] for length in lengths], dtype=bool)


def masked_with_nan_to_num(q, k, v, mask):
    scores = np.where(mask, np.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.shape[-1]), -np.inf)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        weights = np.nan_to_num(e / e.sum(-1, keepdims=True))
    return weights @ v, weights


WRONG = [
    ("causal_mask", causal_reversed, "meaning is reversed"),
    ("causal_mask", causal_int, "expected a boolean array"),
    ("causal_mask", causal_no_diagonal, "diagonal is missing"),
    ("causal_mask", causal_upper, "upper triangle"),
    ("padding_mask", padding_reversed, "meaning is reversed"),
    ("padding_mask", padding_off_by_one, "off by one"),
    ("padding_mask", padding_transposed, "transposed"),
    ("masked_attention", masked_after_softmax, "after the softmax"),
    ("masked_attention", masked_reversed, "meaning is reversed"),
    ("masked_attention", masked_nan_rows, "gives NaN"),
    ("masked_attention", masked_times_inf, "0 * -inf"),
    ("masked_attention", masked_large_negative, "uniform weights"),
    ("masked_attention", masked_reversed_nan_rows, "meaning is reversed"),
]

RIGHT = [
    ("causal_mask", causal_loop),
    ("causal_mask", causal_compare),
    ("padding_mask", padding_loop),
    ("masked_attention", masked_with_nan_to_num),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
