"""What attention costs: the formulas, the measuring helpers and the KV cache of lesson 06.

Formulas: :func:`attention_flops` (``4·T·S·D`` per head), :func:`score_matrix_bytes` (the ``T×S`` scores),
:func:`kv_cache_bytes` (what generation keeps per layer). Measuring, reused by the later lessons (sparse,
flash and linear attention): :func:`time_call` (warm-up, repeats, median), :func:`peak_memory` (every CPU
allocation torch makes, replayed from its profiler), :func:`fit_slope` (the exponent of a power law) and
:func:`measure_scaling`. Generation: :class:`KVCache` and :func:`decode` with or without it.

Lesson: notebooks/06_the_cost_of_attention.ipynb. Tests: tests/test_cost.py.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import statistics
import time
from typing import Callable, Sequence

import torch

from course_lib.attention import causal_mask
from course_lib.multihead import MultiHeadAttention, grouped_query_attention, merge_heads, split_heads
from course_lib.validation import require_rank

# Bytes per number for the dtypes of the context-window calculator.
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
FALLBACK_CACHE_BYTES = 32 * 2**20  # when the machine does not say: a typical laptop or server L3


def _require_counts(**counts: int) -> None:
    """Raise unless every count is a positive whole number, naming the first that is not."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")


# ----------------------------------------------------------------------------------------------------------
# The formulas
# ----------------------------------------------------------------------------------------------------------

def attention_flops(num_queries: int, num_keys: int, head_dim: int, num_heads: int = 1, batch_size: int = 1) -> int:
    """Floating-point operations of attention: ``4·T·S·D`` per head (projections not included).

    The scores ``Q Kᵀ`` take ``T·S`` dot products of length ``D``, a multiply and an add per term: ``2·T·S·D``.
    The weighted sum ``weights @ V`` takes as many. The softmax adds a few operations per score (``O(T·S)``),
    negligible next to ``D`` of them per score.
    """
    _require_counts(num_queries=num_queries, num_keys=num_keys, head_dim=head_dim, num_heads=num_heads,
                    batch_size=batch_size)
    return 4 * batch_size * num_heads * num_queries * num_keys * head_dim


def score_matrix_bytes(num_queries: int, num_keys: int, num_heads: int = 1, batch_size: int = 1,
                       bytes_per_value: int = 4) -> int:
    """Bytes of the scores (B, H, T, S): one number per query, key and head. Naive attention keeps several."""
    _require_counts(num_queries=num_queries, num_keys=num_keys, num_heads=num_heads, batch_size=batch_size,
                    bytes_per_value=bytes_per_value)
    return batch_size * num_heads * num_queries * num_keys * bytes_per_value


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, length: int, batch_size: int = 1,
                   bytes_per_value: int = 2) -> int:
    """Bytes a model keeps to generate token ``length + 1``: a key and a value per layer, KV head and token.

    ``2 · layers · batch · kv_heads · length · head_dim · bytes``. Multi-query attention has 1 KV head,
    grouped-query attention a few, multi-head attention as many as query heads. ``bytes_per_value`` is 2 for
    float16/bfloat16, the usual inference dtypes.
    """
    _require_counts(num_layers=num_layers, num_kv_heads=num_kv_heads, head_dim=head_dim, length=length,
                    batch_size=batch_size, bytes_per_value=bytes_per_value)
    return 2 * num_layers * batch_size * num_kv_heads * length * head_dim * bytes_per_value


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB': bytes in powers of 1024, as memory is sold."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.3g} {unit}"
        count /= 1024
    return f"{count} TiB"  # not reached


def cache_bytes() -> int:
    """The size of this CPU's largest cache (usually L3), from Linux's /sys or sysconf; 32 MiB when unknown.

    Data that fit in cache are read at several times the speed of main memory, so a timing curve bends where
    the working set outgrows the cache: fit power laws only beyond that point.
    """
    sizes = []
    for index in range(8):
        path = f"/sys/devices/system/cpu/cpu0/cache/index{index}/size"
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        factor = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * factor)
    if not sizes:
        for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
            try:
                sizes.append(int(os.sysconf(name)))
            except (ValueError, OSError, AttributeError):
                continue
    sizes = [size for size in sizes if size > 0]
    return max(sizes) if sizes else FALLBACK_CACHE_BYTES


# ----------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------

def time_call(function: Callable, *args, warmup: int = 1, repeats: int = 5, **kwargs) -> float:
    """Median wall-clock seconds of ``function(*args, **kwargs)`` over ``repeats`` calls, after ``warmup`` calls.

    The warm-up calls pay the one-time costs (lazy initialisation, allocator, caches); the median ignores
    the odd slow call caused by another process on the machine.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        function(*args, **kwargs)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args, **kwargs)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def peak_memory(function: Callable, *args, **kwargs) -> int:
    """Peak bytes that torch's CPU allocator held for ``function(*args, **kwargs)``, above what was live before.

    Torch's profiler with ``profile_memory=True`` records every allocation and free with its size and time;
    replaying them in time order gives the bytes alive at each moment, and the peak is their maximum. The
    returned tensors count (they are still alive at the end); tensors created before the call do not. This
    sees what the process's resident size cannot: memory that was freed and reused within the call.
    """
    from torch.profiler import ProfilerActivity, profile

    profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_native_stderr():
        profiler.start()
    try:
        function(*args, **kwargs)
    finally:
        with _quiet_native_stderr():
            profiler.stop()
    changes = sorted((event.start_ns(), event.nbytes()) for event in profiler.profiler.kineto_results.events()
                     if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU)
    alive = peak = 0
    for _, change in changes:  # + bytes for an allocation, - bytes for a free
        alive += change
        peak = max(peak, alive)
    return peak


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 meanwhile (the profiler logs its start and stop)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The exponent ``k`` of the power law ``y ≈ c·x^k`` that fits best: the slope of the line through
    ``(log x, log y)`` by least squares. ``k = 2``: twice the input, four times the cost."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need at least two (x, y) pairs of equal length, got {len(xs)} xs and {len(ys)} ys")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("a log-log fit needs positive xs and ys")
    log_x = [math.log(x) for x in xs]
    log_y = [math.log(y) for y in ys]
    mean_x, mean_y = statistics.fmean(log_x), statistics.fmean(log_y)
    spread = sum((x - mean_x) ** 2 for x in log_x)
    if spread == 0:
        raise ValueError("all xs are equal: there is no slope to fit")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(log_x, log_y)) / spread


def crossover_length(lengths, slower_seconds, faster_seconds) -> float | None:
    """The length from which the second method stays faster than the first, interpolated on log-log axes.

    Finds the last point where the time ratio crosses 1 and interpolates log(T) linearly in log(ratio)
    between the two measured lengths around it. ``lengths[0]`` if the second is faster everywhere; None if it
    is not faster at the longest length.
    """
    if not len(lengths) == len(slower_seconds) == len(faster_seconds) or len(lengths) < 2:
        raise ValueError(f"need at least two lengths and one time per length for each method, got "
                         f"{len(lengths)} lengths, {len(slower_seconds)} and {len(faster_seconds)} times")
    log_ratios = [math.log(fast / slow) for slow, fast in zip(slower_seconds, faster_seconds)]  # < 0: faster
    if log_ratios[-1] >= 0:
        return None
    last_behind = max((i for i, r in enumerate(log_ratios) if r >= 0), default=None)
    if last_behind is None:
        return float(lengths[0])
    a, b = math.log(lengths[last_behind]), math.log(lengths[last_behind + 1])
    ra, rb = log_ratios[last_behind], log_ratios[last_behind + 1]
    return math.exp(a + (b - a) * ra / (ra - rb))


def measure_scaling(functions: dict[str, Callable], lengths: Sequence[int], make_inputs: Callable[[int], tuple],
                    repeats: int = 3, memory: bool = True) -> dict[str, dict[str, list]]:
    """Time (median seconds) and peak memory (bytes) of each function at each length.

    ``make_inputs(length)`` returns the arguments, made once per length and shared by all functions, so they
    are measured side by side on the same data. Returns ``{name: {"seconds": [...], "bytes": [...]}}``.
    """
    results = {name: {"seconds": [], "bytes": []} for name in functions}
    for length in lengths:
        inputs = make_inputs(length)
        for name, function in functions.items():
            results[name]["seconds"].append(time_call(function, *inputs, repeats=repeats))
            if memory:
                results[name]["bytes"].append(peak_memory(function, *inputs))
    return results


# ----------------------------------------------------------------------------------------------------------
# Generation with a KV cache
# ----------------------------------------------------------------------------------------------------------

class KVCache:
    """One layer's keys and values of the tokens generated so far, in buffers allocated once.

    ``append`` writes the newest tokens' keys and values in place (no copy of the past, unlike
    ``torch.cat``) and returns views of everything stored so far.
    """

    def __init__(self, batch_size: int, num_kv_heads: int, max_length: int, head_dim: int,
                 dtype: torch.dtype = torch.float32):
        _require_counts(batch_size=batch_size, num_kv_heads=num_kv_heads, max_length=max_length, head_dim=head_dim)
        self.keys = torch.zeros(batch_size, num_kv_heads, max_length, head_dim, dtype=dtype)  # (B, Hkv, L, D)
        self.values = torch.zeros_like(self.keys)  # (B, Hkv, L, D)
        self.length = 0

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store keys and values (B, Hkv, t, D) of t new tokens; return all stored so far, (B, Hkv, length, D)."""
        new = keys.shape[-2]
        if self.length + new > self.keys.shape[-2]:
            raise ValueError(f"the cache holds {self.keys.shape[-2]} tokens; {self.length} are stored and "
                             f"{new} more do not fit")
        self.keys[:, :, self.length:self.length + new] = keys  # (B, Hkv, t, D) written in place
        self.values[:, :, self.length:self.length + new] = values
        self.length += new
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]  # (B, Hkv, length, D) views

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values stored so far."""
        return 2 * self.keys[:, :, :self.length].numel() * self.keys.element_size()


def decode_step(layer: MultiHeadAttention, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """One generation step with a cache: the newest token (B, 1, E) attends to itself and every earlier token.

    Only the new token is projected; earlier keys and values come from the cache. No mask is needed: all
    stored tokens are in the past.
    """
    queries = split_heads(layer.query(token), layer.num_heads)  # (B, H, 1, D)
    new_keys = split_heads(layer.key(token), layer.num_kv_heads)  # (B, Hkv, 1, D)
    new_values = split_heads(layer.value(token), layer.num_kv_heads)  # (B, Hkv, 1, D)
    keys, values = cache.append(new_keys, new_values)  # (B, Hkv, t, D) each
    attended, _ = grouped_query_attention(queries, keys, values)  # (B, H, 1, D)
    return layer.output(merge_heads(attended))  # (B, 1, E)


def step_without_cache(layer: MultiHeadAttention, tokens: torch.Tensor) -> torch.Tensor:
    """One generation step without a cache: rerun the causal layer on all tokens (B, t, E), keep the last row."""
    output, _ = layer(tokens, attn_mask=causal_mask(tokens.shape[1]))  # (B, t, E): every position recomputed
    return output[:, -1:]  # (B, 1, E)


def decode(layer: MultiHeadAttention, tokens: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
    """Outputs (B, T, E) of a causal layer computed token by token, as generation does, with or without a cache.

    Both equal ``layer(tokens, attn_mask=causal_mask(T))``: a cache changes the cost, never the result.
    """
    require_rank("tokens", tokens, at_least=3, at_most=3)
    batch, length, _ = tokens.shape
    cache = KVCache(batch, layer.num_kv_heads, length, layer.head_dim, dtype=tokens.dtype) if use_cache else None
    outputs = []
    for position in range(length):
        if use_cache:
            outputs.append(decode_step(layer, tokens[:, position:position + 1], cache))  # (B, 1, E)
        else:
            outputs.append(step_without_cache(layer, tokens[:, :position + 1]))  # (B, 1, E)
    return torch.cat(outputs, dim=1)  # (B, T, E)
