"""Fixtures for the checks of lesson 09, course_lib/checks/l09_linear_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_lib import attention, linear
from verdicts import fixture_tests


def elu_no_plus_one(x):
    return nn.functional.elu(x)


def elu_as_relu(x):
    return nn.functional.relu(x) + 1


def elu_as_exp(x):
    return torch.exp(x)


def elu_shift_only(x):
    """Reads "x + 1 above zero" and stops there: no exp below zero."""
    return x + 1


def elu_numpy(x):
    return (nn.functional.elu(x) + 1).numpy()


def elu_through_numpy(x):
    """The text says stay in torch; numpy's where and exp are what the learner knows."""
    array = x.numpy()
    return torch.from_numpy(np.where(array > 0, array + 1, np.exp(np.minimum(array, 0))))


def elu_numpy_detached(x):
    """numpy again, with .detach() to silence torch's complaint: the features lose their gradient."""
    array = x.detach().numpy()
    return torch.from_numpy(np.where(array > 0, array + 1, np.exp(np.minimum(array, 0))))


def linear_features(query, key):
    return linear.elu_feature_map(query), linear.elu_feature_map(key)


def linear_unnormalised(query, key, value):
    query_features, key_features = linear_features(query, key)
    return query_features @ (key_features.transpose(-2, -1) @ value)


def linear_quadratic(query, key, value):
    query_features, key_features = linear_features(query, key)
    weights = query_features @ key_features.transpose(-2, -1)  # (..., T, S): right values, quadratic memory
    return weights / weights.sum(-1, keepdim=True) @ value


def linear_softmax(query, key, value):
    return attention.scaled_dot_product_attention(query, key, value)[0]


def linear_elu_no_plus_one(query, key, value):
    query_features, key_features = nn.functional.elu(query), nn.functional.elu(key)
    summary = key_features.transpose(-2, -1) @ value
    return query_features @ summary / (query_features @ key_features.sum(-2, keepdim=True).transpose(-2, -1))


def linear_with_running_sums(query, key, value):
    """Cumulative sums in the non-causal function: query i sees only keys 0..i."""
    query_features, key_features = linear_features(query, key)
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-3)  # (..., T, D, Dv)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * torch.cumsum(key_features, dim=-2)).sum(-1, keepdim=True)


def linear_without_feature_map(query, key, value):
    """Right to left, but with the raw queries and keys: no φ."""
    summary = key.transpose(-2, -1) @ value
    return query @ summary / (query @ key.sum(-2, keepdim=True).transpose(-2, -1))


def linear_normalised_over_queries(query, key, value):
    query_features, key_features = linear_features(query, key)
    weights = query_features @ key_features.transpose(-2, -1)
    return weights / weights.sum(dim=-2, keepdim=True) @ value  # each key's column sums to 1


def linear_detached(query, key, value):
    return linear.linear_attention(query.detach(), key.detach(), value.detach())


def linear_features_of_values(query, key, value):
    """φ applied to all three inputs, "for symmetry"."""
    query_features, key_features = linear_features(query, key)
    summary = key_features.transpose(-2, -1) @ linear.elu_feature_map(value)
    return query_features @ summary / (query_features @ key_features.sum(-2, keepdim=True).transpose(-2, -1))


def linear_exp_features(query, key, value):
    """exp as the feature map, "like softmax"."""
    query_features, key_features = torch.exp(query), torch.exp(key)
    summary = key_features.transpose(-2, -1) @ value
    return query_features @ summary / (query_features @ key_features.sum(-2, keepdim=True).transpose(-2, -1))


def linear_raw_normaliser(query, key, value):
    query_features, key_features = linear_features(query, key)
    numerators = query_features @ (key_features.transpose(-2, -1) @ value)
    return numerators / (query @ key.sum(-2).unsqueeze(-1))  # q·Σk: the features forgotten below the line


def linear_scalar_normaliser(query, key, value):
    query_features, key_features = linear_features(query, key)
    numerators = query_features @ (key_features.transpose(-2, -1) @ value)
    return numerators / key_features.sum(dim=(-2, -1), keepdim=True)  # Σ over keys and features: no query


def linear_detached_state(query, key, value):
    """Right to left, but the summary U is detached ("it is a constant state"): value gets no gradient."""
    query_features, key_features = linear_features(query, key)
    summary = (key_features.transpose(-2, -1) @ value).detach()  # (..., D, Dv)
    normaliser = key_features.sum(-2, keepdim=True)  # (..., 1, D)
    return query_features @ summary / (query_features @ normaliser.transpose(-2, -1))


def linear_detached_normaliser(query, key, value):
    """Right to left, but the normaliser z is detached: key's gradient misses its share through z."""
    query_features, key_features = linear_features(query, key)
    summary = key_features.transpose(-2, -1) @ value  # (..., D, Dv)
    normaliser = key_features.sum(-2, keepdim=True).detach()  # (..., 1, D)
    return query_features @ summary / (query_features @ normaliser.transpose(-2, -1))


def linear_scaled(query, key, value):
    return linear.linear_attention(query / math.sqrt(query.shape[-1]), key, value)


def causal_ignores_mask(query, key, value):
    return linear.linear_attention(query, key, value)


def causal_strict(query, key, value):
    query_features, key_features = linear_features(query, key)
    outer = key_features.unsqueeze(-1) * value.unsqueeze(-2)
    states = torch.cumsum(outer, dim=-3) - outer  # keys 0..i-1: its own key left out
    normalisers = torch.cumsum(key_features, dim=-2) - key_features
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * normalisers).sum(-1, keepdim=True)


def causal_full_normaliser(query, key, value):
    query_features, key_features = linear_features(query, key)
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-3)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * key_features.sum(-2, keepdim=True)).sum(-1, keepdim=True)


def causal_masked_quadratic(query, key, value):
    query_features, key_features = linear_features(query, key)
    weights = (query_features @ key_features.transpose(-2, -1)).tril()  # (..., T, T): right values, quadratic memory
    return weights / weights.sum(-1, keepdim=True) @ value


def causal_softmax(query, key, value):
    """Causal softmax attention, written out: exp(q·k/√D) with the future masked."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    future = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ value


def causal_with_features(query_features, key_features, value):
    """The cumulative sums, right, for features that the callers below get wrong."""
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-3)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * torch.cumsum(key_features, dim=-2)).sum(-1, keepdim=True)


def causal_elu_no_plus_one(query, key, value):
    return causal_with_features(nn.functional.elu(query), nn.functional.elu(key), value)


def causal_without_feature_map(query, key, value):
    return causal_with_features(query, key, value)


def causal_scaled(query, key, value):
    scaled = query / math.sqrt(query.shape[-1])  # the habit of softmax attention
    return causal_with_features(linear.elu_feature_map(scaled), linear.elu_feature_map(key), value)


def causal_unnormalised(query, key, value):
    query_features, key_features = linear_features(query, key)
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-3)
    return (query_features.unsqueeze(-2) @ states).squeeze(-2)


def features_without_norm(x, omega):
    return torch.exp(x @ omega.T) / math.sqrt(omega.shape[0])


def features_without_sqrt_m(x, omega):
    return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2)


def features_by_m(x, omega):
    return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / omega.shape[0]


def features_full_square(x, omega):
    return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True)) / math.sqrt(omega.shape[0])


def features_not_transposed(x, omega):
    return torch.exp(x @ omega - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])


def features_norm_not_squared(x, omega):
    norms = torch.linalg.norm(x, dim=-1, keepdim=True)  # ‖x‖, not ‖x‖²
    return torch.exp(x @ omega.T - norms / 2) / math.sqrt(omega.shape[0])


def features_norm_over_batch(x, omega):
    squares = (x ** 2).sum(dim=0, keepdim=True)  # over the first axis: the positions for a (T, D) x
    return torch.exp(x @ omega.T - squares / 2) / math.sqrt(omega.shape[0])


def features_omega_first(x, omega):
    """ω_iᵀx read as omega @ x: a shape error on every input."""
    return torch.exp(omega @ x - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0])


def features_by_sqrt_d(x, omega):
    return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(x.shape[-1])


def elu_shifted_inside(x):
    return nn.functional.elu(x + 1)


def causal_cumsum_wrong_axis(query, key, value):
    query_features, key_features = linear_features(query, key)
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=-2)  # along D, not the positions
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * torch.cumsum(key_features, dim=-2)).sum(-1, keepdim=True)


def causal_cumsum_dim_one(query, key, value):
    query_features, key_features = linear_features(query, key)
    states = torch.cumsum(key_features.unsqueeze(-1) * value.unsqueeze(-2), dim=1)  # the positions only for (B, T, D)
    numerators = (query_features.unsqueeze(-2) @ states).squeeze(-2)
    return numerators / (query_features * torch.cumsum(key_features, dim=1)).sum(-1, keepdim=True)


def causal_linear_reversed(query, key, value):
    flip = lambda x: x.flip(-2)
    return flip(linear.causal_linear_attention(flip(query), flip(key), flip(value)))  # keys i..T-1


def causal_loop_in_place(query, key, value):
    query_features, key_features = linear_features(query, key)
    state = torch.zeros(*query.shape[:-2], query.shape[-1], value.shape[-1], dtype=query.dtype)  # (..., D, Dv)
    normaliser = torch.zeros(*query.shape[:-2], query.shape[-1], dtype=query.dtype)  # (..., D)
    outputs = []
    for i in range(query.shape[-2]):
        state += key_features[..., i, :, None] * value[..., i, None, :]  # in place: autograd saved state
        normaliser += key_features[..., i, :]
        numerator = (query_features[..., i, None, :] @ state)[..., 0, :]
        outputs.append(numerator / (query_features[..., i, :] * normaliser).sum(-1, keepdim=True))
    return torch.stack(outputs, dim=-2)


def causal_loop_detached_state(query, key, value):
    """The recurrent loop, with the state detached at each step as in truncated backpropagation through time."""
    query_features, key_features = linear_features(query, key)
    state = torch.zeros(*query.shape[:-2], query.shape[-1], value.shape[-1], dtype=query.dtype)  # (..., D, Dv)
    normaliser = torch.zeros(*query.shape[:-2], query.shape[-1], dtype=query.dtype)  # (..., D)
    outputs = []
    for i in range(query.shape[-2]):
        state = state.detach() + key_features[..., i, :, None] * value[..., i, None, :]  # (..., D, Dv)
        normaliser = normaliser + key_features[..., i, :]  # (..., D)
        numerator = (query_features[..., i, None, :] @ state)[..., 0, :]  # (..., Dv)
        outputs.append(numerator / (query_features[..., i, :] * normaliser).sum(-1, keepdim=True))
    return torch.stack(outputs, dim=-2)  # (..., T, Dv)


def causal_chunks(query, key, value, chunk_size):
    """Chunked causal linear attention, written out: inside a chunk the masked (C, C) form, between chunks the
    state (U, z) of all earlier chunks, carried in a loop."""
    query_features, key_features = linear_features(query, key)  # (..., T, D) each
    state = torch.zeros(*query.shape[:-2], query.shape[-1], value.shape[-1], dtype=query.dtype)  # (..., D, Dv)
    normaliser = torch.zeros(*query.shape[:-2], 1, query.shape[-1], dtype=query.dtype)  # (..., 1, D)
    outputs = []
    for start in range(0, query.shape[-2], chunk_size):
        q, k, v = (x[..., start:start + chunk_size, :] for x in (query_features, key_features, value))  # (..., C, ·)
        local = (q @ k.transpose(-2, -1)).tril()  # (..., C, C): keys of this chunk up to each query
        numerators = local @ v + q @ state  # (..., C, Dv)
        denominators = local.sum(-1, keepdim=True) + q @ normaliser.transpose(-2, -1)  # (..., C, 1)
        outputs.append(numerators / denominators)
        state = state + k.transpose(-2, -1) @ v  # (..., D, Dv)
        normaliser = normaliser + k.sum(-2, keepdim=True)  # (..., 1, D)
    return torch.cat(outputs, dim=-2)  # (..., T, Dv)


def causal_one_chunk_of_everything(query, key, value):
    """"All chunks at once" read as one chunk of all T positions: that is the masked (T, T) form itself."""
    return causal_chunks(query, key, value, chunk_size=query.shape[-2])


def causal_chunks_of_half_the_length(query, key, value):
    """Two chunks whatever T is: each (T/2, T/2) tile grows like T²."""
    return causal_chunks(query, key, value, chunk_size=max(1, query.shape[-2] // 2))


def causal_chunks_of_128(query, key, value):
    return causal_chunks(query, key, value, chunk_size=128)


def causal_chunks_of_256(query, key, value):
    """A fixed chunk of 256: the whole sequence at the check's T = 256, but a tile that stays 256 × 256 as T grows."""
    return causal_chunks(query, key, value, chunk_size=256)


def causal_library_chunked(query, key, value):
    """The course's own chunked form at its default (chunks of 64, all chunks at once as an (N, C, C) tensor)."""
    return linear.chunked_causal_linear_attention(query, key, value)


def causal_three_axes(query, key, value):
    batch, length, dim = query.shape  # only (B, T, D): fails with heads
    return linear.causal_linear_attention(query, key, value)


def elu_by_cases(x):
    return torch.where(x > 0, x + 1, torch.exp(torch.clamp(x, max=0)))


def elu_by_clamps(x):
    return torch.exp(torch.clamp(x, max=0)) + torch.clamp(x, min=0)


def linear_einsum(query, key, value):
    query_features, key_features = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
    summary = torch.einsum("...sd,...se->...de", key_features, value)  # (..., D, Dv)
    normaliser = key_features.sum(dim=-2)  # (..., D)
    numerators = torch.einsum("...td,...de->...te", query_features, summary)  # (..., T, Dv)
    return numerators / torch.einsum("...td,...d->...t", query_features, normaliser)[..., None]


def linear_summary_with_ones(query, key, value):
    """One product for numerator and denominator: append a column of ones to the values."""
    query_features, key_features = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
    ones = torch.ones(*value.shape[:-1], 1, dtype=value.dtype)
    both = query_features @ (key_features.transpose(-2, -1) @ torch.cat([value, ones], dim=-1))  # (..., T, Dv + 1)
    return both[..., :-1] / both[..., -1:]


def causal_linear_loop(query, key, value):
    query_features, key_features = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
    state = torch.zeros(*query.shape[:-2], query.shape[-1], value.shape[-1], dtype=query.dtype)  # (..., D, Dv)
    normaliser = torch.zeros(*query.shape[:-2], query.shape[-1], dtype=query.dtype)  # (..., D)
    outputs = []
    for i in range(query.shape[-2]):
        state = state + key_features[..., i, :, None] * value[..., i, None, :]
        normaliser = normaliser + key_features[..., i, :]
        numerator = (query_features[..., i, None, :] @ state)[..., 0, :]
        outputs.append(numerator / (query_features[..., i, :] * normaliser).sum(-1, keepdim=True))
    return torch.stack(outputs, dim=-2)


def causal_linear_einsum(query, key, value):
    query_features, key_features = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
    states = torch.einsum("...td,...te->...tde", key_features, value).cumsum(dim=-3)  # (..., T, D, Dv)
    numerators = torch.einsum("...td,...tde->...te", query_features, states)
    denominators = torch.einsum("...td,...td->...t", query_features, key_features.cumsum(dim=-2))
    return numerators / denominators[..., None]


def features_through_numpy(x, omega):
    array, directions = x.numpy(), omega.numpy()
    squared_norms = (array * array).sum(-1, keepdims=True)
    return torch.from_numpy(np.exp(array @ directions.T - squared_norms / 2) / np.sqrt(directions.shape[0]))


def features_stabilised_per_row(x, omega):
    """Performer's query-side stabiliser applied everywhere: each row's largest exponent subtracted inside exp."""
    logits = x @ omega.T - (x * x).sum(-1, keepdim=True) / 2  # (..., T, M)
    return torch.exp(logits - logits.max(dim=-1, keepdim=True).values) / math.sqrt(omega.shape[0])


def features_stabilised_shared(x, omega):
    """Performer's key-side stabiliser: one maximum over all rows and features."""
    logits = x @ omega.T - (x * x).sum(-1, keepdim=True) / 2  # (..., T, M)
    return torch.exp(logits - logits.max()) / math.sqrt(omega.shape[0])


def features_normalised_per_row(x, omega):
    """Each row's features divided by their sum, as if they were weights already."""
    features = torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2)  # (..., T, M)
    return features / features.sum(-1, keepdim=True)


def features_with_tiny_stabiliser(x, omega):
    """google-research's numerical_stabilizer: 1e-6 added to every feature, far below the check's tolerance."""
    return torch.exp(x @ omega.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(omega.shape[0]) + 1e-6


def features_einsum(x, omega):
    projections = torch.einsum("...td,md->...tm", x, omega)
    squared_norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2
    return torch.exp(projections - squared_norms / 2 - 0.5 * math.log(omega.shape[0]))


def elu_where_both_branches(x):
    """x + 1 above zero, exp(x) below, with torch.where: right values, but exp(100) = inf poisons the gradient."""
    return torch.where(x > 0, x + 1, torch.exp(x))


WRONG = [
    ("elu_feature_map", elu_where_both_branches, "is not finite. A common cause: torch.where"),
    ("elu_feature_map", elu_no_plus_one, "+ 1 is missing"),
    ("elu_feature_map", elu_as_relu, "relu(x) + 1"),
    ("elu_feature_map", elu_as_exp, "grows linearly"),
    ("elu_feature_map", elu_numpy, "returned a numpy array"),
    ("elu_feature_map", elu_shifted_inside, "+ 1 belongs outside elu"),
    ("elu_feature_map", elu_shift_only, "x + 1 is negative below -1"),
    ("elu_feature_map", elu_through_numpy, "Stay in torch"),
    ("elu_feature_map", elu_numpy_detached, "not connected to autograd: no gradient reaches any input. Avoid .detach(), .numpy()"),
    ("linear_attention", linear_unnormalised, "not normalised"),
    ("linear_attention", linear_quadratic, "never φ(Q)φ(K)ᵀ"),
    ("linear_attention", linear_softmax, "softmax attention"),
    ("linear_attention", linear_elu_no_plus_one, "without + 1"),
    ("linear_attention", linear_detached, "not connected to autograd"),
    ("linear_attention", linear_scaled, "scaled by 1/√D"),
    ("linear_attention", linear_features_of_values, "φ belongs to the queries and keys only"),
    ("linear_attention", linear_exp_features, "φ(x) = exp(x), feature by feature"),
    ("linear_attention", linear_raw_normaliser, "the normaliser uses the raw queries and keys"),
    ("linear_attention", linear_scalar_normaliser, "one number for all queries"),
    ("linear_attention", linear_detached_state, "no gradient reaches `value`"),
    ("linear_attention", linear_detached_normaliser, "the gradient with respect to `key` is wrong"),
    ("linear_attention", linear_with_running_sums, "this is the causal version"),
    ("linear_attention", linear_without_feature_map, "with raw q·k the weights can be negative"),
    ("linear_attention", linear_normalised_over_queries, "normalised over the queries"),
    ("causal_linear_attention", causal_ignores_mask, "every query sees every key"),
    ("causal_linear_attention", causal_strict, "off by one"),
    ("causal_linear_attention", causal_full_normaliser, "running sum too"),
    ("causal_linear_attention", causal_masked_quadratic, "masked (T, T) form"),
    ("causal_linear_attention", causal_unnormalised, "not normalised"),
    ("causal_linear_attention", causal_softmax, "this is causal softmax attention"),
    ("causal_linear_attention", causal_elu_no_plus_one, "φ is elu(x) without + 1"),
    ("causal_linear_attention", causal_without_feature_map, "(your elu_feature_map) before the products."),
    ("causal_linear_attention", causal_scaled, "linear attention feeds q and k to φ as they are."),
    ("causal_linear_attention", causal_cumsum_wrong_axis, "must run along the positions"),
    ("causal_linear_attention", causal_cumsum_dim_one, "must run along the positions"),
    ("causal_linear_attention", causal_linear_reversed, "sees future keys"),
    ("causal_linear_attention", causal_loop_in_place, "write `U = U + ...`"),
    ("causal_linear_attention", causal_three_axes, "x[..., t, :]"),
    ("causal_linear_attention", causal_loop_detached_state, "the gradient with respect to `value` is wrong"),
    ("causal_linear_attention", causal_one_chunk_of_everything, "one chunk of all T positions is the masked form"),
    ("causal_linear_attention", causal_chunks_of_half_the_length, "grows 16× when T grows 4×"),
    ("positive_random_features", features_without_norm, "exp(-‖x‖²/2) is missing"),
    ("positive_random_features", features_without_sqrt_m, "divide by √M"),
    ("positive_random_features", features_by_m, "not M"),
    ("positive_random_features", features_full_square, "half the squared norm"),
    ("positive_random_features", features_not_transposed, "x @ omega pairs x with omega's columns"),
    ("positive_random_features", features_omega_first, "one ω_i per row"),
    ("positive_random_features", features_norm_not_squared, "not the norm itself"),
    ("positive_random_features", features_norm_over_batch, "summed over the wrong axis"),
    ("positive_random_features", features_by_sqrt_d, "not √D"),
    ("positive_random_features", features_through_numpy, "Stay in torch"),
    ("positive_random_features", features_stabilised_per_row, "this is Performer's stabilised form"),
    ("positive_random_features", features_stabilised_shared, "this is Performer's stabilised form"),
    ("positive_random_features", features_normalised_per_row, "a factor that depends on the row"),
]

RIGHT = [
    ("elu_feature_map", elu_by_cases),
    ("elu_feature_map", elu_by_clamps),
    ("linear_attention", linear_einsum),
    ("linear_attention", linear_summary_with_ones),
    ("causal_linear_attention", causal_linear_loop),
    ("causal_linear_attention", causal_linear_einsum),
    ("causal_linear_attention", causal_chunks_of_128),
    ("causal_linear_attention", causal_chunks_of_256),
    ("causal_linear_attention", causal_library_chunked),
    ("positive_random_features", features_einsum),
    ("positive_random_features", features_with_tiny_stabiliser),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
