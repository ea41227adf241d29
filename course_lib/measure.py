"""Measuring, for every lesson that makes a speed or memory claim (06 to 09) and for the checks that look at
memory: :func:`time_call` (warm-up, repeats, median), :func:`time_in_turns` (contenders timed round by round), :func:`peak_memory` (every CPU allocation torch makes,
replayed from its profiler), :func:`largest_intermediate` (the biggest tensor an operation returned),
:func:`fit_slope` (the exponent of a power law), :func:`crossover_length`, :func:`measure_scaling` (side by
side, on the same inputs), :func:`cache_bytes` (where timing curves bend) and :func:`format_bytes`.

Lessons: notebooks/06_the_cost_of_attention.ipynb, notebooks/07_sparse_attention.ipynb,
notebooks/08_flash_attention.ipynb, notebooks/09_linear_attention.ipynb. Tests: tests/test_measure.py.
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from typing import Callable, Sequence

FALLBACK_CACHE_BYTES = 32 * 2**20  # when the machine does not say: a typical laptop or server L3


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



def time_call(function: Callable, *args, warmup: int = 1, repeats: int = 5, **kwargs) -> float:
    """Median wall-clock seconds of ``function(*args, **kwargs)`` over ``repeats`` calls, after ``warmup`` calls.

    The warm-up calls pay the one-time costs (lazy initialisation, allocator, caches); the median ignores
    the odd slow call caused by another process on the machine.
    """
    return time_in_turns({"call": function}, *args, warmup=warmup, repeats=repeats, **kwargs)["call"]


def time_in_turns(functions: dict, *args, warmup: int = 1, repeats: int = 5, **kwargs) -> dict:
    """Median wall-clock seconds of each of ``functions`` (name -> callable) on the same arguments, timed in
    turns: round r calls every function once. A busy spell on the machine then slows every contender alike,
    so their ratios hold better than when each is timed in one stretch (:func:`time_call`)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for _ in range(warmup):
        for function in functions.values():
            function(*args, **kwargs)
    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function(*args, **kwargs)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def peak_memory(function: Callable, *args, **kwargs) -> int:
    """Peak bytes that torch's CPU allocator held for ``function(*args, **kwargs)``, above what was live before.

    Torch's profiler with ``profile_memory=True`` records every allocation and free with its size and time;
    replaying them in time order gives the bytes alive at each moment, and the peak is their maximum. The
    returned tensors count (they are still alive at the end); tensors created before the call do not. This
    sees what the process's resident size cannot: memory that was freed and reused within the call.
    """
    import torch
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


def largest_intermediate(function: Callable, *args, **kwargs) -> int:
    """The most numbers held by any one tensor that an operation inside ``function(*args, **kwargs)`` returned.

    Every torch operation passes through a dispatch mode, which sees each result's size: a function that builds
    a (T, S) matrix, even one freed at once, shows it here.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            for item in result if isinstance(result, (tuple, list)) else (result,):
                if isinstance(item, torch.Tensor):
                    Largest.numel = max(Largest.numel, item.numel())
            return result

    with Largest():
        function(*args, **kwargs)
    return Largest.numel
