"""How the checks call a learner's function or class on a case, and the static checks of a class: the part of
a check that runs next to the learner's code (in a notebook, and in the grader's sandbox, where the rest of
:mod:`course_lib.checks`, with its references, is not available).

Used by the checks of lessons 03, 04 and 06 (course_lib/checks/l03_*, l04_*, l06_*); tested through their
fixtures in tests/checks/.
"""
from __future__ import annotations

import numbers

import numpy as np

from course_lib.checking import describe_type


def run_module(cls, d_model, d_head, weights, x, mask):
    """Build ``cls(d_model, d_head)``, load the given projection weights, and run it on ``x``."""
    import torch

    module = cls(d_model, d_head)
    with torch.no_grad():
        for name, weight in weights.items():
            getattr(module, name).weight.copy_(weight)
    return module(x) if mask is None else module(x, attn_mask=mask)


def validate_self_attention(cls) -> str | None:
    from torch import nn

    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        return "SelfAttention must be a class that subclasses nn.Module."
    try:
        module = cls(8, 4)
    except NotImplementedError:
        raise
    except Exception as error:
        return f"SelfAttention(d_model=8, d_head=4) raised {type(error).__name__}: {error}."
    for name in ("query", "key", "value"):
        layer = getattr(module, name, None)
        if not isinstance(layer, nn.Linear):
            return (f"SelfAttention(8, 4).{name} should be an nn.Linear(d_model, d_head, bias=False), "
                    f"got {describe_attribute(layer)}. The check loads weights into query, key and value.")
        if tuple(layer.weight.shape) != (4, 8):
            return (f"SelfAttention(8, 4).{name} maps {layer.in_features} -> {layer.out_features} features; "
                    f"it should map d_model=8 -> d_head=4: nn.Linear(d_model, d_head, bias=False).")
        if layer.bias is not None:
            return f"SelfAttention(8, 4).{name} has a bias; the lesson's projections have none: bias=False."
    return None


def describe_attribute(value) -> str:
    return "nothing (no such attribute)" if value is None else type(value).__name__


def run_mha(cls, embed_dim, num_heads, torch_weights, query, memory, bias=True, **options):
    """Build ``cls(E, H)`` (``cls(E, H, bias=False)`` when the case says so), load a torch.nn.MultiheadAttention's
    weights (and biases, where it has them) into query/key/value/output, and run it."""
    import torch

    module = cls(embed_dim, num_heads) if bias else cls(embed_dim, num_heads, bias=False)
    weights = torch_weights["in_proj_weight"].chunk(3)  # 3 x (E, E)
    with torch.no_grad():
        for name, weight in zip(("query", "key", "value"), weights):
            getattr(module, name).weight.copy_(weight)
        module.output.weight.copy_(torch_weights["out_proj.weight"])
        if "in_proj_bias" in torch_weights:  # a layer built with bias=False keeps the biases it made (none)
            for name, part in zip(("query", "key", "value"), torch_weights["in_proj_bias"].chunk(3)):
                getattr(module, name).bias.copy_(part)
            module.output.bias.copy_(torch_weights["out_proj.bias"])
    value_omitted = options.pop("value_omitted", False)  # module(query, key): the value defaults to the key
    if memory is query:
        return module(query, **options)
    return module(query, memory, **options) if value_omitted else module(query, memory, memory, **options)


def validate_mha(cls) -> str | None:
    """Only what the check needs to run at all: a class whose ``cls(8, 2)`` has four nn.Linear(8, 8) with biases.
    The ValueError contract is a case of its own (:func:`mha_contract`), judged after the numbers."""
    from torch import nn

    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        return "MultiHeadAttention must be a class that subclasses nn.Module."
    module = cls(8, 2)
    for name in ("query", "key", "value", "output"):
        layer = getattr(module, name, None)
        if not isinstance(layer, nn.Linear) or tuple(layer.weight.shape) != (8, 8) or layer.bias is None:
            return (f"MultiHeadAttention(8, 2).{name} should be nn.Linear(embed_dim, embed_dim) with a bias, got "
                    f"{describe_attribute(layer)}; the check loads a torch module's weights into query, key, value "
                    f"and output.")
    return None


# What MultiHeadAttention(E, H) does when H does not divide E, as the code mha_contract returns
MHA_CONTRACT_OUTCOMES = ("a ValueError naming both sizes", "a ValueError that does not name both sizes",
                         "another kind of exception", "no exception")


def mha_contract(cls, embed_dim, num_heads):
    """Build ``cls(embed_dim, num_heads)`` for sizes that do not divide; return what happened as plain data for
    the grader: the index of the outcome in :data:`MHA_CONTRACT_OUTCOMES`, and that index - 100 (two results,
    as the check expects, that can never be read as swapped)."""
    import torch

    try:
        cls(embed_dim, num_heads)
    except NotImplementedError:
        raise
    except ValueError as error:
        outcome = 0 if str(embed_dim) in str(error) and str(num_heads) in str(error) else 1
    except Exception:
        outcome = 2
    else:
        outcome = 3
    code = torch.tensor([float(outcome)])  # (1,)
    return code, code - 100.0


def as_number(function, case):
    """Call a function that returns a count; hand the checker a 0-d array (the checks compare arrays): int64 for
    a whole number, so that it is compared exactly (one byte off is wrong), float64 for anything else."""
    result = function(*case.args, **case.kwargs)
    if hasattr(result, "item") and getattr(result, "ndim", None) == 0:
        result = result.item()
    if isinstance(result, bool) or not isinstance(result, numbers.Real):
        return result  # judged as it is: the verdict says what kind of value came back
    if isinstance(result, numbers.Integral) and abs(int(result)) < 2 ** 63:
        return np.asarray(int(result), dtype=np.int64)
    return np.asarray(float(result))


def returns_number(name, args):
    def validate(function) -> str | None:
        result = function(*args)
        if hasattr(result, "item") and getattr(result, "ndim", None) == 0:
            result = result.item()
        if isinstance(result, bool) or not isinstance(result, numbers.Real):
            return f"{name}{args} should return a number (an int), got {describe_type(result)}."
        return None

    return validate


def call_self_attention(cls, case):
    return run_module(cls, *case.args)


def call_mha(cls, case):
    if len(case.args) == 2:  # (embed_dim, num_heads) alone: the contract case
        return mha_contract(cls, *case.args)
    return run_mha(cls, *case.args, **case.kwargs)


validate_attention_flops = returns_number("attention_flops", (4, 4, 2, 1))
validate_kv_cache_bytes = returns_number("kv_cache_bytes", (2, 2, 4, 8))
