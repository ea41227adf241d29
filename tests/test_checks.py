"""The learner checks: pass the reference and the solutions, fail the stubs, diagnose typical mistakes,
accept correct solutions written differently, and never raise whatever the learner's code does."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import graded_functions
from course_lib import attention, checks, cost, flash, linear, multihead, positional, sparse
from course_lib import numpy_attention as ref
from course_lib.checking import Case, Check, CheckResult

REFERENCES = {
    "softmax": ref.softmax,
    "attention_scores": ref.attention_scores,
    "scaled_dot_product_attention": ref.scaled_dot_product_attention,
    "causal_mask": ref.causal_mask,
    "padding_mask": ref.padding_mask,
    "masked_attention": ref.scaled_dot_product_attention,
    "sdpa": attention.scaled_dot_product_attention,
    "SelfAttention": attention.SelfAttention,
    "split_heads": multihead.split_heads,
    "merge_heads": multihead.merge_heads,
    "MultiHeadAttention": multihead.MultiHeadAttention,
    "sinusoidal_encoding": positional.sinusoidal_encoding,
    "apply_rope": positional.apply_rope,
    "attention_flops": cost.attention_flops,
    "kv_cache_bytes": cost.kv_cache_bytes,
    "grouped_query_attention": multihead.grouped_query_attention,
    "sliding_window_mask": sparse.sliding_window_mask,
    "strided_mask": sparse.strided_mask,
    "sliding_window_attention": sparse.sliding_window_attention,
    "online_softmax_update": flash.online_softmax_update,
    "flash_attention": flash.flash_attention,
    "elu_feature_map": linear.elu_feature_map,
    "linear_attention": linear.linear_attention,
    "causal_linear_attention": linear.causal_linear_attention,
    "positive_random_features": linear.positive_random_features,
}


@pytest.fixture(scope="module")
def solved():
    return graded_functions("solutions")


@pytest.fixture(scope="module")
def blank():
    return graded_functions("exercises")


def test_every_check_has_a_reference_here():
    assert set(REFERENCES) == set(checks.CHECKS)


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_passes_the_reference(name, seed):
    result = checks.CHECKS[name].run(REFERENCES[name], seed=seed)
    assert result.passed, result.message
    assert result.points == result.max_points == checks.CHECKS[name].points
    assert result.message.startswith(f"✅ {name}")


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_passes_the_solutions_notebook(name, solved):
    result = checks.CHECKS[name].run(solved[name], seed=3)
    assert result.passed, result.message


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_fails_the_blank_exercise_with_not_implemented(name, blank):
    result = checks.CHECKS[name].run(blank[name])
    assert (result.passed, result.points, result.status) == (False, 0, "not-implemented")
    assert "not implemented yet" in result.message


# ---------------------------------------------------------------------------------------------------------
# Typical mistakes, each with the diagnosis the learner must see
# ---------------------------------------------------------------------------------------------------------

def naive_softmax(x, axis=-1):
    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)


def softmax_wrong_axis(x, axis=-1):
    return ref.softmax(x, axis=0 if np.ndim(x) > 1 else -1)


def softmax_ignores_axis(x, axis=-1):
    return ref.softmax(x, axis=-1)


def softmax_no_keepdims(x, axis=-1):
    shifted = x - np.max(x, axis=axis)
    return np.exp(shifted) / np.sum(np.exp(shifted), axis=axis)


def softmax_whole_sum(x, axis=-1):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def softmax_unnormalised(x, axis=-1):
    return np.exp(x - np.max(x, axis=axis, keepdims=True))


def softmax_list(x, axis=-1):
    return ref.softmax(x, axis).tolist()


def softmax_in_place(x, axis=-1):
    x -= np.max(x, axis=axis, keepdims=True)
    return ref.softmax(x, axis)


def scores_unscaled(q, k):
    return q @ np.swapaxes(k, -1, -2)


def scores_by_d(q, k):
    return q @ np.swapaxes(k, -1, -2) / q.shape[-1]


def scores_not_transposed(q, k):
    return q @ k / np.sqrt(q.shape[-1])


def scores_dot_T(q, k):
    return q @ k.T / np.sqrt(q.shape[-1])


def scores_softmaxed(q, k):
    return ref.softmax(ref.attention_scores(q, k))


def scores_by_num_keys(q, k):
    return q @ np.swapaxes(k, -1, -2) / np.sqrt(k.shape[-2])


def attention_swapped(q, k, v):
    output, weights = ref.scaled_dot_product_attention(q, k, v)
    return weights, output


def attention_only_output(q, k, v):
    return ref.scaled_dot_product_attention(q, k, v)[0]


def attention_wrong_axis(q, k, v):
    weights = ref.softmax(ref.attention_scores(q, k), axis=-2)
    return weights @ v, weights


def attention_unscaled(q, k, v):
    weights = ref.softmax(q @ np.swapaxes(k, -1, -2))
    return weights @ v, weights


def attention_no_softmax(q, k, v):
    scores = ref.attention_scores(q, k)
    return scores @ v, scores


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


def torch_attention(reverse=False, multiply=False, ignore_causal=False, nan_rows=False, detach=False, scale=True):
    def sdpa(query, key, value, attn_mask=None, is_causal=False):
        scores = query @ key.transpose(-2, -1) / (math.sqrt(query.shape[-1]) if scale else 1.0)
        if is_causal and not ignore_causal:
            attn_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(attn_mask if reverse else ~attn_mask, float("-inf"))
        elif attn_mask is not None:
            scores = scores * attn_mask if multiply else scores + attn_mask
        if nan_rows:
            weights = torch.softmax(scores, dim=-1)
        else:
            weights = attention.masked_softmax(scores)
        output = weights @ value
        return (output.detach(), weights.detach()) if detach else (output, weights)
    return sdpa


class SelfAttentionScaledByModel(attention.SelfAttention):
    def forward(self, x, attn_mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)
        return attention.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=x.shape[-1] ** -0.5)[0]


class SelfAttentionWithBias(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(d_model, d_head) for _ in range(3))

    def forward(self, x, attn_mask=None):
        return attention.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), attn_mask)[0]


class SelfAttentionWrongNames(nn.Module):
    def __init__(self, d_model, d_head):
        super().__init__()
        self.W_q, self.W_k, self.W_v = (nn.Linear(d_model, d_head, bias=False) for _ in range(3))


class SelfAttentionIgnoresMask(attention.SelfAttention):
    def forward(self, x, attn_mask=None):
        return super().forward(x)


def split_by_reshape(x, num_heads):
    return x.reshape(x.shape[0], num_heads, x.shape[1], x.shape[2] // num_heads)


def merge_by_reshape(x):
    return x.reshape(x.shape[0], x.shape[2], -1)


def merge_by_view(x):
    return x.transpose(1, 2).view(x.shape[0], x.shape[2], -1)


def projected_heads(module, query, key, value, attn_mask, key_padding_mask):
    """The correct first steps of multi-head attention: heads of queries, keys, values and the combined mask."""
    key = query if key is None else key
    value = key if value is None else value
    q, k, v = (multihead.split_heads(layer(x), module.num_heads) for layer, x in
               ((module.query, query), (module.key, key), (module.value, value)))
    mask = module._combine_masks(attn_mask, key_padding_mask, q.shape[:2] + (query.shape[1], key.shape[1]))
    return q, k, v, mask


class MultiHeadNoOutput(multihead.MultiHeadAttention):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v, mask = projected_heads(self, query, key, value, attn_mask, key_padding_mask)
        out, weights = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return multihead.merge_heads(out), weights


class MultiHeadScaledByEmbedDim(multihead.MultiHeadAttention):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v, mask = projected_heads(self, query, key, value, attn_mask, key_padding_mask)
        out, weights = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.embed_dim ** -0.5)
        return self.output(multihead.merge_heads(out)), weights


class MultiHeadIgnoresPadding(multihead.MultiHeadAttention):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        return super().forward(query, key, value, attn_mask=attn_mask)


class MultiHeadNoDivisibilityError(multihead.MultiHeadAttention):
    def __init__(self, embed_dim, num_heads, bias=True):
        nn.Module.__init__(self)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.query, self.key, self.value, self.output = (nn.Linear(embed_dim, embed_dim) for _ in range(4))


def sinusoidal_swapped(num_positions, dim):
    return positional.sinusoidal_encoding(num_positions, dim).view(num_positions, -1, 2).flip(-1).reshape(num_positions, dim)


def sinusoidal_concatenated(num_positions, dim):
    encoding = positional.sinusoidal_encoding(num_positions, dim)
    return torch.cat([encoding[:, 0::2], encoding[:, 1::2]], dim=-1)


def rope_reversed(x, positions):
    return positional.apply_rope(x, -torch.as_tensor(positions))


def rope_rotate_half(x, positions):
    dim = x.shape[-1]
    angles = positional.rope_angles(torch.as_tensor(positions), dim).to(x.dtype)
    a, b = x[..., : dim // 2], x[..., dim // 2:]
    return torch.cat([a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()], dim=-1)


def flops_one_product(num_queries, num_keys, head_dim, num_heads):
    return 2 * num_queries * num_keys * head_dim * num_heads


def flops_self_attention_only(num_queries, num_keys, head_dim, num_heads):
    return 4 * num_queries * num_queries * head_dim * num_heads


def flops_as_string(num_queries, num_keys, head_dim, num_heads):
    return f"{4 * num_queries * num_keys * head_dim * num_heads:,}"


def kv_keys_only(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return num_layers * num_kv_heads * head_dim * length * batch_size * bytes_per_value


def kv_no_batch(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * bytes_per_value


def kv_fixed_float16(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    return 2 * num_layers * num_kv_heads * head_dim * length * batch_size * 2


def gqa_tiled(query, key, value):
    groups = query.shape[1] // key.shape[1]
    return attention.scaled_dot_product_attention(query, key.repeat(1, groups, 1, 1), value.repeat(1, groups, 1, 1))


def gqa_only_output(query, key, value):
    return multihead.grouped_query_attention(query, key, value)[0]


def window_strict(n, window):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return offsets.abs() < window


def window_causal(n, window):
    return sparse.sliding_window_mask(n, window, is_causal=True)


def window_numpy(n, window):
    return sparse.sliding_window_mask(n, window).numpy()


def strided_not_causal(n, stride):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return (offsets.abs() < stride) | (offsets % stride == 0)


def strided_local_only(n, stride):
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    return (offsets >= 0) & (offsets < stride)


def sliding_dense(query, key, value, window, is_causal=False):
    mask = sparse.sliding_window_mask(query.shape[-2], window, is_causal=is_causal)
    return attention.scaled_dot_product_attention(query, key, value, attn_mask=mask)[0]


def sliding_ignores_causal(query, key, value, window, is_causal=False):
    return sparse.sliding_window_attention(query, key, value, window)


def sliding_strict(query, key, value, window, is_causal=False):
    return sparse.sliding_window_attention(query, key, value, window - 1, is_causal) if window > 0 else \
        torch.zeros(*query.shape[:-1], value.shape[-1])


def sliding_zero_padding(query, key, value, window, is_causal=False):
    """A banded version that pads with zero keys and forgets to mask them."""
    length, width = query.shape[-2], window + 1 if is_causal else 2 * window + 1
    before = window
    after = 0 if is_causal else window
    keys = nn.functional.pad(key, (0, 0, before, after)).unfold(-2, width, 1)  # (..., T, D, width)
    values = nn.functional.pad(value, (0, 0, before, after)).unfold(-2, width, 1)  # (..., T, Dv, width)
    scores = (query.unsqueeze(-2) @ keys).squeeze(-2) / math.sqrt(query.shape[-1])  # (..., T, width)
    weights = torch.softmax(scores, dim=-1)  # padding keys (zeros) get weight
    return (values @ weights.unsqueeze(-1)).squeeze(-1)[..., :length, :]


def sliding_blocks_unmasked(query, key, value, window, is_causal=False):
    """The hint's block loop, but each block attends its whole key slice: no mask for each query's own window."""
    length, block, outputs = query.shape[-2], max(window, 16), []
    for start in range(0, length, block):
        stop = min(start + block, length)
        first, last = max(0, start - window), min(length, stop + window)
        scores = query[..., start:stop, :] @ key[..., first:last, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outputs.append(torch.softmax(scores, dim=-1) @ value[..., first:last, :])
    return torch.cat(outputs, dim=-2)


def flash_dense(query, key, value, is_causal=False, block_size=64):
    return attention.scaled_dot_product_attention(query, key, value, is_causal=is_causal)[0]


def flash_unscaled(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query * query.shape[-1] ** 0.5, key, value, is_causal=is_causal, block_size=block_size)


def flash_ignores_causal(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query, key, value, block_size=block_size)


def flash_with_weights(query, key, value, is_causal=False, block_size=64):
    return flash.flash_attention(query, key, value, is_causal=is_causal, block_size=block_size), None


def flash_fixed_last_block(query, key, value, is_causal=False, block_size=64):
    """Assumes every block is full: breaks when T is not a multiple of block_size."""
    outputs = []
    for start in range(0, query.shape[-2], block_size):
        rows = query[..., start:start + block_size, :]
        state = flash.online_softmax_start(rows, value.shape[-1])
        for k_start in range(0, key.shape[-2], block_size):
            scores = rows @ key[..., k_start:k_start + block_size, :].transpose(-2, -1) / query.shape[-1] ** 0.5
            scores = scores + torch.zeros(*rows.shape[:-1], block_size)  # a (block, block) tile, assumed full
            state = flash.online_softmax_update(*state, scores, value[..., k_start:k_start + block_size, :])
        outputs.append(flash.online_softmax_finish(state[1], state[2]))
    return torch.cat(outputs, dim=-2)


def flash_keys_outside(query, key, value, is_causal=False, block_size=64):
    """FlashAttention-1 loop order: key blocks outside, every query block's state kept (still one tile)."""
    m, l, out = flash.online_softmax_start(query, value.shape[-1])
    T = query.shape[-2]
    for k_start in range(0, key.shape[-2], block_size):
        k_block, v_block = key[..., k_start:k_start + block_size, :], value[..., k_start:k_start + block_size, :]
        new = []
        for q_start in range(0, T, block_size):
            rows = slice(q_start, q_start + block_size)
            scores = query[..., rows, :] @ k_block.transpose(-2, -1) / query.shape[-1] ** 0.5
            if is_causal:
                allowed = torch.arange(k_start, k_start + k_block.shape[-2]) <= torch.arange(T)[rows, None]
                scores = scores.masked_fill(~allowed, float("-inf"))
            new.append(flash.online_softmax_update(m[..., rows], l[..., rows], out[..., rows, :], scores, v_block))
        m, l, out = (torch.cat([n[i] for n in new], dim=-1 if i < 2 else -2) for i in range(3))
    return flash.online_softmax_finish(l, out)


def online_update_logsumexp(m, l, out, scores_block, values_block):
    """The same update through torch.logaddexp on log l (one of many correct ways to write it)."""
    m_new = torch.maximum(m, scores_block.amax(dim=-1))
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    weights = torch.exp(scores_block - shift[..., None])
    log_l = torch.logaddexp(torch.log(l) + m - shift, torch.log(weights.sum(-1)))
    rescale = torch.exp(m - shift)
    return m_new, torch.exp(log_l), rescale[..., None] * out + weights @ values_block


def elu_no_plus_one(x):
    return nn.functional.elu(x)


def elu_as_relu(x):
    return nn.functional.relu(x) + 1


def elu_as_exp(x):
    return torch.exp(x)


def elu_numpy(x):
    return (nn.functional.elu(x) + 1).numpy()


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


def linear_detached(query, key, value):
    return linear.linear_attention(query.detach(), key.detach(), value.detach())


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


def causal_three_axes(query, key, value):
    batch, length, dim = query.shape  # only (B, T, D): fails with heads
    return linear.causal_linear_attention(query, key, value)


MISTAKES = [
    ("attention_flops", flops_one_product, "half the count"),
    ("attention_flops", flops_self_attention_only, "T·S"),
    ("attention_flops", flops_as_string, "should return a number"),
    ("kv_cache_bytes", kv_keys_only, "only the keys"),
    ("kv_cache_bytes", kv_no_batch, "batch_size is ignored"),
    ("kv_cache_bytes", kv_fixed_float16, "bytes_per_value is ignored"),
    ("grouped_query_attention", gqa_tiled, "wrong KV heads"),
    ("grouped_query_attention", gqa_only_output, "returned only output"),
    ("sliding_window_mask", window_strict, "off by one"),
    ("sliding_window_mask", window_causal, "made it causal"),
    ("sliding_window_mask", window_numpy, "returned a numpy array"),
    ("strided_mask", strided_not_causal, "see the future"),
    ("strided_mask", strided_local_only, "strided part is missing"),
    ("sliding_window_attention", sliding_dense, "builds a (T, S) tensor"),
    ("sliding_window_attention", sliding_ignores_causal, "is_causal=True is ignored"),
    ("sliding_window_attention", sliding_strict, "off by one"),
    ("sliding_window_attention", sliding_zero_padding, "padding is attended"),
    ("sliding_window_attention", sliding_blocks_unmasked, "outside its own window"),
    ("split_heads", split_by_reshape, "reshaped straight to (B, H, T, D)"),
    ("merge_heads", merge_by_reshape, "Transpose to (B, T, H, D) first"),
    ("merge_heads", merge_by_view, "not contiguous"),
    ("MultiHeadAttention", MultiHeadNoOutput, "output projection is missing"),
    ("MultiHeadAttention", MultiHeadScaledByEmbedDim, "1/√head_dim"),
    ("MultiHeadAttention", MultiHeadIgnoresPadding, "key_padding_mask is ignored"),
    ("MultiHeadAttention", MultiHeadNoDivisibilityError, "should raise a ValueError"),
    ("MultiHeadAttention", SelfAttentionWrongNames, "should be nn.Linear(embed_dim, embed_dim)"),
    ("sinusoidal_encoding", sinusoidal_swapped, "swapped"),
    ("sinusoidal_encoding", sinusoidal_concatenated, "interleaves"),
    ("apply_rope", rope_reversed, "wrong way"),
    ("apply_rope", rope_rotate_half, "rotate half"),
    ("softmax", naive_softmax, "overflow"),
    ("softmax", softmax_wrong_axis, "wrong axis"),
    ("softmax", softmax_ignores_axis, "ignore the `axis` argument"),
    ("softmax", softmax_no_keepdims, "keepdims=True"),
    ("softmax", softmax_whole_sum, "sum of the whole array"),
    ("softmax", softmax_unnormalised, "do not sum to 1"),
    ("softmax", softmax_list, "returned a Python list"),
    ("softmax", softmax_in_place, "changed its inputs in place"),
    ("attention_scores", scores_unscaled, "not scaled"),
    ("attention_scores", scores_by_d, "divide by √D"),
    ("attention_scores", scores_not_transposed, "transpose keys"),
    ("attention_scores", scores_dot_T, "swap only the last two"),
    ("attention_scores", scores_softmaxed, "before the softmax"),
    ("attention_scores", scores_by_num_keys, "number of keys"),
    ("scaled_dot_product_attention", attention_swapped, "swapped"),
    ("scaled_dot_product_attention", attention_only_output, "returned only output"),
    ("scaled_dot_product_attention", attention_wrong_axis, "wrong axis"),
    ("scaled_dot_product_attention", attention_unscaled, "not scaled"),
    ("scaled_dot_product_attention", attention_no_softmax, "softmax is missing"),
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
    ("sdpa", torch_attention(reverse=True), "meaning is reversed"),
    ("sdpa", torch_attention(multiply=True), "added to the scores"),
    ("sdpa", torch_attention(ignore_causal=True), "is_causal=True is ignored"),
    ("sdpa", torch_attention(nan_rows=True), "gives NaN"),
    ("sdpa", torch_attention(scale=False), "not scaled"),
    ("sdpa", torch_attention(detach=True), "not connected to autograd"),
    ("sdpa", checks._torch_variant(after_softmax=True), "after the softmax"),
    ("sdpa", checks._torch_variant(add_bool=True), "added to the scores as numbers"),
    ("sdpa", checks._torch_variant(large_negative=True), "large negative number"),
    ("masked_attention", masked_reversed_nan_rows, "meaning is reversed"),
    ("SelfAttention", SelfAttentionScaledByModel, "√d_head"),
    ("SelfAttention", SelfAttentionWithBias, "has a bias"),
    ("SelfAttention", SelfAttentionWrongNames, "should be an nn.Linear"),
    ("SelfAttention", SelfAttentionIgnoresMask, "attn_mask is ignored"),
    ("online_softmax_update", checks._online_variant(rescale_out=False), "out is not rescaled"),
    ("online_softmax_update", checks._online_variant(rescale_l=False), "l is not rescaled"),
    ("online_softmax_update", checks._online_variant(normalise=True), "out is already divided by l"),
    ("online_softmax_update", checks._online_variant(keep_m=True), "m never changes"),
    ("online_softmax_update", checks._online_variant(nan_guard=False), "exp(-inf - (-inf)) is NaN"),
    ("online_softmax_update", checks._online_variant(inverted=True), "the rescaling factor is upside down"),
    ("flash_attention", flash_dense, "the full (B, H, T, S) scores hold 18432"),
    ("flash_attention", flash_unscaled, "not scaled by 1/√D"),
    ("flash_attention", flash_ignores_causal, "is_causal=True is ignored"),
    ("flash_attention", checks._flash_diagonal_unmasked, "the tiles on the diagonal are not masked"),
    ("flash_attention", flash_with_weights, "output: expected a torch tensor, got a tuple of length 2"),
    ("flash_attention", flash_fixed_last_block, "The last block is smaller"),
    ("elu_feature_map", elu_no_plus_one, "+ 1 is missing"),
    ("elu_feature_map", elu_as_relu, "relu(x) + 1"),
    ("elu_feature_map", elu_as_exp, "grows linearly"),
    ("elu_feature_map", elu_numpy, "returned a numpy array"),
    ("elu_feature_map", elu_shifted_inside, "+ 1 belongs outside elu"),
    ("linear_attention", linear_unnormalised, "not normalised"),
    ("linear_attention", linear_quadratic, "never φ(Q)φ(K)ᵀ"),
    ("linear_attention", linear_softmax, "softmax attention"),
    ("linear_attention", linear_elu_no_plus_one, "without + 1"),
    ("linear_attention", linear_detached, "not connected to autograd"),
    ("linear_attention", linear_scaled, "scaled by 1/√D"),
    ("causal_linear_attention", causal_ignores_mask, "every query sees every key"),
    ("causal_linear_attention", causal_strict, "off by one"),
    ("causal_linear_attention", causal_full_normaliser, "running sum too"),
    ("causal_linear_attention", causal_masked_quadratic, "masked (T, T) form"),
    ("causal_linear_attention", causal_unnormalised, "not normalised"),
    ("causal_linear_attention", causal_cumsum_wrong_axis, "must run along the positions"),
    ("causal_linear_attention", causal_cumsum_dim_one, "must run along the positions"),
    ("causal_linear_attention", causal_linear_reversed, "sees future keys"),
    ("causal_linear_attention", causal_loop_in_place, "write `U = U + ...`"),
    ("causal_linear_attention", causal_three_axes, "x[..., t, :]"),
    ("positive_random_features", features_without_norm, "exp(-‖x‖²/2) is missing"),
    ("positive_random_features", features_without_sqrt_m, "divide by √M"),
    ("positive_random_features", features_by_m, "not M"),
    ("positive_random_features", features_full_square, "half the squared norm"),
    ("positive_random_features", features_not_transposed, "one ω_i per row"),
    ("positive_random_features", features_by_sqrt_d, "not √D"),
]


@pytest.mark.parametrize("name, wrong, diagnosis", MISTAKES, ids=[f"{n}-{w.__name__ if hasattr(w, '__name__') else i}"
                                                                   for i, (n, w, _) in enumerate(MISTAKES)])
def test_typical_mistake_fails_with_its_diagnosis(name, wrong, diagnosis):
    result = checks.CHECKS[name].run(wrong)
    assert not result.passed and result.points == 0
    assert diagnosis in result.message, result.message
    assert result.message.startswith(f"❌ {name}: ")


# ---------------------------------------------------------------------------------------------------------
# Correct solutions written differently
# ---------------------------------------------------------------------------------------------------------

def softmax_float64_loop(x, axis=-1):
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index] - x[index].max()
        out[index] = np.exp(row) / np.exp(row).sum()
    return np.moveaxis(out, -1, axis)


def softmax_logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.exp(x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)))


def scores_einsum(q, k):
    return np.einsum("...td,...sd->...ts", q, k) / math.sqrt(q.shape[-1])


def scores_loop(q, k):
    q, k = np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)
    out = np.zeros(q.shape[:-1] + (k.shape[-2],))
    for index in np.ndindex(out.shape):
        out[index] = sum(q[index[:-1]][d] * k[index[:-2] + (index[-1],)][d] for d in range(q.shape[-1]))
    return out / math.sqrt(q.shape[-1])


def attention_einsum(q, k, v):
    weights = softmax_logsumexp(scores_einsum(q, k))
    return np.einsum("...ts,...sd->...td", weights, v), weights


def attention_as_list_tuple(q, k, v):
    return list(ref.scaled_dot_product_attention(q, k, v))


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


def torch_sdpa_with_where(query, key, value, attn_mask=None, is_causal=False):
    scores = torch.einsum("...td,...sd->...ts", query, key) * query.shape[-1] ** -0.5
    if is_causal:
        attn_mask = torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool))
    if attn_mask is not None:
        bias = attn_mask if attn_mask.dtype != torch.bool else torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(~attn_mask, -math.inf)
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1)
    weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
    return weights @ value, weights


class Projections(nn.Module):
    """The three projections the SelfAttention exercise asks for; subclasses say what attends."""

    def __init__(self, d_model, d_head):
        super().__init__()
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)


class SelfAttentionEinsum(Projections):
    """Scores by einsum and the mask applied with where: a different route to the same numbers."""

    def forward(self, x, attn_mask=None):
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, d_head) each
        scores = torch.einsum("btd,bsd->bts", q, k) / q.shape[-1] ** 0.5  # (B, T, T)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            scores = torch.where(attn_mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))  # (B, T, T)
        elif attn_mask is not None:
            scores = scores + attn_mask  # (B, T, T)
        return torch.softmax(scores, dim=-1) @ v  # (B, T, d_head)


class SelfAttentionFused(Projections):
    """Calls torch's own fused attention for the output: right numbers, but the job is torch's (library-call)."""

    def forward(self, x, attn_mask=None):
        return nn.functional.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), attn_mask=attn_mask)


def split_with_einops_style(x, num_heads):
    batch, length, embed_dim = x.shape
    return torch.stack(x.split(embed_dim // num_heads, dim=-1), dim=1)  # H x (B, T, D) -> (B, H, T, D)


def merge_with_cat(x):
    return torch.cat(x.unbind(dim=1), dim=-1)  # H x (B, T, D) -> (B, T, H*D)


class MultiHeadWithLoop(nn.Module):
    """One head at a time, with torch's fused attention: a different route to the same numbers."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} and num_heads={num_heads} do not divide")
        self.num_heads = num_heads
        self.query, self.key, self.value, self.output = (nn.Linear(embed_dim, embed_dim, bias=bias) for _ in range(4))

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        key = query if key is None else key
        value = key if value is None else value
        mask = attn_mask
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, :]
            mask = padding if mask is None else mask & padding
        q, k, v = self.query(query), self.key(key), self.value(value)
        size = q.shape[-1] // self.num_heads
        outputs, weights = [], []
        for h in range(self.num_heads):
            part = slice(h * size, (h + 1) * size)
            out, w = attention.scaled_dot_product_attention(q[..., part], k[..., part], v[..., part], attn_mask=mask)
            outputs.append(out)
            weights.append(w)
        return self.output(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)


def sinusoidal_loop(num_positions, dim):
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
    for position in range(num_positions):
        for i in range(0, dim, 2):
            encoding[position, i] = math.sin(position / 10000 ** (i / dim))
            if i + 1 < dim:
                encoding[position, i + 1] = math.cos(position / 10000 ** (i / dim))
    return encoding


def rope_complex(x, positions):
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())  # (..., T, D/2)
    angles = positional.rope_angles(torch.as_tensor(positions), x.shape[-1])
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(rotated).reshape(x.shape)


def flops_as_float(num_queries, num_keys, head_dim, num_heads):
    return 2.0 * (2 * num_keys * head_dim) * num_queries * num_heads  # scores and weighted sum, as a float


def kv_per_token(num_layers, num_kv_heads, head_dim, length, batch_size=1, bytes_per_value=2):
    per_token = num_layers * 2 * num_kv_heads * head_dim * bytes_per_value
    return int(np.int64(per_token) * length * batch_size)


def gqa_repeat_interleave(query, key, value):
    groups = query.shape[1] // key.shape[1]
    return attention.scaled_dot_product_attention(query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1))


def gqa_with_torch(query, key, value):
    output = nn.functional.scaled_dot_product_attention(query, key, value, enable_gqa=True)
    groups = query.shape[1] // key.shape[1]
    scores = query @ key.repeat_interleave(groups, 1).transpose(-2, -1) / math.sqrt(query.shape[-1])
    return output, torch.softmax(scores, dim=-1)


def window_loop(n, window):
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        mask[i, max(0, i - window): i + window + 1] = True
    return mask


def window_triangles(n, window):
    ones = torch.ones(n, n, dtype=torch.bool)
    return ones.triu(-window) & ones.tril(window)


def strided_loop(n, stride):
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = i - j < stride or (i - j) % stride == 0
    return mask


def sliding_per_query(query, key, value, window, is_causal=False):
    """One query at a time, with torch's attention on its own slice of keys: O(window) memory per step."""
    length = query.shape[-2]
    outputs = []
    for i in range(length):
        start, stop = max(0, i - window), (i + 1 if is_causal else min(length, i + window + 1))
        outputs.append(nn.functional.scaled_dot_product_attention(
            query[..., i:i + 1, :], key[..., start:stop, :], value[..., start:stop, :]))
    return torch.cat(outputs, dim=-2)


def sliding_masked_unfold(query, key, value, window, is_causal=False):
    """Each query against its 2w+1 neighbours (gathered by unfold), the padding masked: O(T·window)."""
    length, width = query.shape[-2], 2 * window + 1
    keys = nn.functional.pad(key, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, D, width)
    values = nn.functional.pad(value, (0, 0, window, window)).unfold(-2, width, 1)  # (..., T, Dv, width)
    scores = (query.unsqueeze(-2) @ keys).squeeze(-2) / math.sqrt(query.shape[-1])  # (..., T, width)
    positions = torch.arange(length)[:, None] - window + torch.arange(width)[None, :]  # (T, width)
    allowed = (positions >= 0) & (positions < length)
    if is_causal:
        allowed &= positions <= torch.arange(length)[:, None]
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return (values @ weights.unsqueeze(-1)).squeeze(-1)


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


def features_einsum(x, omega):
    projections = torch.einsum("...td,md->...tm", x, omega)
    squared_norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2
    return torch.exp(projections - squared_norms / 2 - 0.5 * math.log(omega.shape[0]))


ALTERNATIVES = [
    ("attention_flops", flops_as_float),
    ("kv_cache_bytes", kv_per_token),
    ("grouped_query_attention", gqa_repeat_interleave),
    ("grouped_query_attention", gqa_with_torch),
    ("sliding_window_mask", window_loop),
    ("sliding_window_mask", window_triangles),
    ("strided_mask", strided_loop),
    ("sliding_window_attention", sliding_per_query),
    ("sliding_window_attention", sliding_masked_unfold),
    ("split_heads", split_with_einops_style),
    ("merge_heads", merge_with_cat),
    ("MultiHeadAttention", MultiHeadWithLoop),
    ("sinusoidal_encoding", sinusoidal_loop),
    ("apply_rope", rope_complex),
    ("softmax", softmax_float64_loop),
    ("softmax", softmax_logsumexp),
    ("attention_scores", scores_einsum),
    ("attention_scores", scores_loop),
    ("scaled_dot_product_attention", attention_einsum),
    ("scaled_dot_product_attention", attention_as_list_tuple),
    ("causal_mask", causal_loop),
    ("causal_mask", causal_compare),
    ("padding_mask", padding_loop),
    ("masked_attention", masked_with_nan_to_num),
    ("sdpa", torch_sdpa_with_where),
    ("SelfAttention", SelfAttentionEinsum),
    ("online_softmax_update", online_update_logsumexp),
    ("flash_attention", flash_keys_outside),
    ("elu_feature_map", elu_by_cases),
    ("elu_feature_map", elu_by_clamps),
    ("linear_attention", linear_einsum),
    ("linear_attention", linear_summary_with_ones),
    ("causal_linear_attention", causal_linear_loop),
    ("causal_linear_attention", causal_linear_einsum),
    ("positive_random_features", features_einsum),
]


@pytest.mark.parametrize("name, right", ALTERNATIVES, ids=[f"{n}-{f.__name__}" for n, f in ALTERNATIVES])
def test_correct_solution_written_differently_passes(name, right):
    result = checks.CHECKS[name].run(right)
    assert result.passed, result.message


# ---------------------------------------------------------------------------------------------------------
# Checks never raise
# ---------------------------------------------------------------------------------------------------------

class AlwaysEqual:
    def __eq__(self, other):
        return True

    shape = (3, 4)


def raises_type_error(x, axis=-1):
    return x + "a"


def loops_forever(x, axis=-1):
    while True:
        pass


def returns(value):
    return lambda *args, **kwargs: value


@pytest.mark.parametrize("function, status, says", [
    (raises_type_error, "error", "raised UFuncTypeError"),
    (returns(None), "failed", "expected a numpy array, got a NoneType"),
    (returns("softmax"), "failed", "got a str"),
    (returns({"weights": 1}), "failed", "got a dict"),
    (returns(AlwaysEqual()), "failed", "expected a numpy array, got a AlwaysEqual"),
    (returns(np.zeros((2, 2))), "failed", "expected shape"),
    (returns(torch.zeros(5)), "failed", "returned a torch tensor"),
    (42, "failed", "expected a function, got a int"),
    (None, "failed", "expected a function, got a NoneType"),
])
def test_odd_functions_and_return_values_are_reported_not_raised(function, status, says):
    result = checks.check_softmax.run(function)
    assert (result.passed, result.status) == (False, status)
    assert says in result.message, result.message


def test_an_endless_loop_is_stopped_and_reported():
    quick = Check(**{**checks.check_softmax.__dict__, "time_limit": 0.5})
    result = quick.run(loops_forever)
    assert result.status == "timeout" and "ran for more than 0.5 s" in result.message


def test_exception_hint_points_at_the_likely_cause():
    result = checks.check_attention_scores.run(lambda q, k: q @ k)
    assert result.status == "error"
    assert "ValueError" in result.message and "transpose" in result.message


class FusedProjections(Projections):
    def attend(self, query, key, value, mask):
        return nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)


class SelfAttentionThroughItsBase(FusedProjections):
    """torch's attention in a method of a base class the learner wrote."""

    def forward(self, x, attn_mask=None):
        return self.attend(self.query(x), self.key(x), self.value(x), attn_mask)


blend = torch.nn.functional.scaled_dot_product_attention  # an alias at top level, as a notebook cell might make


def attend_with_the_alias(query, key, value, mask):
    return blend(query, key, value, attn_mask=mask)


def sdpa_through_a_helper(query, key, value, attn_mask=None, is_causal=False):
    return attend_with_the_alias(query, key, value, attn_mask), None


@pytest.mark.parametrize("name, function, says", [
    ("SelfAttention", SelfAttentionFused, "`scaled_dot_product_attention` (in `forward`)"),
    ("SelfAttention", SelfAttentionThroughItsBase, "`scaled_dot_product_attention` (in `attend`)"),
    ("sdpa", sdpa_through_a_helper, "`scaled_dot_product_attention` (`blend` in `attend_with_the_alias`)"),
])
def test_the_check_cell_says_when_a_library_function_does_the_job(name, function, says):
    result = checks.CHECKS[name].run(function)
    assert result.status == "library-call" and says in result.message, result.message


def test_the_verdict_is_printed_once(capsys):
    result = checks.check_causal_mask(ref.causal_mask)
    assert isinstance(result, CheckResult) and result.passed
    result._ipython_display_()  # as the last value of a cell: nothing more is printed
    assert capsys.readouterr().out.count("✅ causal_mask") == 1


def test_hidden_cases_differ_from_the_notebook_ones():
    seen = checks.check_softmax.make_cases(np.random.default_rng(0))
    hidden = checks.check_softmax.make_cases(np.random.default_rng(1))
    assert not np.array_equal(seen[0].args[0], hidden[0].args[0])


def test_a_mistake_that_happens_to_be_right_is_not_reported():
    # With D = 1 an unscaled score equals the scaled one: a correct answer must still pass.
    case = Case("D = 1", (np.ones((2, 1)), np.ones((3, 1))))
    assert checks.check_attention_scores.run(scores_unscaled, cases=[case]).passed


def test_no_helper_in_this_file_is_defined_twice():
    """Two helpers of the same name: the later one silently replaces the earlier in MISTAKES and ALTERNATIVES."""
    import ast
    from collections import Counter

    tree = ast.parse(open(__file__, encoding="utf-8").read())
    names = Counter(node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    assert [name for name, count in names.items() if count > 1] == []
