"""The checks of lesson 04, multi-head attention: splitting and merging heads, and the MultiHeadAttention layer.

Lesson: notebooks/04_multihead_attention.ipynb, its exercise solutions/04_multihead_attention.ipynb. Tests: tests/checks/test_l04_multihead_attention.py.
"""
from __future__ import annotations

from course_lib import calling
from course_lib.checking import Case, Check, Mistake, Output, like
from course_lib.checks._common import TORCH_MODULE_ATTENTION, tensor


check_split_heads = Check(
    name="split_heads",
    points=1,
    make_cases=lambda rng: [
        Case("x (2, 5, 12) into 3 heads", (tensor(rng, 2, 5, 12), 3)),
        Case("x (1, 4, 8) into 2 heads", (tensor(rng, 1, 4, 8), 2)),
        Case("x (3, 6, 6) into 6 heads of size 1", (tensor(rng, 3, 6, 6), 6)),
        Case("x (2, 3, 4) into 1 head", (tensor(rng, 2, 3, 4), 1)),
    ],
    implementation="course_lib.multihead.split_heads",
    outputs=(Output("heads", kind="torch"),),
    mistakes=(
        Mistake("you reshaped straight to (B, H, T, D): that cuts the (T, E) block in memory order, so a 'head' "
                "gets pieces of different positions. View as (B, T, H, D) first, then .transpose(1, 2).",
                like(lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h))),
        Mistake("the heads axis must come second: (B, H, T, D). After .view(B, T, H, D), add .transpose(1, 2).",
                like(lambda x, h: x.view(x.shape[0], x.shape[1], h, x.shape[2] // h))),
    ),
    what="(B, T, E) -> (B, H, T, E/H), head h holding features h*D ... (h+1)*D - 1 of every position.",
)

check_merge_heads = Check(
    name="merge_heads",
    points=1,
    make_cases=lambda rng: [
        Case("x (2, 3, 5, 4): 3 heads of size 4", (tensor(rng, 2, 3, 5, 4),)),
        Case("x (1, 2, 4, 3)", (tensor(rng, 1, 2, 4, 3),)),
        Case("x (2, 1, 3, 6): one head", (tensor(rng, 2, 1, 3, 6),)),
        Case("a non-contiguous x (from a transpose)", (tensor(rng, 2, 4, 3, 5).transpose(1, 2),)),
    ],
    implementation="course_lib.multihead.merge_heads",
    outputs=(Output("merged", kind="torch"),),
    mistakes=(
        Mistake("you reshaped (B, H, T, D) straight to (B, T, H*D): positions and heads get mixed up. "
                "Transpose to (B, T, H, D) first: x.transpose(1, 2).reshape(B, T, H * D).",
                like(lambda x: x.reshape(x.shape[0], x.shape[2], -1))),
    ),
    error_hints=(
        (lambda case, error: "view size is not compatible" in str(error),
         "After a transpose the tensor is not contiguous, so .view fails: use .reshape (or .contiguous().view)."),
    ),
    what="(B, H, T, D) -> (B, T, H*D), the inverse of split_heads, non-contiguous input included.",
)


def _mha_cases(rng):
    import torch

    cases = []
    for label, embed_dim, num_heads, batch, length, source, kind in (
        ("self-attention, E=8, H=2, x (2, 5, 8)", 8, 2, 2, 5, 5, None),
        ("cross-attention, E=12, H=3, query (2, 4, 12), key = value (2, 6, 12)", 12, 3, 2, 4, 6, None),
        ("a boolean attn_mask (T, S) = (5, 5), causal", 8, 4, 1, 5, 5, "causal"),
        ("a key_padding_mask (B, S), True = real token", 12, 2, 2, 4, 6, "padding"),
    ):
        # the weights of a torch.nn.MultiheadAttention(embed_dim, num_heads), as plain tensors
        weights = {"in_proj_weight": tensor(rng, 3 * embed_dim, embed_dim) / embed_dim ** 0.5,
                   "in_proj_bias": tensor(rng, 3 * embed_dim) / embed_dim ** 0.5,
                   "out_proj.weight": tensor(rng, embed_dim, embed_dim) / embed_dim ** 0.5,
                   "out_proj.bias": tensor(rng, embed_dim) / embed_dim ** 0.5}
        query = tensor(rng, batch, length, embed_dim)
        memory = query if source == length and kind != "padding" else tensor(rng, batch, source, embed_dim)
        options = {}
        if kind == "causal":
            options["attn_mask"] = torch.ones(length, length, dtype=torch.bool).tril()
        if kind == "padding":
            options["key_padding_mask"] = torch.tensor([[True] * source, [True] * 3 + [False] * (source - 3)])
        cases.append(Case(label, (embed_dim, num_heads, weights, query, memory), options))
    return cases


def _mha_variant(**mistake):
    """Multi-head attention computed functionally, with one deliberate mistake."""

    def run(embed_dim, num_heads, torch_weights, query, memory, attn_mask=None, key_padding_mask=None):
        head_dim = embed_dim // num_heads
        weights = torch_weights["in_proj_weight"].chunk(3)  # 3 x (E, E)
        biases = torch_weights["in_proj_bias"].chunk(3)  # 3 x (E,)
        projected = [x @ w.T + b for x, w, b in zip((query, memory, memory), weights, biases)]  # 3 x (B, L, E)

        def split(x):
            if mistake.get("reshape_split"):
                return x.reshape(x.shape[0], num_heads, x.shape[1], head_dim)
            return x.view(x.shape[0], x.shape[1], num_heads, head_dim).transpose(1, 2)  # (B, H, L, D)

        q, k, v = (split(x) for x in projected)
        scale = embed_dim ** -0.5 if mistake.get("scale_by_embed_dim") else head_dim ** -0.5
        scores = q @ k.transpose(-2, -1) * scale  # (B, H, T, S)
        mask = attn_mask
        if key_padding_mask is not None and not mistake.get("ignore_padding"):
            padding = key_padding_mask[:, None, None, :]
            mask = padding if mask is None else mask & padding
        if mask is not None:
            scores = scores.masked_fill(mask if mistake.get("torch_meaning") else ~mask, float("-inf"))
        from course_lib.attention import masked_softmax

        attention = masked_softmax(scores)  # (B, H, T, S)
        merged = (attention @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], embed_dim)  # (B, T, E)
        if mistake.get("no_output_projection"):
            return merged, attention
        return merged @ torch_weights["out_proj.weight"].T + torch_weights["out_proj.bias"], attention

    return run


check_MultiHeadAttention = Check(
    name="MultiHeadAttention",
    points=3,
    make_cases=_mha_cases,
    implementation="course_lib.multihead.MultiHeadAttention",
    call=calling.call_mha,
    outputs=(Output("output", kind="torch"), Output("weights", kind="torch")),
    mistakes=(
        Mistake("the output projection is missing: after merging the heads, apply self.output.",
                like(_mha_variant(no_output_projection=True))),
        Mistake("you scaled the scores by 1/√embed_dim; each head's dot products have head_dim = embed_dim / "
                "num_heads terms, so scale by 1/√head_dim.", like(_mha_variant(scale_by_embed_dim=True))),
        Mistake("your heads mix positions: reshaping (B, T, E) straight to (B, H, T, D) cuts the data in the "
                "wrong places. Use .view(B, T, H, D).transpose(1, 2).", like(_mha_variant(reshape_split=True))),
        Mistake("key_padding_mask is ignored: padded keys (False) must get no weight.",
                lambda case, got, exp: "key_padding_mask" in case.kwargs and like(_mha_variant(ignore_padding=True))(case, got, exp)),
        Mistake("the mask meaning is reversed: this course's masks say True = may attend (torch's "
                "nn.MultiheadAttention says the opposite; convert with ~mask).", like(_mha_variant(torch_meaning=True))),
    ),
    validate=calling.validate_mha,
    what="Same output and per-head weights as torch.nn.MultiheadAttention with the same weights: self- and "
         "cross-attention, attn_mask and key_padding_mask.",
    withholds=("course_lib.linear.LinearSelfAttention",),
    library=TORCH_MODULE_ATTENTION,
)


CHECKS = (check_split_heads, check_merge_heads, check_MultiHeadAttention)
