"""The mistakes of lesson 05's checks, as code: what each wrong solution computes (its simulator, for
``like``) and the predicates that recognise it. Used by :mod:`course_lib.checks.l05_positions`; triggered by the WRONG
fixtures of tests/checks/test_l05_positions.py.
"""
from __future__ import annotations

from course_lib.checking import close, like


BASE = 10000.0


def _right_frequencies(dim, base=BASE):
    import torch

    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,): 10000^(−2i/D)


def _pair_index_frequencies(dim):
    import torch

    return BASE ** (-torch.arange(dim // 2, dtype=torch.float64) / dim)  # (D/2,): i/D, half the right exponent


def _doubled_exponent_frequencies(dim):
    import torch

    return BASE ** (-2 * torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,): 2·(2i)/D, the 2 twice


def _inverted_frequencies(dim):
    import torch

    return BASE ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,): 10000^(+2i/D), the sign lost


def _tensor2tensor_frequencies(dim):
    """tensor2tensor's and fairseq's spacing: exponent i/(D/2 − 1), so that the last pair is exactly 1/10000."""
    import torch

    return BASE ** (-torch.arange(dim // 2, dtype=torch.float64) / max(dim // 2 - 1, 1))  # (D/2,)


def _fitted_base(frequency, pair, dim):
    """The base b for which pair ``pair`` turns by ``frequency`` = b^(−2·pair/D) radians per position."""
    if not 0 < frequency < 1 or pair < 1:  # a base of 1 or less is no base: all pairs equally fast, or faster
        return None
    return frequency ** (-dim / (2 * pair))


def _positions(num_positions, first=0):
    import torch

    return torch.arange(first, first + num_positions, dtype=torch.float64)[:, None]  # (P, 1)


def _interleaved(even_features, odd_features):
    """Two (P, dim/2) halves woven into (P, dim): feature 2i from the first, feature 2i+1 from the second."""
    import torch

    encoding = torch.zeros(even_features.shape[0], 2 * even_features.shape[1], dtype=torch.float64)  # (P, dim)
    encoding[:, 0::2], encoding[:, 1::2] = even_features, odd_features
    return encoding.float()


def _sin_cos_interleaved(angles):
    import torch

    return _interleaved(torch.sin(angles), torch.cos(angles))  # (P, dim)


def _cos_on_even_features(num_positions, dim):
    """sin and cos swapped: cos on the even features, sin on the odd ones."""
    import torch

    angles = _positions(num_positions) * _right_frequencies(dim)  # (P, dim/2)
    return _interleaved(torch.cos(angles), torch.sin(angles))  # (P, dim)


def _sines_then_cosines(num_positions, dim):
    """tensor2tensor's layout with the paper's frequencies: all sines first, then all cosines."""
    import torch

    angles = _positions(num_positions) * _right_frequencies(dim)  # (P, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()  # (P, dim)


def _tensor2tensor_timing_signal(num_positions, dim):
    """tensor2tensor's get_timing_signal_1d (and fairseq's sinusoidal embedding): sines then cosines, spacing
    i/(D/2 − 1)."""
    import torch

    angles = _positions(num_positions) * _tensor2tensor_frequencies(dim)  # (P, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()  # (P, dim)


def _cosines_then_sines(num_positions, dim):
    """All cosines first, then all sines (diffusers' timestep embedding with flip_sin_to_cos)."""
    import torch

    angles = _positions(num_positions) * _right_frequencies(dim)  # (P, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).float()  # (P, dim)


def _cosines_then_sines_tensor2tensor_spacing(num_positions, dim):
    """All cosines, then all sines, with the spacing i/(D/2 − 1) (diffusers' default timestep embedding)."""
    import torch

    angles = _positions(num_positions) * _tensor2tensor_frequencies(dim)  # (P, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).float()  # (P, dim)


def _concatenated(case, got, expected) -> bool:
    """Sines and cosines in two blocks, in either order, with either spacing of the exponents."""
    return any(like(simulator)(case, got, expected) for simulator in (
        _sines_then_cosines, _tensor2tensor_timing_signal, _cosines_then_sines,
        _cosines_then_sines_tensor2tensor_spacing))


def _one_function_for_both(num_positions, dim):
    """sin on the odd features too (or cos on the even ones): the same function for both features of a pair."""
    import torch

    angles = _positions(num_positions) * _right_frequencies(dim)  # (P, dim/2)
    return _interleaved(torch.sin(angles), torch.sin(angles)), _interleaved(torch.cos(angles), torch.cos(angles))


def _same_function_twice(case, got, expected) -> bool:
    from course_lib.checking.comparing import close

    return any(close(got, same, rtol=1e-3, atol=1e-4) for same in _one_function_for_both(*case.args))


def _batch_axis_added(case, got, expected) -> bool:
    """The right table with an extra axis of size 1: (1, P, dim) like the Annotated Transformer's buffer, or
    (P, 1, dim) like the PyTorch tutorial's."""
    shape = tuple(getattr(got, "shape", ()))
    return (len(shape) > 2 and 1 in shape and shape != tuple(expected.shape)
            and close(got.reshape(expected.shape), expected, rtol=1e-3, atol=1e-4))


def _sinusoidal_transposed(num_positions, dim):
    """(dim, num_positions): the right numbers, rows and columns swapped."""
    return _sinusoidal_with(_right_frequencies)(num_positions, dim).T  # (dim, P)


def _sinusoidal_with(frequencies):
    """A simulator: the paper's layout, with pair i turning by ``frequencies(dim)[i]`` per position."""

    def encoding(num_positions, dim):
        return _sin_cos_interleaved(_positions(num_positions) * frequencies(dim))  # (P, dim)

    encoding.__name__ = f"sinusoidal_with_{frequencies.__name__.strip('_')}"
    return encoding


def _sinusoidal_inverted(case, got, expected) -> bool:
    """Frequencies 10000^(+2i/dim): compared where the angles stay below 100 radians, since beyond that a
    learner's float32 angles (sin of 9000 radians) and float64 ones disagree by more than round-off."""
    import torch

    from course_lib.checking.comparing import close, to_numpy

    num_positions, dim = case.args
    angles = _positions(num_positions) * _inverted_frequencies(dim)  # (P, dim/2)
    small = (angles < 100).repeat_interleave(2, dim=-1)  # (P, dim): both features of a pair
    try:
        encoding = torch.as_tensor(to_numpy(got), dtype=torch.float64)  # (P, dim)
    except Exception:
        return False
    simulated = _sin_cos_interleaved(angles).to(torch.float64)  # (P, dim)
    return encoding.shape == simulated.shape and close(encoding[small], simulated[small], rtol=1e-3, atol=1e-4)


def _sinusoidal_positions_from_one(num_positions, dim):
    """Positions 1..P instead of 0..P−1."""
    return _sin_cos_interleaved(_positions(num_positions, first=1) * _right_frequencies(dim))  # (P, dim)


def _sinusoidal_own_feature_index(num_positions, dim):
    """Feature j divided by 10000^(j/dim) with its own index j: the odd feature 2i+1 uses (2i+1)/dim."""
    import torch

    features = torch.arange(dim, dtype=torch.float64)  # (dim,)
    angles = _positions(num_positions) / BASE ** (features / dim)  # (P, dim)
    return torch.where(features % 2 == 0, torch.sin(angles), torch.cos(angles)).float()  # (P, dim)


def _sinusoidal_own_feature_index_doubled(num_positions, dim):
    """Feature j divided by 10000^(2j/dim) with its own index j."""
    import torch

    features = torch.arange(dim, dtype=torch.float64)  # (dim,)
    angles = _positions(num_positions) / BASE ** (2 * features / dim)  # (P, dim)
    return torch.where(features % 2 == 0, torch.sin(angles), torch.cos(angles)).float()  # (P, dim)


def _own_feature_index(case, got, expected) -> bool:
    return (like(_sinusoidal_own_feature_index)(case, got, expected)
            or like(_sinusoidal_own_feature_index_doubled)(case, got, expected))


def _sinusoidal_exponent_of_the_position(num_positions, dim):
    """The position in the exponent, where the pair index belongs: p / 10000^(2p/dim) for every pair."""
    import torch

    positions = _positions(num_positions)  # (P, 1)
    angles = (positions / BASE ** (2 * positions / dim)).expand(num_positions, dim // 2)  # (P, dim/2)
    return _sin_cos_interleaved(angles)  # (P, dim)


def _learner_angles(got):
    """(P, dim/2): the angle of each pair, read from an interleaved (sin, cos) encoding; None if it is not one
    (a pair off the unit circle, or not sin 0 and cos 1 at position 0)."""
    import torch

    from course_lib.checking.comparing import to_numpy

    encoding = torch.as_tensor(to_numpy(got), dtype=torch.float64)  # (P, dim)
    if encoding.ndim != 2 or encoding.shape[1] % 2 or not bool(torch.isfinite(encoding).all()):
        return None
    sines, cosines = encoding[:, 0::2], encoding[:, 1::2]  # (P, dim/2) each
    on_circle = torch.allclose(sines ** 2 + cosines ** 2, torch.ones_like(sines), atol=1e-3)
    starts_at_zero = torch.allclose(sines[0], torch.zeros_like(sines[0]), atol=1e-4)
    if not (on_circle and starts_at_zero):
        return None
    return torch.atan2(sines, cosines)  # (P, dim/2)


def _sinusoidal_other_base(case, got, expected) -> bool:
    """The paper's formula with another base than 10000 (1000, 100, …): fitted from pair 1 at position 1."""
    num_positions, dim = case.args
    angles = _learner_angles(got)
    if angles is None or num_positions < 2 or dim < 4:
        return False
    base = _fitted_base(float(angles[1, 1]), 1, dim)
    if base is None or abs(base - BASE) < 1:
        return False

    def frequencies_of_that_base(dim):
        return _right_frequencies(dim, base)  # (D/2,)

    return like(_sinusoidal_with(frequencies_of_that_base))(case, got, expected)


def _wrong_speeds(case, got, expected) -> bool:
    """The layout is right (each pair a point on the unit circle, sin 0 and cos 1 at position 0), the speeds
    are not."""
    return _learner_angles(got) is not None


def _cos_and_sin(x, positions, frequencies):
    """cos θ and sin θ of each position's angles θ = position · ω_i, in x's dtype."""
    import torch

    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * frequencies  # (T, D/2)
    return torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)  # (T, D/2) each


def _rotate_interleaved_pairs(x, cos, sin):
    """Each pair (x[2i], x[2i+1]) rotated: (a, b) -> (a·cos − b·sin, a·sin + b·cos)."""
    import torch

    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    rotated = torch.empty_like(x)  # (..., T, D)
    rotated[..., 0::2] = even * cos - odd * sin
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def _rope_with(frequencies):
    """A simulator: interleaved pairs, pair i rotated by position · ``frequencies(D)[i]``."""

    def rope(x, positions):
        cos, sin = _cos_and_sin(x, positions, frequencies(x.shape[-1]))  # (T, D/2) each
        return _rotate_interleaved_pairs(x, cos, sin)  # (..., T, D)

    rope.__name__ = f"rope_with_{frequencies.__name__.strip('_')}"
    return rope


def _rotated_the_wrong_way(x, positions):
    """Each pair rotated by −θ instead of θ: the sines' signs flipped."""
    cos, sin = _cos_and_sin(x, positions, _right_frequencies(x.shape[-1]))  # (T, D/2) each
    return _rotate_interleaved_pairs(x, cos, -sin)  # (..., T, D)


def _cos_and_sin_swapped(x, positions):
    """sin where cos belongs and cos where sin belongs: (a, b) -> (a·sin − b·cos, a·cos + b·sin)."""
    cos, sin = _cos_and_sin(x, positions, _right_frequencies(x.shape[-1]))  # (T, D/2) each
    return _rotate_interleaved_pairs(x, sin, cos)  # (..., T, D)


def _rotated_halves(x, positions):
    """Feature i paired with feature i + D/2 (the 'rotate half' layout) instead of with its neighbour."""
    import torch

    dim = x.shape[-1]
    cos, sin = _cos_and_sin(x, positions, _right_frequencies(dim))  # (T, D/2) each
    first, second = x[..., : dim // 2], x[..., dim // 2:]  # (..., T, D/2) each
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)  # (..., T, D)


def _rotated_with_the_new_even(x, positions):
    """The odd feature computed from the even feature already overwritten: a view read after the write."""
    cos, sin = _cos_and_sin(x, positions, _right_frequencies(x.shape[-1]))  # (T, D/2) each
    rotated = x.clone()  # (..., T, D)
    even, odd = rotated[..., 0::2], rotated[..., 1::2]  # (..., T, D/2) each: views of rotated
    rotated[..., 0::2] = even * cos - odd * sin  # even now holds the new values
    rotated[..., 1::2] = even * sin + odd * cos
    return rotated


def _rotated_with_the_new_odd(x, positions):
    """The even feature computed from the odd feature already overwritten (the odd one written first)."""
    cos, sin = _cos_and_sin(x, positions, _right_frequencies(x.shape[-1]))  # (T, D/2) each
    rotated = x.clone()  # (..., T, D)
    even, odd = rotated[..., 0::2], rotated[..., 1::2]  # (..., T, D/2) each: views of rotated
    rotated[..., 1::2] = even * sin + odd * cos  # odd now holds the new values
    rotated[..., 0::2] = even * cos - odd * sin
    return rotated


def _overwritten_before_read(case, got, expected) -> bool:
    return like(_rotated_with_the_new_even)(case, got, expected) or like(_rotated_with_the_new_odd)(case, got,
                                                                                                 expected)


def _positions_ignored(x, positions):
    """Positions 0..T−1 whatever ``positions`` says."""
    import torch

    return _rope_with(_right_frequencies)(x, torch.arange(x.shape[-2]))  # (..., T, D)


def _learner_rope_angles(case, got):
    """(..., T, D/2): the angle by which each interleaved pair of x was turned, or None if some pair changed
    length (then it is not a rotation of interleaved pairs)."""
    import torch

    from course_lib.checking.comparing import to_numpy

    x = case.args[0].to(torch.float64)  # (..., T, D)
    rotated = torch.as_tensor(to_numpy(got), dtype=torch.float64)  # (..., T, D)
    if rotated.shape != x.shape or not bool(torch.isfinite(rotated).all()):
        return None
    a, b = x[..., 0::2], x[..., 1::2]  # (..., T, D/2) each
    c, d = rotated[..., 0::2], rotated[..., 1::2]  # (..., T, D/2) each
    if not torch.allclose(c ** 2 + d ** 2, a ** 2 + b ** 2, rtol=1e-3, atol=1e-4):
        return None
    return torch.atan2(a * d - b * c, a * c + b * d)  # (..., T, D/2)


def _rope_other_base(case, got, expected) -> bool:
    """The right rotation with another base (Llama 3's 500000, or 1000, …): fitted from pair 1 at position 1."""
    x, positions = case.args
    angles = _learner_rope_angles(case, got)
    if angles is None or x.shape[-1] < 4 or 1 not in positions.tolist():
        return False
    row = positions.tolist().index(1)
    base = _fitted_base(float(angles.reshape(-1, *angles.shape[-2:])[0, row, 1]), 1, x.shape[-1])
    if base is None or abs(base - BASE) < 1:
        return False

    def frequencies_of_that_base(dim):
        return _right_frequencies(dim, base)  # (D/2,)

    return like(_rope_with(frequencies_of_that_base))(case, got, expected)


def _wrong_angles(case, got, expected) -> bool:
    """Every interleaved pair keeps its length, so it was rotated: by the wrong angles."""
    return _learner_rope_angles(case, got) is not None
