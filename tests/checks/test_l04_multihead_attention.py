"""Fixtures for the checks of lesson 04, course_lib/checks/l04_multihead_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it (on the exercise's
pattern, with lesson 03's attention), not by calling the check's own simulator (a fixture that did could never
fail)."""
from __future__ import annotations

import torch
from torch import nn

from course_lib import attention
from verdicts import fixture_tests


# split_heads and merge_heads: wrong -------------------------------------------------------------------------

def split_by_reshape(x, num_heads):
    return x.reshape(x.shape[0], num_heads, x.shape[1], x.shape[2] // num_heads)


def split_without_transpose(x, num_heads):
    batch, length, embed_dim = x.shape
    return x.view(batch, length, num_heads, embed_dim // num_heads)  # (B, T, H, D): .transpose(1, 2) forgotten


def merge_by_reshape(x):
    return x.reshape(x.shape[0], x.shape[2], -1)


def merge_by_view(x):
    return x.transpose(1, 2).view(x.shape[0], x.shape[2], -1)


# split_heads and merge_heads: right -------------------------------------------------------------------------

def split_with_einops_style(x, num_heads):
    batch, length, embed_dim = x.shape
    return torch.stack(x.split(embed_dim // num_heads, dim=-1), dim=1)  # H x (B, T, D) -> (B, H, T, D)


def merge_with_cat(x):
    return torch.cat(x.unbind(dim=1), dim=-1)  # H x (B, T, D) -> (B, T, H*D)


# MultiHeadAttention: the exercise's steps, right, for the wrong layers below to reuse ---------------------

def heads(x, num_heads):
    batch, length, embed_dim = x.shape
    return x.view(batch, length, num_heads, embed_dim // num_heads).transpose(1, 2)  # (B, H, T, D)


def merged(x):
    batch, num_heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, num_heads * head_dim)  # (B, T, H*D)


def combined_mask(attn_mask, key_padding_mask):
    if key_padding_mask is None:
        return attn_mask
    padding = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
    return padding if attn_mask is None else attn_mask & padding  # (B, H, T, S) by broadcasting


class Projections(nn.Module):
    """The exercise's __init__, right: the divisibility check and four nn.Linear(E, E)."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.query = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.key = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.value = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.output = nn.Linear(embed_dim, embed_dim, bias=bias)

    def projected_heads(self, query, key, value):
        key = query if key is None else key
        value = key if value is None else value
        return (heads(self.query(query), self.num_heads), heads(self.key(key), self.num_heads),
                heads(self.value(value), self.num_heads))  # (B, H, T, D), (B, H, S, D), (B, H, S, D)


# MultiHeadAttention: wrong ----------------------------------------------------------------------------------

class MultiHeadNoOutput(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return merged(out), weights  # self.output never applied


class MultiHeadScaledByEmbedDim(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask),
                                                              scale=self.embed_dim ** -0.5)
        return self.output(merged(out)), weights


class MultiHeadSplitByReshape(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        key = query if key is None else key
        value = key if value is None else value
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        head_dim = self.embed_dim // self.num_heads
        q = self.query(query).reshape(batch, self.num_heads, length, head_dim)  # (B, H, T, D), positions mixed
        k = self.key(key).reshape(batch, self.num_heads, source, head_dim)  # (B, H, S, D)
        v = self.value(value).reshape(batch, self.num_heads, source, head_dim)  # (B, H, S, D)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return self.output(merged(out)), weights


class MultiHeadIgnoresPadding(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, attn_mask)  # key_padding_mask unused
        return self.output(merged(out)), weights


class MultiHeadTorchMaskMeaning(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        mask = combined_mask(attn_mask, key_padding_mask)
        if mask is not None:
            mask = ~mask  # "True = blocked", as torch's nn.MultiheadAttention reads its masks
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadNoDivisibilityError(nn.Module):
    """__init__ without the check that num_heads divides embed_dim (the check stops before any forward)."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads  # 10 // 3 = 3: features silently lost
        self.query, self.key, self.value, self.output = (nn.Linear(embed_dim, embed_dim) for _ in range(4))


class MultiHeadWrongNames(nn.Module):
    """The projections named after the paper's matrices (W_q, ...), so the check cannot load weights into them."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(embed_dim, embed_dim, bias=bias) for _ in range(4))


# MultiHeadAttention: right ----------------------------------------------------------------------------------

class MultiHeadWithLoop(nn.Module):
    """One head at a time, with lesson 03's attention: a different route to the same numbers."""

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
            padding = key_padding_mask[:, None, :]  # (B, 1, S)
            mask = padding if mask is None else mask & padding  # (B, T, S)
        q, k, v = self.query(query), self.key(key), self.value(value)  # (B, T, E), (B, S, E), (B, S, E)
        size = q.shape[-1] // self.num_heads
        outputs, weights = [], []
        for h in range(self.num_heads):
            part = slice(h * size, (h + 1) * size)
            out, w = attention.scaled_dot_product_attention(q[..., part], k[..., part], v[..., part], attn_mask=mask)
            outputs.append(out)  # (B, T, D)
            weights.append(w)  # (B, T, S)
        return self.output(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)  # (B, T, E), (B, H, T, S)


WRONG = [
    ("split_heads", split_by_reshape, "reshaped straight to (B, H, T, D)"),
    ("split_heads", split_without_transpose, "heads axis must come second"),
    ("merge_heads", merge_by_reshape, "Transpose to (B, T, H, D) first"),
    ("merge_heads", merge_by_view, "not contiguous"),
    ("MultiHeadAttention", MultiHeadNoOutput, "output projection is missing"),
    ("MultiHeadAttention", MultiHeadScaledByEmbedDim, "1/√head_dim"),
    ("MultiHeadAttention", MultiHeadSplitByReshape, "your heads mix positions"),
    ("MultiHeadAttention", MultiHeadIgnoresPadding, "key_padding_mask is ignored"),
    ("MultiHeadAttention", MultiHeadTorchMaskMeaning, "the mask meaning is reversed"),
    ("MultiHeadAttention", MultiHeadNoDivisibilityError, "should raise a ValueError"),
    ("MultiHeadAttention", MultiHeadWrongNames, "should be nn.Linear(embed_dim, embed_dim)"),
]

RIGHT = [
    ("split_heads", split_with_einops_style),
    ("merge_heads", merge_with_cat),
    ("MultiHeadAttention", MultiHeadWithLoop),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
