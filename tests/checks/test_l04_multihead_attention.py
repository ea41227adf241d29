"""Fixtures for the checks of lesson 04, course_lib/checks/l04_multihead_attention.py: wrong solutions, each with the
diagnosis a learner must see (``WRONG``), and right solutions written differently (``RIGHT``).
tests/test_manifest.py proves that every diagnosis of these checks is triggered by a WRONG fixture and that
every check has a RIGHT one. Each wrong solution is written the way a learner writes it (on the exercise's
pattern, with lesson 03's attention), not by calling the check's own simulator (a fixture that did could never
fail)."""
from __future__ import annotations

import math

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


def split_interleaved(x, num_heads):
    batch, length, embed_dim = x.shape
    return x.view(batch, length, -1, num_heads).permute(0, 3, 1, 2)  # (B, H, T, D), features h, h + H, ...


def split_with_sizes_swapped(x, num_heads):
    batch, length, embed_dim = x.shape
    head_dim = embed_dim // num_heads
    return x.view(batch, length, head_dim, num_heads).transpose(1, 2)  # (B, D, T, H)


def merge_by_permute(x):
    batch, num_heads, length, head_dim = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, length, -1)  # (B, T, D, H) flattened: features interleaved


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


class MultiHeadD2lStyle(nn.Module):
    """d2l's MultiHeadAttention on the course's names: right numbers, but no ValueError when num_heads does not
    divide embed_dim (d2l's transpose_qkv reshapes with -1 and never checks)."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.query, self.key, self.value, self.output = (nn.Linear(embed_dim, embed_dim, bias=bias) for _ in range(4))

    def transpose_qkv(self, x):
        x = x.reshape(x.shape[0], x.shape[1], self.num_heads, -1)  # (B, T, H, D)
        return x.permute(0, 2, 1, 3)  # (B, H, T, D)

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        key = query if key is None else key
        value = key if value is None else value
        q, k, v = self.transpose_qkv(self.query(query)), self.transpose_qkv(self.key(key)), self.transpose_qkv(self.value(value))
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        out = out.permute(0, 2, 1, 3)  # (B, T, H, D)
        return self.output(out.reshape(out.shape[0], out.shape[1], -1)), weights  # (B, T, E), (B, H, T, S)


class ExerciseForward(Projections):
    """The exercise's forward, right, on whichever __init__ a subclass brings (the contract fixtures below)."""

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return self.output(merged(out)), weights


class MultiHeadValueDefaultsToQuery(ExerciseForward):
    """value = query when no value is given (a slip for 'key'): right whenever key is query, or value is given."""

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        return super().forward(query, key, query if value is None else value, attn_mask, key_padding_mask)


class MultiHeadDetachedHeads(ExerciseForward):
    """Right numbers, but the heads are detached before the output projection: no gradient reaches the input."""

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return self.output(merged(out).detach()), weights


class MultiHeadValueErrorWithoutSizes(ExerciseForward):
    def __init__(self, embed_dim, num_heads, bias=True):
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")  # which numbers?
        super().__init__(embed_dim, num_heads, bias)


class MultiHeadAssertsDivisible(ExerciseForward):
    def __init__(self, embed_dim, num_heads, bias=True):
        assert embed_dim % num_heads == 0, f"{embed_dim} % {num_heads} != 0"  # AssertionError, and gone under -O
        super().__init__(embed_dim, num_heads, bias)


class MultiHeadMasksCombinedWithOr(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        mask = attn_mask
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
            mask = padding if mask is None else mask | padding  # "either mask" where both were meant
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadPaddingReplacesAttnMask(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        mask = attn_mask
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, S): overwrites attn_mask
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadAttnMaskFirst(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        if attn_mask is not None:
            mask = attn_mask
        elif key_padding_mask is not None:  # never reached when both are given
            mask = key_padding_mask[:, None, None, :]
        else:
            mask = None
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadPaddingOnTheQueryAxis(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        mask = attn_mask
        if key_padding_mask is not None:
            padding = key_padding_mask.unsqueeze(1).unsqueeze(-1)  # (B, 1, S, 1): the wrong axis for keys
            mask = padding if mask is None else mask & padding
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadPaddingOnTheHeadsAxis(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        mask = attn_mask
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, :]  # (B, 1, S), as for one head's (B, T, S) scores
            mask = padding if mask is None else mask & padding
        out, weights = attention.scaled_dot_product_attention(q, k, v, mask)
        return self.output(merged(out)), weights


class MultiHeadIgnoresBiasArgument(ExerciseForward):
    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__(embed_dim, num_heads)  # bias not passed on: always True


class MultiHeadOutputAlwaysBiased(ExerciseForward):
    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__(embed_dim, num_heads, bias)
        self.output = nn.Linear(embed_dim, embed_dim)  # bias=bias forgotten on one layer


class MultiHeadWithoutBiasArgument(ExerciseForward):
    def __init__(self, embed_dim, num_heads):  # the exercise's bias=True left out of the signature
        super().__init__(embed_dim, num_heads)


class MultiHeadAveragedWeights(ExerciseForward):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        output, weights = super().forward(query, key, value, attn_mask, key_padding_mask)
        return output, weights.mean(dim=1)  # (B, T, S), as torch's module returns by default


class MultiHeadMergedByReshape(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return self.output(out.reshape(query.shape)), weights  # (B, H, T, D) -> (B, T, E) without the transpose


class MultiHeadUnscaled(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask),
                                                              scale=1.0)
        return self.output(merged(out)), weights


class MultiHeadSoftmaxOverQueries(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, T, S)
        mask = combined_mask(attn_mask, key_padding_mask)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=2)  # over the queries
        return self.output(merged(weights @ v)), weights


class MultiHeadSelfOnly(Projections):
    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, query, query)  # key and value never used
        out, weights = attention.scaled_dot_product_attention(q, k, v, combined_mask(attn_mask, key_padding_mask))
        return self.output(merged(out)), weights


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


class MultiHeadAdditiveMasks(Projections):
    """Both masks turned into additive float masks (0 or -inf) and summed: -inf wherever either one hides."""

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)  # (B, H, T, D), (B, H, S, D), (B, H, S, D)
        bias = torch.zeros(q.shape[0], 1, q.shape[2], k.shape[2])  # (B, 1, T, S)
        if attn_mask is not None:
            bias = bias.masked_fill(~attn_mask, float("-inf"))  # (B, 1, T, S)
        if key_padding_mask is not None:
            bias = bias.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))  # (B, 1, T, S)
        out, weights = attention.scaled_dot_product_attention(q, k, v, bias)
        return self.output(merged(out)), weights


class MultiHeadPaddingFilledIntoScores(Projections):
    """Scores by hand: the padding hidden with masked_fill, then attn_mask, then a softmax that is zero-safe."""

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        q, k, v = self.projected_heads(query, key, value)
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, T, S)
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))  # (B, H, T, S)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))  # (B, H, T, S)
        weights = attention.masked_softmax(scores)  # (B, H, T, S)
        return self.output(merged(weights @ v)), weights  # (B, T, E), (B, H, T, S)


class MultiHeadAnnotatedTransformerStyle(nn.Module):
    """The Annotated Transformer's way: one mask of ones narrowed by each mask, masked_fill(mask == 0, -1e9), and
    .contiguous().view to merge: right here (no case leaves a query with no key, where -1e9 would differ)."""

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"{embed_dim} is not divisible by {num_heads}")
        self.h, self.d_k = num_heads, embed_dim // num_heads
        self.query, self.key, self.value, self.output = (nn.Linear(embed_dim, embed_dim, bias=bias) for _ in range(4))

    def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None):
        key = query if key is None else key
        value = key if value is None else value
        batch = query.size(0)
        q, k, v = (layer(x).view(batch, -1, self.h, self.d_k).transpose(1, 2)
                   for layer, x in ((self.query, query), (self.key, key), (self.value, value)))  # (B, H, L, D)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)  # (B, H, T, S)
        mask = torch.ones(scores.shape, dtype=torch.bool)  # (B, H, T, S)
        if attn_mask is not None:
            mask = mask & attn_mask
        if key_padding_mask is not None:
            mask = mask & key_padding_mask.unsqueeze(1).unsqueeze(2)  # (B, 1, 1, S)
        weights = scores.masked_fill(mask == 0, -1e9).softmax(dim=-1)  # (B, H, T, S)
        x = torch.matmul(weights, v).transpose(1, 2).contiguous().view(batch, -1, self.h * self.d_k)  # (B, T, E)
        return self.output(x), weights


WRONG = [
    ("MultiHeadAttention", MultiHeadDetachedHeads, "your output is not connected to autograd"),
    ("MultiHeadAttention", MultiHeadValueDefaultsToQuery, "with no value: the value defaults to the key"),
    ("split_heads", split_by_reshape, "reshaped straight to (B, H, T, D)"),
    ("split_heads", split_without_transpose, "heads axis must come second"),
    ("merge_heads", merge_by_reshape, "Transpose to (B, T, H, D) first"),
    ("merge_heads", merge_by_view, "not contiguous"),
    ("split_heads", split_interleaved, "your heads are interleaved"),
    ("split_heads", split_with_sizes_swapped, "num_heads and head_dim are swapped"),
    ("merge_heads", merge_by_permute, "the heads' features are interleaved"),
    ("MultiHeadAttention", MultiHeadMergedByReshape, "your heads are merged by reshaping"),
    ("MultiHeadAttention", MultiHeadUnscaled, "not scaled by 1/√head_dim"),
    ("MultiHeadAttention", MultiHeadSoftmaxOverQueries, "softmax over the wrong dimension"),
    ("MultiHeadAttention", MultiHeadSelfOnly, "your layer ignores key and value"),
    ("MultiHeadAttention", MultiHeadAveragedWeights, "this is torch's nn.MultiheadAttention convention"),
    ("MultiHeadAttention", MultiHeadNoOutput, "output projection is missing"),
    ("MultiHeadAttention", MultiHeadScaledByEmbedDim, "1/√head_dim"),
    ("MultiHeadAttention", MultiHeadSplitByReshape, "your heads mix positions"),
    ("MultiHeadAttention", MultiHeadIgnoresPadding, "key_padding_mask is ignored"),
    ("MultiHeadAttention", MultiHeadTorchMaskMeaning, "the mask meaning is reversed"),
    ("MultiHeadAttention", MultiHeadD2lStyle, "built a layer instead of raising a ValueError"),
    ("MultiHeadAttention", MultiHeadValueErrorWithoutSizes, "does not name both sizes"),
    ("MultiHeadAttention", MultiHeadAssertsDivisible, "another kind of exception, not a ValueError"),
    ("MultiHeadAttention", MultiHeadMasksCombinedWithOr, "combined the masks with |"),
    ("MultiHeadAttention", MultiHeadPaddingReplacesAttnMask, "your attn_mask is dropped"),
    ("MultiHeadAttention", MultiHeadAttnMaskFirst, "your key_padding_mask is dropped"),
    ("MultiHeadAttention", MultiHeadPaddingOnTheQueryAxis, "Your padding mask is on the query axis"),
    ("MultiHeadAttention", MultiHeadPaddingOnTheHeadsAxis, "lines up with the heads"),
    ("MultiHeadAttention", MultiHeadIgnoresBiasArgument, "still has biases"),
    ("MultiHeadAttention", MultiHeadOutputAlwaysBiased, "still has biases"),
    ("MultiHeadAttention", MultiHeadWithoutBiasArgument, "takes bias=True as its third argument"),
    ("MultiHeadAttention", MultiHeadWrongNames, "should be nn.Linear(embed_dim, embed_dim)"),
]

RIGHT = [
    ("split_heads", split_with_einops_style),
    ("merge_heads", merge_with_cat),
    ("MultiHeadAttention", MultiHeadWithLoop),
    ("MultiHeadAttention", MultiHeadAdditiveMasks),
    ("MultiHeadAttention", MultiHeadPaddingFilledIntoScores),
    ("MultiHeadAttention", MultiHeadAnnotatedTransformerStyle),
]

test_typical_mistake_fails_with_its_diagnosis, test_correct_solution_written_differently_passes = fixture_tests(WRONG, RIGHT)


def test_a_right_attention_without_the_contract_hears_about_the_contract_only():
    """Is d2l's layer (right numbers, no ValueError) told its numbers are right and only the ValueError is missing?"""
    from course_lib.checks import CHECKS

    result = CHECKS["MultiHeadAttention"].run(MultiHeadD2lStyle)
    assert result.points == 0 and result.message.startswith("❌ MultiHeadAttention: on the contract"), result.message
    assert "your attention is right" in result.message and "ValueError" in result.message, result.message
    assert not any(word in result.message for word in ("differ", "mask", "scale", "projection")), result.message
