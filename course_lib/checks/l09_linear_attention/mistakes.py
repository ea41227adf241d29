"""The mistakes of lesson 09's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l09_linear_attention`; triggered by the WRONG
fixtures of tests/checks/test_l09_linear_attention.py.
"""
from __future__ import annotations

from functools import partial

from course_lib.checking import like
from course_lib.checks._common import in_place_error, unpack_error


def _numpy_on_grad_error(case, error: BaseException) -> bool:
    """torch's refusal to hand a tensor that requires grad to numpy (x.numpy(), np.asarray(x), np.exp(x))."""
    return isinstance(error, RuntimeError) and "numpy()" in str(error) and "requires grad" in str(error)


_STAY_IN_TORCH_HINT = ("Stay in torch, as the exercise says: numpy cannot follow autograd, so features computed in "
                       "numpy give training no gradient (and .detach().numpy() only hides that). Write it with torch "
                       "operations on the tensor itself (F.elu, torch.where, torch.exp, @).")


# The feature maps learners write instead of φ(x) = elu(x) + 1.
def _elu_without_plus_one(x):
    import torch.nn.functional as F

    return F.elu(x)  # (...): down to -1 below zero


def _elu_plus_one(x):
    return _elu_without_plus_one(x) + 1  # (...): φ, right


def _elu_of_x_plus_one(x):
    return _elu_without_plus_one(x + 1)  # (...): the + 1 inside


def _relu_plus_one(x):
    return x.clamp(min=0) + 1  # (...): 1 below zero, not exp(x)


def _exp_everywhere(x):
    return x.exp()  # (...): exponential above zero too


def _x_plus_one(x):
    return x + 1  # (...): negative below -1


# Linear attention with one mistake each, in the quadratic form; one that both checks diagnose takes is_causal.
def _causal_mask(query, is_causal=True):
    """(T, T): 1 where key j <= query i, else 0; or 1, every pair, when not ``is_causal``."""
    return query.new_ones(query.shape[-2], query.shape[-2]).tril() if is_causal else 1


def _kernel_form(query_features, key_features, value, allowed=1):
    """φ(Q)φ(K)ᵀV with each row divided by its sum; the pairs where ``allowed`` (T, S) is 0 weigh nothing."""
    similarities = query_features @ key_features.transpose(-2, -1) * allowed  # (..., T, S)
    return similarities @ value / similarities.sum(dim=-1, keepdim=True)  # (..., T, Dv)


def _unnormalised(query, key, value, is_causal=False):
    similarities = _elu_plus_one(query) @ _elu_plus_one(key).transpose(-2, -1)  # (..., T, S)
    return (similarities * _causal_mask(query, is_causal)) @ value  # (..., T, Dv): never divided by the weights' sum


def _elu_without_plus_one_attention(query, key, value, is_causal=False):
    return _kernel_form(_elu_without_plus_one(query), _elu_without_plus_one(key), value, _causal_mask(query, is_causal))


def _raw_queries_and_keys(query, key, value, is_causal=False):
    return _kernel_form(query, key, value, _causal_mask(query, is_causal))  # q·k, no φ


def _queries_scaled(query, key, value, is_causal=False):
    query_features = _elu_plus_one(query / query.shape[-1] ** 0.5)  # (..., T, D): softmax's 1/√D kept
    return _kernel_form(query_features, _elu_plus_one(key), value, _causal_mask(query, is_causal))


def _values_through_features(query, key, value, is_causal=False):
    return _kernel_form(_elu_plus_one(query), _elu_plus_one(key), _elu_plus_one(value), _causal_mask(query, is_causal))


def _exp_features(query, key, value, is_causal=False):
    return _kernel_form(query.exp(), key.exp(), value, _causal_mask(query, is_causal))  # φ = exp, feature by feature


def _normaliser_from_raw_inputs(query, key, value):
    query_features, key_features = _elu_plus_one(query), _elu_plus_one(key)  # (..., T, D), (..., S, D)
    numerators = query_features @ (key_features.transpose(-2, -1) @ value)  # (..., T, Dv): right
    return numerators / (query @ key.sum(dim=-2, keepdim=True).transpose(-2, -1))  # (..., T, 1): q·Σk, no φ


def _one_normaliser_for_all(query, key, value):
    query_features, key_features = _elu_plus_one(query), _elu_plus_one(key)  # (..., T, D), (..., S, D)
    numerators = query_features @ (key_features.transpose(-2, -1) @ value)  # (..., T, Dv): right
    return numerators / key_features.sum(dim=(-2, -1), keepdim=True)  # every feature of every key: no query in it


def _normalised_over_queries(query, key, value):
    similarities = _elu_plus_one(query) @ _elu_plus_one(key).transpose(-2, -1)  # (..., T, S)
    return similarities / similarities.sum(dim=-2, keepdim=True) @ value  # (..., T, Dv): columns sum to 1


def _causal_sees_every_key(query, key, value):
    return _kernel_form(_elu_plus_one(query), _elu_plus_one(key), value)  # no triangle


def _causal_without_own_key(query, key, value):
    return _kernel_form(_elu_plus_one(query), _elu_plus_one(key), value, _causal_mask(query).tril(-1))  # j < i


def _causal_future_keys(query, key, value):
    return _kernel_form(_elu_plus_one(query), _elu_plus_one(key), value, _causal_mask(query).T)  # keys j >= i


def _causal_normaliser_over_all_keys(query, key, value):
    similarities = _elu_plus_one(query) @ _elu_plus_one(key).transpose(-2, -1)  # (..., T, T)
    return (similarities * _causal_mask(query)) @ value / similarities.sum(dim=-1, keepdim=True)  # z: all keys


def _cumulative_form(query, key, value, state_axis=-3, normaliser_axis=-2):
    """Causal linear attention by cumulative sums, along the axes a mistake chooses (right: -3 and -2)."""
    query_features, key_features = _elu_plus_one(query), _elu_plus_one(key)  # (..., T, D) each
    states = (key_features.unsqueeze(-1) * value.unsqueeze(-2)).cumsum(dim=state_axis)  # (..., T, D, Dv)
    normalisers = key_features.cumsum(dim=normaliser_axis)  # (..., T, D)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)  # (..., T, Dv)
    return numerators / (query_features * normalisers).sum(dim=-1, keepdim=True)  # (..., T, Dv)


def _causal_on_self_attention(case, got, expected) -> bool:
    """On a case with as many queries as keys, ``got`` is the causal version (cumulative sums, the right axes)."""
    return case.args[0].shape[-2] == case.args[1].shape[-2] and like(_cumulative_form)(case, got, expected)


def _cumsum_along_wrong_axis(case, got, expected) -> bool:
    """The running sums of U_i or z_i (or both) run along another axis than the positions: batch, head, D or Dv."""
    rank = case.args[0].dim()  # (..., T, D): the outer products have one axis more
    axes = [(state, normaliser) for state in range(-rank - 1, 0) for normaliser in range(-rank, 0)]
    return any(like(partial(_cumulative_form, state_axis=state, normaliser_axis=normaliser))(case, got, expected)
               for state, normaliser in axes if (state, normaliser) != (-3, -2))


_IN_PLACE_HINT = ("Autograd keeps tensors it needs for the gradient, and an in-place update (`U += ...`, "
                  "`U[...] = ...`, `.add_(...)`) overwrites them: write `U = U + ...` (a new tensor each step) "
                  "instead of `U += ...`, and avoid in-place operations on tensors that need gradients.")


_ANY_LEADING_AXES_HINT = ("The inputs may have any leading batch and head axes, (..., T, D): do not unpack the "
                          "whole shape into a fixed number of names (T, D = query.shape[-2:] works for every "
                          "rank), and index positions with ..., e.g. x[..., t, :].")


_RANK_AND_IN_PLACE_HINTS = ((unpack_error, _ANY_LEADING_AXES_HINT), (in_place_error, _IN_PLACE_HINT),
                            (_numpy_on_grad_error, _STAY_IN_TORCH_HINT))


def _softmax_attention(query, key, value, is_causal=False):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]  # (..., T, Dv): exp(q·k/√D)


# Positive random features φ(x)_i = exp(ω_iᵀx - ‖x‖²/2)/√M, each with one mistake.
def _squared_norms(x):
    return (x * x).sum(dim=-1, keepdim=True)  # (..., T, 1): ‖x‖², right


def _features_without_norm(x, omega):
    return (x @ omega.T).exp() / omega.shape[0] ** 0.5  # (..., T, M): no exp(-‖x‖²/2)


def _features_minus_whole_square(x, omega):
    return (x @ omega.T - _squared_norms(x)).exp() / omega.shape[0] ** 0.5  # (..., T, M)


def _features_minus_half_norm(x, omega):
    return (x @ omega.T - _squared_norms(x).sqrt() / 2).exp() / omega.shape[0] ** 0.5  # (..., T, M)


def _features_undivided(x, omega):
    return (x @ omega.T - _squared_norms(x) / 2).exp()  # (..., T, M)


def _features_divided_by_m(x, omega):
    return (x @ omega.T - _squared_norms(x) / 2).exp() / omega.shape[0]  # (..., T, M)


def _features_divided_by_sqrt_d(x, omega):
    return (x @ omega.T - _squared_norms(x) / 2).exp() / x.shape[-1] ** 0.5  # (..., T, M)


def _features_omega_not_transposed(x, omega):
    return (x @ omega - _squared_norms(x) / 2).exp() / omega.shape[0] ** 0.5  # (..., T, M): omega's columns


def _features_norm_over_positions(x, omega):
    return (x @ omega.T - (x * x).sum(dim=-2, keepdim=True) / 2).exp() / omega.shape[0] ** 0.5  # (..., T, M) if M = D


def _features_minus_row_max(x, omega):
    logits = x @ omega.T - _squared_norms(x) / 2  # (..., T, M)
    return (logits - logits.amax(dim=-1, keepdim=True)).exp() / omega.shape[0] ** 0.5  # (..., T, M): per-row factor


def _features_minus_shared_max(x, omega):
    logits = x @ omega.T - _squared_norms(x) / 2  # (..., T, M)
    return (logits - logits.amax(dim=(-2, -1), keepdim=True)).exp() / omega.shape[0] ** 0.5  # (..., T, M): one factor


def _stabilised_by_a_max(case, got, expected) -> bool:
    return like(_features_minus_row_max)(case, got, expected) or like(_features_minus_shared_max)(case, got, expected)


def _scaled_per_row(case, got, expected) -> bool:
    """``got`` is the right φ times a positive factor that depends only on the row (on x, not on ω_i): the same
    ratio got / expected across each row's M features."""
    import numpy as np

    from course_lib.checking import to_numpy

    try:
        ratio = to_numpy(got).astype(np.float64) / to_numpy(expected).astype(np.float64)  # (..., T, M)
    except Exception:
        return False
    if ratio.shape != to_numpy(expected).shape or ratio.ndim < 1 or not np.isfinite(ratio).all() or (ratio <= 0).any():
        return False
    return bool(np.allclose(ratio, ratio[..., :1], rtol=1e-4, atol=0))


_STABILISED = ("this is Performer's stabilised form (google-research's softmax_kernel_transformation subtracts the "
               "max of each query's row inside exp, and one max shared by all keys); this exercise returns the "
               "unscaled φ(x)_i = exp(ω_iᵀx − ‖x‖²/2)/√M, because φ(q)·φ(k) must estimate exp(q·k) itself (the "
               "lesson compares the two), and a factor exp(-max) per row cancels only in each query's normalised "
               "output: on keys it would reweight every key. Stabilise where the factor cancels, in the attention "
               "(course_lib.linear.performer_attention: each query's own max, one max for all keys).")
