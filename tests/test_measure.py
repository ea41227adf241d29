"""The measuring helpers (course_lib/measure.py): what they count, never how fast this machine is.

No wall-clock assertion: timing is checked by what ``time_call`` calls and which of its timings it reports,
memory by tensors of known size.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import cost, measure


def test_format_bytes_uses_powers_of_1024():
    assert [measure.format_bytes(n) for n in (512, 1536, 2 * 2**30)] == ["512 B", "1.5 KiB", "2 GiB"]


@pytest.mark.parametrize("call, message", [
    (lambda: measure.time_call(print, repeats=0), "repeats >= 1"),
    (lambda: measure.fit_slope([1, 2], [1]), "at least two"),
    (lambda: measure.fit_slope([1, 1], [2, 3]), "all xs are equal"),
    (lambda: measure.fit_slope([0, 1], [2, 3]), "positive xs and ys"),
])
def test_bad_input_raises_a_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 3.0), st.floats(0.1, 100.0), st.lists(st.integers(1, 10**6), min_size=2, max_size=8, unique=True))
def test_fit_slope_recovers_the_exponent_of_a_power_law(exponent, factor, xs):
    ys = [factor * x ** exponent for x in xs]
    assert abs(measure.fit_slope(xs, ys) - exponent) < 1e-9


def test_time_call_warms_up_then_reports_the_median_of_the_repeats(monkeypatch):
    calls = []
    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # three repeats of 1, 3 and 2 seconds: the median is 2
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(ticks))
    seconds = measure.time_call(lambda x: calls.append(x), "hi", warmup=2, repeats=3)
    assert calls == ["hi"] * 5 and seconds == 2.0


def test_time_in_turns_calls_each_contender_once_per_round_and_reports_each_median(monkeypatch):
    calls = []
    # warm-up a, b; then rounds (a, b): a takes 1, 5, 2 s (median 2), b takes 4, 3, 9 s (median 4)
    ticks = iter([0.0, 1.0, 1.0, 5.0, 10.0, 15.0, 15.0, 18.0, 20.0, 22.0, 22.0, 31.0])
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(ticks))
    seconds = measure.time_in_turns({"a": lambda x: calls.append(("a", x)), "b": lambda x: calls.append(("b", x))},
                                    1, repeats=3)
    assert calls == [("a", 1), ("b", 1)] * 4 and seconds == {"a": 2.0, "b": 4.0}
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure.time_in_turns({"a": print}, repeats=0)


def test_peak_memory_sees_allocations_even_when_freed():
    def temporary_then_small():
        big = torch.ones(1_000_000)  # 4 MB, freed before returning
        del big
        return torch.ones(1000)  # 4 kB, still alive at the end

    peak = measure.peak_memory(temporary_then_small)
    assert 4_000_000 <= peak < 4_000_000 + 100_000  # the freed 4 MB were seen; little else
    inputs = torch.ones(1_000_000)
    assert measure.peak_memory(lambda x: x.sum(), inputs) < 100_000  # tensors made before the call do not count


def test_peak_memory_of_naive_attention_holds_the_score_matrix():
    from course_lib.attention import scaled_dot_product_attention

    x = torch.randn(1, 512, 16)
    peak = measure.peak_memory(scaled_dot_product_attention, x, x, x)
    assert peak >= cost.score_matrix_bytes(512, 512)  # at least one (T, S) float32 matrix


def test_largest_intermediate_sees_a_tensor_freed_inside_the_call():
    def builds_then_drops(x):
        big = x[:, None] * x[None, :]  # (100, 100), dropped at once
        return big.sum() + x  # (100,)

    assert measure.largest_intermediate(builds_then_drops, torch.ones(100)) == 100 * 100
    assert measure.largest_intermediate(lambda x: x + 1, torch.ones(7)) == 7


def test_measure_scaling_returns_one_value_per_length_and_function():
    results = measure.measure_scaling({"ones": torch.ones}, [10, 100], lambda n: (n, n), repeats=1)
    assert len(results["ones"]["seconds"]) == 2
    assert results["ones"]["bytes"][1] == 100 * 100 * 4 > results["ones"]["bytes"][0]


def test_cache_size_is_read_from_the_machine_or_falls_back(monkeypatch, tmp_path):
    assert measure.cache_bytes() >= 2**15
    real_open = open

    def sys_cache(path, *args, **kwargs):  # a machine whose L2 is 1 MiB and L3 is 8 MiB
        sizes = {"index2": "1024K", "index3": "8M"}
        for index, size in sizes.items():
            if f"/{index}/size" in str(path):
                file = tmp_path / index
                file.write_text(size)
                return real_open(file, *args, **kwargs)
        raise OSError(path)

    monkeypatch.setattr("builtins.open", sys_cache)
    assert measure.cache_bytes() == 8 * 2**20
    monkeypatch.setattr("builtins.open", lambda *args, **kwargs: (_ for _ in ()).throw(OSError()))
    monkeypatch.setattr(measure.os, "sysconf", lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert measure.cache_bytes() == measure.FALLBACK_CACHE_BYTES


def test_crossover_length_interpolates_on_log_log_axes():
    lengths = [100, 200, 400, 800]
    quadratic = [n**2 for n in lengths]
    assert measure.crossover_length(lengths, quadratic, [300 * n for n in lengths]) == pytest.approx(300)
    assert measure.crossover_length(lengths, quadratic, [1.0] * 4) == 100  # faster everywhere
    assert measure.crossover_length(lengths, quadratic, [10**9] * 4) is None  # never faster
    # a noisy dip below 1 before the real crossover does not count: the last crossing does
    expected = 200 * 2 ** (math.log(1.25) / math.log(2.5))  # ratio 1.25 at 200, 0.5 at 400: log-linear between
    assert measure.crossover_length(lengths, [1, 4, 16, 64], [0.5, 5, 8, 8]) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least two lengths"):
        measure.crossover_length([100], [1], [1])
