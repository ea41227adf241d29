"""Fixtures for the checks of lesson 04, course_lib/checks/l04_multihead_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one."""
from __future__ import annotations

import torch
from torch import nn

from course_lib import attention, multihead
from verdicts import fixture_tests
from test_l03_self_attention_in_pytorch import SelfAttentionWrongNames


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


WRONG = [
    ("split_heads", split_by_reshape, "reshaped straight to (B, H, T, D)"),
    ("merge_heads", merge_by_reshape, "Transpose to (B, T, H, D) first"),
    ("merge_heads", merge_by_view, "not contiguous"),
    ("MultiHeadAttention", MultiHeadNoOutput, "output projection is missing"),
    ("MultiHeadAttention", MultiHeadScaledByEmbedDim, "1/√head_dim"),
    ("MultiHeadAttention", MultiHeadIgnoresPadding, "key_padding_mask is ignored"),
    ("MultiHeadAttention", MultiHeadNoDivisibilityError, "should raise a ValueError"),
    ("MultiHeadAttention", SelfAttentionWrongNames, "should be nn.Linear(embed_dim, embed_dim)"),
]

RIGHT = [
    ("split_heads", split_with_einops_style),
    ("merge_heads", merge_with_cat),
    ("MultiHeadAttention", MultiHeadWithLoop),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)
