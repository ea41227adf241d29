"""The checks of lesson 09, linear attention: the elu + 1 feature map, linear and causal linear attention, and
positive random features.

Lesson: notebooks/09_linear_attention.ipynb, its exercise solutions/09_linear_attention.ipynb.
Tests: tests/checks/test_l09_linear_attention.py.
"""
from __future__ import annotations

from functools import partial

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import long_inputs, tensor, torch_shape_error
from course_lib.measure import largest_intermediate
from course_lib.checks.l09_linear_attention.mistakes import (
    _RANK_AND_IN_PLACE_HINTS, _STABILISED, _STAY_IN_TORCH_HINT, _causal_future_keys,
    _causal_normaliser_over_all_keys, _causal_on_self_attention, _causal_sees_every_key, _causal_without_own_key,
    _cumsum_along_wrong_axis, _elu_of_x_plus_one, _elu_without_plus_one, _elu_without_plus_one_attention,
    _exp_everywhere, _exp_features, _features_divided_by_m, _features_divided_by_sqrt_d, _features_minus_half_norm,
    _features_minus_whole_square, _features_norm_over_positions, _features_omega_not_transposed,
    _features_undivided, _features_without_norm, _normalised_over_queries, _normaliser_from_raw_inputs,
    _numpy_on_grad_error, _one_normaliser_for_all, _queries_scaled, _raw_queries_and_keys, _relu_plus_one,
    _scaled_per_row, _softmax_attention, _stabilised_by_a_max, _unnormalised, _values_through_features, _x_plus_one,
)


def _elu_feature_map_cases(rng):
    import torch

    return [
        Case("x = [-3, -1, -0.5, 0, 0.5, 2] (both sides of zero)", (torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0]),)),
        Case("x of shape (2, 4, 8)", (tensor(rng, 2, 4, 8),)),
        Case("very negative and large values [-200, -50, 20, 80] in float64 (features stay positive)",
             (torch.tensor([-200.0, -50.0, 20.0, 80.0], dtype=torch.float64),)),
        Case("float64 x of shape (3, 5)", (tensor(rng, 3, 5, dtype="float64"),)),
        Case("x (3, 4) that requires gradients (stay in torch: training backpropagates through φ)",
             (tensor(rng, 3, 4).requires_grad_(),)),
        Case("x = [-30, -1, 0.5, 100] that requires gradients (the gradient must stay finite where exp(x) would "
             "overflow float32)", (torch.tensor([-30.0, -1.0, 0.5, 100.0]).requires_grad_(),)),
    ]


check_elu_feature_map = Check(
    name="elu_feature_map",
    points=1,
    make_cases=_elu_feature_map_cases,
    implementation="course_lib.linear.elu_feature_map",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the + 1 is missing: elu(x) is negative below zero (down to -1), and φ must be positive so that "
                "every weight φ(q)·φ(k) is. Return F.elu(x) + 1.", like(_elu_without_plus_one)),
        Mistake("the + 1 belongs outside elu: elu(x) + 1, not elu(x + 1). elu(x + 1) is exp(x + 1) - 1 below "
                "x = -1, negative down to -1, so φ would not be positive. Return F.elu(x) + 1.",
                like(_elu_of_x_plus_one)),
        Mistake("that is relu(x) + 1: below zero elu(x) = exp(x) - 1, not 0, so φ(x) = exp(x) there, not 1. "
                "Use F.elu(x) + 1.", like(_relu_plus_one)),
        Mistake("exp(x) is φ only below zero; above zero elu(x) + 1 = x + 1, which grows linearly, not "
                "exponentially. Use F.elu(x) + 1.", like(_exp_everywhere)),
        Mistake("x + 1 is negative below -1: elu bends it up to exp(x) - 1 there. Use F.elu(x) + 1.",
                like(_x_plus_one)),
    ),
    error_hints=((_numpy_on_grad_error, _STAY_IN_TORCH_HINT),),
    what="φ(x) = x + 1 above zero and exp(x) below: positive everywhere, any shape and dtype, differentiable.",
)


GROWTH = 4  # the long case is measured again with T (and S) this many times longer


def _differentiable_and_long_cases(rng):
    """The last three cases of both linear checks (drawn first): autograd, and how the largest tensor built inside
    grows with T. The gradients are those of arguments 0, 1, 2 (query, key, value): value's flows back only
    through the state U, so a detached U shows on the first case by name."""
    length = 256  # with D = Dv = 4: a (T, D, Dv) running state is 16x smaller than the (T, T) weights
    long = (tensor(rng, 1, 2, length, 4), tensor(rng, 1, 2, length, 4), tensor(rng, 1, 2, length, 4))
    query, key, value = (tensor(rng, 2, 5, 4) for _ in range(3))
    grad = tuple(tensor(rng, 2, 5, 4).requires_grad_() for _ in range(3))
    return [Case("query and value (arguments 0 and 2) require gradients: value's reaches it only through the state "
                 "U = Σ_j φ(k_j)v_jᵀ, so U must stay connected to autograd",
                 (query.requires_grad_(), key, value.requires_grad_())),
            Case("query, key and value (arguments 0, 1, 2) require gradients: key's reaches it through both U and "
                 "the normaliser z = Σ_j φ(k_j), so neither may be detached", grad),
            Case(f"query, key and value (1, 2, {length}, 4), measured again at T = {GROWTH * length}: what your "
                 f"function builds inside must grow like T, not like the (T, T) weights", long, watch_memory=True)]


def _linear_cases(rng):
    last = _differentiable_and_long_cases(rng)
    return [
        Case("query, key and value (2, 5, 4)", (tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4))),
        Case("heads: (2, 3, 6, 8), value dim 2",
             (tensor(rng, 2, 3, 6, 8), tensor(rng, 2, 3, 6, 8), tensor(rng, 2, 3, 6, 2))),
        Case("cross-attention: T = 3 queries, S = 7 keys, value dim 5",
             (tensor(rng, 1, 3, 4), tensor(rng, 1, 7, 4), tensor(rng, 1, 7, 5))),
        Case("float64 without batch axes: query (4, 6), key and value (9, 6)",
             (tensor(rng, 4, 6, dtype="float64"), tensor(rng, 9, 6, dtype="float64"), tensor(rng, 9, 6, dtype="float64"))),
        *last,
    ]


def _causal_linear_cases(rng):
    last = _differentiable_and_long_cases(rng)
    return [
        Case("query and key (2, 6, 4), value (2, 6, 3), where query 0 sees only key 0",
             (tensor(rng, 2, 6, 4), tensor(rng, 2, 6, 4), tensor(rng, 2, 6, 3))),
        Case("heads: (2, 3, 7, 8), value dim 2",
             (tensor(rng, 2, 3, 7, 8), tensor(rng, 2, 3, 7, 8), tensor(rng, 2, 3, 7, 2))),
        Case("float64 without batch axes: (5, 4)",
             (tensor(rng, 5, 4, dtype="float64"), tensor(rng, 5, 4, dtype="float64"), tensor(rng, 5, 4, dtype="float64"))),
        *last,
    ]


def _long_case(rng):
    return Case("T = S = 4096 (peak memory measured)", long_inputs(rng))


def _linear_extra(advice):
    """The further check of the long case: does the largest tensor built inside grow like T (a state, fixed-size
    chunks) or like T·S (the weights, the masked form, chunks as long as the sequence)? Measured at the case's
    length and at GROWTH times it, by shape, not by an element count at one length: a fixed chunk of 256 is the
    whole sequence at T = 256 but a small tile at T = 4096."""

    def check(function, case, got) -> str | None:
        import torch

        if not case.watch_memory:
            return None
        longer = tuple(torch.cat([tensor] * GROWTH, dim=-2) for tensor in case.args)  # (..., 4T, D) each
        sizes = [largest_intermediate(function, *args) for args in (case.args, longer)]
        growth = sizes[1] / max(sizes[0], 1)
        if growth <= GROWTH * 2:  # linear: 4x; quadratic: 16x
            return None
        length, weights = case.args[0].shape[-2], case.args[0].shape[:-1].numel() * case.args[1].shape[-2]
        return (f"the largest tensor built inside your function grows {growth:.0f}× when T grows {GROWTH}× "
                f"({sizes[0]} numbers at T = {length}, {sizes[1]} at T = {GROWTH * length}), like the "
                f"(B, H, T, S) weights ({weights} and {GROWTH ** 2 * weights} numbers): it grows like T², not T. "
                f"{advice}")

    return check


check_linear_attention = Check(
    name="linear_attention",
    points=2,
    make_cases=_linear_cases,
    implementation="course_lib.linear.linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("this is the causal version: here every query sees every key.", _causal_on_self_attention),
        Mistake("this is softmax attention (exp(q·k/√D)); linear attention weighs key j by φ(q_i)·φ(k_j) with "
                "φ = elu + 1 (your elu_feature_map).", like(_softmax_attention)),
        Mistake("the outputs are not normalised: divide each query's φ(q_i)ᵀ(φ(K)ᵀV) by φ(q_i)·Σ_j φ(k_j), so that "
                "its weights sum to 1.", like(_unnormalised)),
        Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
                "weights and their sum.", like(_elu_without_plus_one_attention)),
        Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products; with raw "
                "q·k the weights can be negative.", like(_raw_queries_and_keys)),
        Mistake("the weights are normalised over the queries: divide by the sum over the keys j, "
                "φ(q_i)·Σ_j φ(k_j), one number per query.", like(_normalised_over_queries)),
        Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are (the 1/√D of "
                "softmax attention has no place here).", like(_queries_scaled)),
        Mistake("φ belongs to the queries and keys only: the values are averaged as they are, o_i = Σ_j w_ij v_j, "
                "so U = φ(K)ᵀV, not φ(K)ᵀφ(V).", like(_values_through_features)),
        Mistake("φ(x) = exp(x), feature by feature, is not this exercise's φ, and exp(q)·exp(k) = Σ_d exp(q_d + k_d) "
                "is not softmax's exp(q·k) either: use φ = elu + 1 (your elu_feature_map).", like(_exp_features)),
        Mistake("the normaliser uses the raw queries and keys: divide by φ(q_i)·Σ_j φ(k_j), with the same features as "
                "the numerator, so that each query's weights sum to 1.", like(_normaliser_from_raw_inputs)),
        Mistake("the normaliser is one number for all queries (every feature of every key summed): each query divides "
                "by its own φ(q_i)·Σ_j φ(k_j), a dot product with the summed key features.", like(_one_normaliser_for_all)),
    ),
    error_hints=(
        (torch_shape_error,
         "Transpose only the last two axes: key_features.transpose(-2, -1) @ value is (..., D, Dv), and the "
         "normaliser φ(K).sum(dim=-2) sums over the keys."),
        *_RANK_AND_IN_PLACE_HINTS,
    ),
    extra=_linear_extra("Compute right to left: the (..., D, Dv) summary U = φ(K)ᵀV and the normaliser Σ_j φ(k_j) "
                        "first, then let the queries read them; never φ(Q)φ(K)ᵀ."),
    what="Equal to the normalised φ(Q)φ(K)ᵀV with φ = elu + 1 (cross-attention, heads, float64), "
         "differentiable in every input, and computed right to left: no (T, S) matrix.",
    withholds=("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
               "course_lib.linear.LinearSelfAttention"),
    memory_probe=_long_case,
    memory_advice=("Compute right to left: the (..., D, Dv) summary φ(K)ᵀV and the normaliser first; never "
                   "φ(Q)φ(K)ᵀ."),
)


check_causal_linear_attention = Check(
    name="causal_linear_attention",
    points=3,
    make_cases=_causal_linear_cases,
    implementation="course_lib.linear.causal_linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("every query sees every key: query i may only use keys 0..i. Accumulate the sums along the "
                "positions (torch.cumsum(..., dim=-3) for the (..., T, D, Dv) states, dim=-2 for z) or in a loop.",
                like(_causal_sees_every_key)),
        Mistake("off by one: query i sees keys 0..i, its own key included. Add φ(k_i)v_iᵀ and φ(k_i) to the "
                "state (U, z) before reading it.", like(_causal_without_own_key)),
        Mistake("query i sees future keys: your sums run over keys i..T-1 (a reversed cumulative sum, or the "
                "upper triangle), but query i may only use keys 0..i. Accumulate from the first position on.",
                like(_causal_future_keys)),
        Mistake("the cumulative sum must run along the positions, the axis of length T: dim=-3 for the "
                "(..., T, D, Dv) outer products φ(k_j)v_jᵀ, dim=-2 for the (..., T, D) features φ(k_j). A fixed "
                "dim such as 1 is a head or feature axis for other ranks.", _cumsum_along_wrong_axis),
        Mistake("the normaliser sums over all keys: z_i must be a running sum too, Σ_{j<=i} φ(k_j) "
                "(torch.cumsum of φ(K) along the positions).", like(_causal_normaliser_over_all_keys)),
        Mistake("this is causal softmax attention; linear attention weighs key j by φ(q_i)·φ(k_j) with "
                "φ = elu + 1 (your elu_feature_map).", like(partial(_softmax_attention, is_causal=True))),
        Mistake("the outputs are not normalised: divide φ(q_i)ᵀU_i by φ(q_i)·z_i.",
                like(partial(_unnormalised, is_causal=True))),
        Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
                "weights and their sum.", like(partial(_elu_without_plus_one_attention, is_causal=True))),
        Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products.",
                like(partial(_raw_queries_and_keys, is_causal=True))),
        Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are.",
                like(partial(_queries_scaled, is_causal=True))),
    ),
    error_hints=(
        (torch_shape_error,
         "The outer products φ(k_j)v_jᵀ are key_features.unsqueeze(-1) * value.unsqueeze(-2), (..., T, D, Dv); "
         "their running sum is a cumsum over the positions, dim=-3."),
        *_RANK_AND_IN_PLACE_HINTS,
    ),
    extra=_linear_extra("That is the masked (T, T) form, or chunks whose size grows with T (one chunk of all T "
                        "positions is the masked form itself). Use cumulative sums along the positions (states "
                        "(..., T, D, Dv)), a loop over the positions that carries U (D, Dv) and z (D), or chunks "
                        "of a fixed size C (their (C, C) tiles grow like T·C)."),
    what="Equal to the masked quadratic form (heads, float64, query 0 = value 0), differentiable in every input, "
         "and without a (T, T) matrix: cumulative sums, a recurrent state or fixed-size chunks.",
    withholds=("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
               "course_lib.linear.linear_attention_step", "course_lib.linear.recurrent_linear_attention",
               "course_lib.linear.chunked_causal_linear_attention", "course_lib.linear.LinearSelfAttention"),
    memory_probe=_long_case,
    memory_advice=("That is the masked (T, T) form (or chunks as long as the sequence). Use cumulative sums along "
                   "the positions, a loop that carries (U, z), or chunks of a fixed size."),
)


def _random_features_cases(rng):
    """The square case first: there omega not transposed and a norm over the wrong axis give numbers, no error."""
    import torch

    def half(*shape):
        return tensor(rng, *shape, dtype="float64") * 0.5

    return [
        Case("M = D: x (3, 6), omega (6, 6) (square, so a transposed omega cannot hide behind a shape error)",
             (half(3, 6), tensor(rng, 6, 6, dtype="float64"))),
        Case("x (5, 4) and omega (8, 4): M = 8 features", (half(5, 4), tensor(rng, 8, 4, dtype="float64"))),
        Case("batch and heads: x (2, 3, 6, 4), omega (16, 4)", (half(2, 3, 6, 4), tensor(rng, 16, 4, dtype="float64"))),
        Case("float32: x (4, 16), omega (32, 16)", (tensor(rng, 4, 16) * 0.5, tensor(rng, 32, 16))),
        Case("x = 0: every feature is exp(0)/√M = 1/3 with M = 9",
             (torch.zeros(2, 4, dtype=torch.float64), tensor(rng, 9, 4, dtype="float64"))),
        Case("x (3, 4) that requires gradients, omega (8, 4) (stay in torch: training backpropagates through φ)",
             (half(3, 4).requires_grad_(), tensor(rng, 8, 4, dtype="float64"))),
    ]


check_positive_random_features = Check(
    name="positive_random_features",
    points=2,
    make_cases=_random_features_cases,
    implementation="course_lib.linear.positive_random_features",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the factor exp(-‖x‖²/2) is missing: φ(x)_i = exp(ω_iᵀx - ‖x‖²/2)/√M. Without it "
                "E[φ(q)·φ(k)] = exp(q·k + (‖q‖² + ‖k‖²)/2), not exp(q·k).", like(_features_without_norm)),
        Mistake("subtract half the squared norm, ‖x‖²/2, not all of it.", like(_features_minus_whole_square)),
        Mistake("‖x‖² is the squared norm, (x * x).sum(dim=-1, keepdim=True), not the norm itself.",
                like(_features_minus_half_norm)),
        Mistake("divide by √M: φ(q) and φ(k) each carry 1/√M, so that their dot product averages the M terms.",
                like(_features_undivided)),
        Mistake("divide by √M, not M: φ(q) and φ(k) each carry 1/√M, and their product the 1/M of an average.",
                like(_features_divided_by_m)),
        Mistake("divide by √M, the number of features (omega.shape[0]), not √D (x.shape[-1]): φ(q) and φ(k) "
                "each carry 1/√M, so that their dot product averages the M terms.",
                like(_features_divided_by_sqrt_d)),
        Mistake("x @ omega pairs x with omega's columns, but each ω_i is a row of omega: use x @ omega.T "
                "(omega.transpose(-2, -1)).", like(_features_omega_not_transposed)),
        Mistake("‖x‖² is summed over the wrong axis: sum each vector's own features, the last axis "
                "(dim=-1, keepdim=True).", like(_features_norm_over_positions)),
        Mistake(_STABILISED, _stabilised_by_a_max),
        Mistake("your features are φ times a factor that depends on the row (on x) but not on the feature i: the "
                "ratio to φ(x)_i = exp(ω_iᵀx − ‖x‖²/2)/√M is the same across each row. Such a factor cancels in a "
                "query's normalised attention output, but φ(q)·φ(k) must estimate exp(q·k) itself: drop it (a "
                "division by the row's sum or maximum, for example).", _scaled_per_row),
    ),
    error_hints=(
        (torch_shape_error,
         "omega is (M, D), one ω_i per row: x @ omega.T gives the (..., T, M) projections ω_iᵀx."),
        (_numpy_on_grad_error, _STAY_IN_TORCH_HINT),
    ),
    what="φ(x)_i = exp(ω_iᵀx − ‖x‖²/2)/√M for any batch shape, so that E[φ(q)·φ(k)] = exp(q·k); differentiable.",
    withholds=("course_lib.linear.performer_attention",),
)


CHECKS = (check_elu_feature_map, check_linear_attention, check_causal_linear_attention, check_positive_random_features)
