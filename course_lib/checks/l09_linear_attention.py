"""The checks of lesson 09, linear attention: the elu + 1 feature map, linear and causal linear attention, and positive random features.

Lesson: notebooks/09_linear_attention.ipynb, its exercise solutions/09_linear_attention.ipynb. Tests: tests/checks/test_l09_linear_attention.py.
"""
from __future__ import annotations

from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import in_place_error, long_inputs, tensor, torch_shape_error, unpack_error
from course_lib.measure import largest_intermediate


def _elu_feature_map_cases(rng):
    import torch

    return [
        Case("x = [-3, -1, -0.5, 0, 0.5, 2] (both sides of zero)", (torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0]),)),
        Case("x of shape (2, 4, 8)", (tensor(rng, 2, 4, 8),)),
        Case("very negative and large values [-200, -50, 20, 80] in float64 (features stay positive)",
             (torch.tensor([-200.0, -50.0, 20.0, 80.0], dtype=torch.float64),)),
        Case("float64 x of shape (3, 5)", (tensor(rng, 3, 5, dtype="float64"),)),
    ]


def _elementwise(name):
    """The feature maps learners write instead of elu(x) + 1, by name."""

    def apply(x):
        import torch
        import torch.nn.functional as F

        return {"elu": F.elu, "relu + 1": lambda t: F.relu(t) + 1, "exp": torch.exp, "x + 1": lambda t: t + 1,
                "elu of x + 1": lambda t: F.elu(t + 1), "identity": lambda t: t}[name](x)

    return apply


check_elu_feature_map = Check(
    name="elu_feature_map",
    points=1,
    make_cases=_elu_feature_map_cases,
    implementation="course_lib.linear.elu_feature_map",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the + 1 is missing: elu(x) is negative below zero (down to -1), and φ must be positive so that "
                "every weight φ(q)·φ(k) is. Return F.elu(x) + 1.", like(_elementwise("elu"))),
        Mistake("the + 1 belongs outside elu: elu(x) + 1, not elu(x + 1). elu(x + 1) is exp(x + 1) - 1 below "
                "x = -1, negative down to -1, so φ would not be positive. Return F.elu(x) + 1.",
                like(_elementwise("elu of x + 1"))),
        Mistake("that is relu(x) + 1: below zero elu(x) = exp(x) - 1, not 0, so φ(x) = exp(x) there, not 1. "
                "Use F.elu(x) + 1.", like(_elementwise("relu + 1"))),
        Mistake("exp(x) is φ only below zero; above zero elu(x) + 1 = x + 1, which grows linearly, not "
                "exponentially. Use F.elu(x) + 1.", like(_elementwise("exp"))),
        Mistake("x + 1 is negative below -1: elu bends it up to exp(x) - 1 there. Use F.elu(x) + 1.",
                like(_elementwise("x + 1"))),
    ),
    what="φ(x) = x + 1 above zero and exp(x) below: positive everywhere, any shape and dtype.",
)


def _kernel_form(query, key, value, feature="elu + 1", causal=False, normalise=True, strict=False,
                 running_normaliser=True, over_queries=False, scale_query=False, future=False):
    """Kernel attention in its quadratic form (fine at the checks' sizes), with the option a mistake changes."""
    import torch
    import torch.nn.functional as F

    feature_map = (lambda x: F.elu(x) + 1) if feature == "elu + 1" else _elementwise(feature)
    if scale_query:
        query = query / query.shape[-1] ** 0.5
    similarities = feature_map(query) @ feature_map(key).transpose(-2, -1)  # (..., T, S)
    all_keys = similarities.sum(dim=-1, keepdim=True)  # (..., T, 1)
    if causal:
        length = query.shape[-2]
        ones = torch.ones(length, length, dtype=torch.bool)  # (T, T)
        allowed = ones.triu(0) if future else ones.tril(-1 if strict else 0)  # (T, T): keys i..T-1 if future
        similarities = similarities * allowed
    if not normalise:
        return similarities @ value  # (..., T, Dv)
    if over_queries:
        return similarities / similarities.sum(dim=-2, keepdim=True) @ value
    totals = similarities.sum(dim=-1, keepdim=True) if running_normaliser else all_keys  # (..., T, 1)
    return similarities @ value / totals  # (..., T, Dv)


def _kernel_variant(**mistake):
    return lambda query, key, value: _kernel_form(query, key, value, **mistake)


def _cumulative_form(query, key, value, state_axis=-3, normaliser_axis=-2):
    """Causal linear attention by cumulative sums, along the axes a mistake chooses (right: -3 and -2)."""
    import torch
    import torch.nn.functional as F

    query_features, key_features = F.elu(query) + 1, F.elu(key) + 1  # (..., T, D) each
    outer = key_features.unsqueeze(-1) * value.unsqueeze(-2)  # (..., T, D, Dv)
    states = torch.cumsum(outer, dim=state_axis)  # (..., T, D, Dv)
    normalisers = torch.cumsum(key_features, dim=normaliser_axis)  # (..., T, D)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)  # (..., T, Dv)
    return numerators / (query_features * normalisers).sum(dim=-1, keepdim=True)  # (..., T, Dv)


def _cumsum_along_wrong_axis(case, got, expected) -> bool:
    """The running sums of the states U_i or of the normalisers z_i (or both) run along an axis other than the
    positions: a batch or head axis, D or Dv."""
    rank = case.args[0].dim()  # (..., T, D): the outer products have one axis more
    for state_axis in range(-rank - 1, 0):
        for normaliser_axis in range(-rank, 0):
            if (state_axis, normaliser_axis) == (-3, -2):
                continue
            wrong = lambda q, k, v, s=state_axis, n=normaliser_axis: _cumulative_form(q, k, v, s, n)
            if like(wrong)(case, got, expected):
                return True
    return False


_IN_PLACE_HINT = ("Autograd keeps tensors it needs for the gradient, and an in-place update (`U += ...`, "
                  "`U[...] = ...`, `.add_(...)`) overwrites them: write `U = U + ...` (a new tensor each step) "
                  "instead of `U += ...`, and avoid in-place operations on tensors that need gradients.")


_ANY_LEADING_AXES_HINT = ("The inputs may have any leading batch and head axes, (..., T, D): do not unpack the "
                          "whole shape into a fixed number of names (T, D = query.shape[-2:] works for every "
                          "rank), and index positions with ..., e.g. x[..., t, :].")


def _softmax_variant(is_causal):
    def attend(query, key, value):
        from course_lib.attention import scaled_dot_product_attention

        return scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]

    return attend


def _linear_cases(rng, causal):
    length = 256  # with D = Dv = 4: a (T, D, Dv) running state is 16x smaller than the (T, T) weights
    big = (tensor(rng, 1, 2, length, 4), tensor(rng, 1, 2, length, 4), tensor(rng, 1, 2, length, 4))
    grad = tuple(tensor(rng, 2, 5, 4).requires_grad_() for _ in range(3))
    if causal:
        return [
            Case("query and key (2, 6, 4), value (2, 6, 3), where query 0 sees only key 0",
                 (tensor(rng, 2, 6, 4), tensor(rng, 2, 6, 4), tensor(rng, 2, 6, 3))),
            Case("heads: (2, 3, 7, 8), value dim 2",
                 (tensor(rng, 2, 3, 7, 8), tensor(rng, 2, 3, 7, 8), tensor(rng, 2, 3, 7, 2))),
            Case("float64 without batch axes: (5, 4)",
                 (tensor(rng, 5, 4, dtype="float64"), tensor(rng, 5, 4, dtype="float64"), tensor(rng, 5, 4, dtype="float64"))),
            Case("inputs that require gradients (autograd must flow through)", grad),
            Case(f"query, key and value (1, 2, {length}, 4), where no ({length}, {length}) matrix may be built", big,
                 watch_memory=True),
        ]
    return [
        Case("query, key and value (2, 5, 4)", (tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4), tensor(rng, 2, 5, 4))),
        Case("heads: (2, 3, 6, 8), value dim 2",
             (tensor(rng, 2, 3, 6, 8), tensor(rng, 2, 3, 6, 8), tensor(rng, 2, 3, 6, 2))),
        Case("cross-attention: T = 3 queries, S = 7 keys, value dim 5",
             (tensor(rng, 1, 3, 4), tensor(rng, 1, 7, 4), tensor(rng, 1, 7, 5))),
        Case("float64 without batch axes: query (4, 6), key and value (9, 6)",
             (tensor(rng, 4, 6, dtype="float64"), tensor(rng, 9, 6, dtype="float64"), tensor(rng, 9, 6, dtype="float64"))),
        Case("inputs that require gradients (autograd must flow through)", grad),
        Case(f"query, key and value (1, 2, {length}, 4), where no ({length}, {length}) matrix may be built", big,
             watch_memory=True),
    ]


def _linear_extra(advice):
    """Further checks: gradients flow on the autograd case; no (T, S) tensor on the long case."""

    def check(function, case, got) -> str | None:
        query, key = case.args[0], case.args[1]
        if case.watch_memory:
            full = query.shape[:-1].numel() * key.shape[-2]  # B * H * T * S
            largest = largest_intermediate(function, *case.args)
            if largest >= full // 4:
                return (f"a tensor of {largest} numbers was built inside your function; the (B, H, T, S) weights "
                        f"hold {full}. {advice}")
        return None

    return check


_LINEAR_MISTAKES = (
    Mistake("this is softmax attention (exp(q·k/√D)); linear attention weighs key j by φ(q_i)·φ(k_j) with "
            "φ = elu + 1 (your elu_feature_map).", like(_softmax_variant(is_causal=False))),
    Mistake("the outputs are not normalised: divide each query's φ(q_i)ᵀ(φ(K)ᵀV) by φ(q_i)·Σ_j φ(k_j), so that "
            "its weights sum to 1.", like(_kernel_variant(normalise=False))),
    Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
            "weights and their sum.", like(_kernel_variant(feature="elu"))),
    Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products; with raw "
            "q·k the weights can be negative.", like(_kernel_variant(feature="identity"))),
    Mistake("the weights are normalised over the queries: divide by the sum over the keys j, "
            "φ(q_i)·Σ_j φ(k_j), one number per query.", like(_kernel_variant(over_queries=True))),
    Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are (the 1/√D of "
            "softmax attention has no place here).", like(_kernel_variant(scale_query=True))),
)

check_linear_attention = Check(
    name="linear_attention",
    points=2,
    make_cases=lambda rng: _linear_cases(rng, causal=False),
    implementation="course_lib.linear.linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("this is the causal version: here every query sees every key.",
                lambda case, got, exp: case.args[0].shape[-2] == case.args[1].shape[-2]
                and like(_kernel_variant(causal=True))(case, got, exp)),
        *_LINEAR_MISTAKES,
    ),
    error_hints=(
        (torch_shape_error,
         "Transpose only the last two axes: key_features.transpose(-2, -1) @ value is (..., D, Dv), and the "
         "normaliser φ(K).sum(dim=-2) sums over the keys."),
        (unpack_error, _ANY_LEADING_AXES_HINT),
        (in_place_error, _IN_PLACE_HINT),
    ),
    extra=_linear_extra("Compute right to left: the (..., D, Dv) summary U = φ(K)ᵀV and the normaliser Σ_j φ(k_j) "
                        "first, then let the queries read them; never φ(Q)φ(K)ᵀ."),
    what="Equal to the normalised φ(Q)φ(K)ᵀV with φ = elu + 1 (cross-attention, heads, float64), "
         "differentiable, and computed right to left: no (T, S) matrix.",
    withholds=("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
               "course_lib.linear.LinearSelfAttention"),
    memory_probe=lambda rng: Case("T = S = 4096 (peak memory measured)", long_inputs(rng)),
    memory_advice=("Compute right to left: the (..., D, Dv) summary φ(K)ᵀV and the normaliser first; never "
                   "φ(Q)φ(K)ᵀ."),
)

check_causal_linear_attention = Check(
    name="causal_linear_attention",
    points=3,
    make_cases=lambda rng: _linear_cases(rng, causal=True),
    implementation="course_lib.linear.causal_linear_attention",
    outputs=(Output("output", kind="torch"),),
    mistakes=(
        Mistake("every query sees every key: query i may only use keys 0..i. Accumulate the sums along the "
                "positions (torch.cumsum(..., dim=-3) for the (..., T, D, Dv) states, dim=-2 for z) or in a loop.",
                like(_kernel_variant(causal=False))),
        Mistake("off by one: query i sees keys 0..i, its own key included. Add φ(k_i)v_iᵀ and φ(k_i) to the "
                "state (U, z) before reading it.", like(_kernel_variant(causal=True, strict=True))),
        Mistake("query i sees future keys: your sums run over keys i..T-1 (a reversed cumulative sum, or the "
                "upper triangle), but query i may only use keys 0..i. Accumulate from the first position on.",
                like(_kernel_variant(causal=True, future=True))),
        Mistake("the cumulative sum must run along the positions, the axis of length T: dim=-3 for the "
                "(..., T, D, Dv) outer products φ(k_j)v_jᵀ, dim=-2 for the (..., T, D) features φ(k_j). A fixed "
                "dim such as 1 is a head or feature axis for other ranks.", _cumsum_along_wrong_axis),
        Mistake("the normaliser sums over all keys: z_i must be a running sum too, Σ_{j<=i} φ(k_j) "
                "(torch.cumsum of φ(K) along the positions).", like(_kernel_variant(causal=True, running_normaliser=False))),
        Mistake("this is causal softmax attention; linear attention weighs key j by φ(q_i)·φ(k_j) with "
                "φ = elu + 1 (your elu_feature_map).", like(_softmax_variant(is_causal=True))),
        Mistake("the outputs are not normalised: divide φ(q_i)ᵀU_i by φ(q_i)·z_i.",
                like(_kernel_variant(causal=True, normalise=False))),
        Mistake("φ is elu(x) without + 1 (check your elu_feature_map): its features can be negative, and so can the "
                "weights and their sum.", like(_kernel_variant(causal=True, feature="elu"))),
        Mistake("queries and keys must go through φ = elu + 1 (your elu_feature_map) before the products.",
                like(_kernel_variant(causal=True, feature="identity"))),
        Mistake("the queries are scaled by 1/√D: linear attention feeds q and k to φ as they are.",
                like(_kernel_variant(causal=True, scale_query=True))),
    ),
    error_hints=(
        (torch_shape_error,
         "The outer products φ(k_j)v_jᵀ are key_features.unsqueeze(-1) * value.unsqueeze(-2), (..., T, D, Dv); "
         "their running sum is a cumsum over the positions, dim=-3."),
        (unpack_error, _ANY_LEADING_AXES_HINT),
        (in_place_error, _IN_PLACE_HINT),
    ),
    extra=_linear_extra("That is the masked (T, T) form. Use cumulative sums along the positions (states "
                        "(..., T, D, Dv)), or a loop over the positions that carries U (D, Dv) and z (D)."),
    what="Equal to the masked quadratic form (heads, float64, query 0 = value 0), differentiable, and "
         "without a (T, T) matrix: cumulative sums or a recurrent state.",
    withholds=("course_lib.linear.kernel_attention", "course_lib.linear.kernel_attention_weights",
               "course_lib.linear.linear_attention_step", "course_lib.linear.recurrent_linear_attention",
               "course_lib.linear.chunked_causal_linear_attention", "course_lib.linear.LinearSelfAttention"),
    memory_probe=lambda rng: Case("T = S = 4096 (peak memory measured)", long_inputs(rng)),
    memory_advice=("That is the masked (T, T) form. Use cumulative sums along the positions, or a loop that carries "
                   "(U, z)."),
)


def _random_features_cases(rng):
    import torch

    half = lambda *shape: tensor(rng, *shape, dtype="float64") * 0.5
    return [
        Case("x (5, 4) and omega (8, 4): M = 8 features", (half(5, 4), tensor(rng, 8, 4, dtype="float64"))),
        Case("batch and heads: x (2, 3, 6, 4), omega (16, 4)", (half(2, 3, 6, 4), tensor(rng, 16, 4, dtype="float64"))),
        Case("M = D: x (3, 6), omega (6, 6) (square, so a transposed omega cannot hide behind a shape error)",
             (half(3, 6), tensor(rng, 6, 6, dtype="float64"))),
        Case("float32: x (4, 16), omega (32, 16)", (tensor(rng, 4, 16) * 0.5, tensor(rng, 32, 16))),
        Case("x = 0: every feature is exp(0)/√M = 1/3 with M = 9",
             (torch.zeros(2, 4, dtype=torch.float64), tensor(rng, 9, 4, dtype="float64"))),
    ]


def _random_features_variant(norm="half square", divide="sqrt", transpose=True, norm_axis=-1):
    def features(x, omega):
        import torch

        projections = x @ (omega.transpose(-2, -1) if transpose else omega)  # (..., T, M)
        squares = (x * x).sum(dim=norm_axis, keepdim=True)  # (..., T, 1)
        shift = {"half square": squares / 2, "square": squares, "half norm": squares.sqrt() / 2, "none": 0}[norm]
        count = omega.shape[0]
        divisor = {"sqrt": count ** 0.5, "count": count, "sqrt dim": x.shape[-1] ** 0.5, "none": 1}[divide]
        return torch.exp(projections - shift) / divisor

    return features


check_positive_random_features = Check(
    name="positive_random_features",
    points=2,
    make_cases=_random_features_cases,
    implementation="course_lib.linear.positive_random_features",
    outputs=(Output("features", kind="torch"),),
    mistakes=(
        Mistake("the factor exp(-‖x‖²/2) is missing: φ(x)_i = exp(ω_iᵀx - ‖x‖²/2)/√M. Without it "
                "E[φ(q)·φ(k)] = exp(q·k + (‖q‖² + ‖k‖²)/2), not exp(q·k).", like(_random_features_variant(norm="none"))),
        Mistake("subtract half the squared norm, ‖x‖²/2, not all of it.", like(_random_features_variant(norm="square"))),
        Mistake("‖x‖² is the squared norm, (x * x).sum(dim=-1, keepdim=True), not the norm itself.",
                like(_random_features_variant(norm="half norm"))),
        Mistake("divide by √M: φ(q) and φ(k) each carry 1/√M, so that their dot product averages the M terms.",
                like(_random_features_variant(divide="none"))),
        Mistake("divide by √M, not M: φ(q) and φ(k) each carry 1/√M, and their product the 1/M of an average.",
                like(_random_features_variant(divide="count"))),
        Mistake("divide by √M, the number of features (omega.shape[0]), not √D (x.shape[-1]): φ(q) and φ(k) "
                "each carry 1/√M, so that their dot product averages the M terms.",
                like(_random_features_variant(divide="sqrt dim"))),
        Mistake("x @ omega pairs x with omega's columns, but each ω_i is a row of omega: use x @ omega.T "
                "(omega.transpose(-2, -1)).", like(_random_features_variant(transpose=False))),
        Mistake("‖x‖² is summed over the wrong axis: sum each vector's own features, the last axis "
                "(dim=-1, keepdim=True).", like(_random_features_variant(norm_axis=-2))),
    ),
    error_hints=(
        (torch_shape_error,
         "omega is (M, D), one ω_i per row: x @ omega.T gives the (..., T, M) projections ω_iᵀx."),
    ),
    what="φ(x)_i = exp(ω_iᵀx − ‖x‖²/2)/√M for any batch shape, so that E[φ(q)·φ(k)] = exp(q·k).",
    withholds=("course_lib.linear.performer_attention",),
)


CHECKS = (check_elu_feature_map, check_linear_attention, check_causal_linear_attention, check_positive_random_features)
