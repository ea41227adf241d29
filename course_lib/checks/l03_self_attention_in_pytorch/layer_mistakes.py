"""The mistakes of lesson 03's SelfAttention check, as code: the layer with one mistake each. The sdpa check's
are in :mod:`course_lib.checks.l03_self_attention_in_pytorch.mistakes`; both are triggered by the WRONG fixtures of
tests/checks/test_l03_self_attention_in_pytorch.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.checking import like
from course_lib.checks.l03_self_attention_in_pytorch.mistakes import (_attend, _bool_mask_reversed, _softmax_over_queries,
                                                                  _unscaled)


def _layer(attend, weights, x, mask):
    """SelfAttention with the given projection weights and ``attend`` as its attention: the layer mistakes' core."""
    queries, keys, values = (x @ weights[name].T for name in ("query", "key", "value"))  # (B, T, D) each
    return attend(queries, keys, values, attn_mask=mask)[0]  # (B, T, D)


def _scaled_by_d_model(d_model, d_head, weights, x, mask):
    """SelfAttention dividing the scores by √d_model: the right layer with its queries scaled by √(d_head/d_model)."""
    from course_lib.attention import SelfAttention

    rescaled = {**weights, "query": weights["query"] * (d_head / d_model) ** 0.5}  # scores · √d_head/√d_model
    return calling.run_module(SelfAttention, d_model, d_head, rescaled, x, mask)


def _layer_unscaled(d_model, d_head, weights, x, mask):
    """SelfAttention without the 1/√d_head."""
    return _layer(_unscaled, weights, x, mask)


def _layer_softmax_over_queries(d_model, d_head, weights, x, mask):
    """SelfAttention whose softmax runs over dim=-2 (the queries)."""
    return _layer(_softmax_over_queries, weights, x, mask)


def _layer_mask_ignored(d_model, d_head, weights, x, mask):
    """SelfAttention that never passes attn_mask on."""
    return _layer(_attend, weights, x, None)


def _mask_ignored_on_a_masked_case(case, got, expected) -> bool:
    """A case with a mask answered as if there were none."""
    return case.args[4] is not None and like(_layer_mask_ignored)(case, got, expected)


def _layer_mask_reversed(d_model, d_head, weights, x, mask):
    """SelfAttention with True read as 'hide'."""
    return _layer(_bool_mask_reversed, weights, x, mask)


def _multiplied_by_a_layer_weight(case, error) -> bool:
    """x @ layer.weight: torch's "(B·T x d_model and d_head x d_model)", the weight stored as (out, in)."""
    import re

    found = re.search(r"cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", str(error))
    d_model, d_head = case.args[0], case.args[1]
    return bool(found) and tuple(int(n) for n in found.groups()[1:]) == (d_model, d_head, d_model)


def _layer_queries_and_keys_swapped(d_model, d_head, weights, x, mask):
    """SelfAttention whose scores are keys @ queries^T: the query and key projections' roles swapped."""
    swapped = {**weights, "query": weights["key"], "key": weights["query"]}
    return _layer(_attend, swapped, x, mask)


def _layer_keys_from_query(d_model, d_head, weights, x, mask):
    """SelfAttention whose keys come from self.query (a copy-paste slip): scores are queries @ queries^T."""
    return _layer(_attend, {**weights, "key": weights["query"]}, x, mask)


def _layer_values_from_key(d_model, d_head, weights, x, mask):
    """SelfAttention whose values come from self.key."""
    return _layer(_attend, {**weights, "value": weights["key"]}, x, mask)
