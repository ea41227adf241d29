"""Learner checks: ``checks.check_<function>(your_function)`` in the cell after each graded exercise.

Each check runs your function on seeded cases (edge cases included), compares with the course's own
implementation, and prints ✅ with what it verified or ❌ with what went wrong and the most likely cause. It
never raises for a learner (under nbgrader a failing check raises its message, so that Validate and the hidden
tests mean something: TEACHERS.md) and returns a :class:`~course_lib.checking.CheckResult` (``passed``, ``points``, ``max_points``,
``message``). The machinery lives in :mod:`course_lib.checking`; the checks live one module per lesson,
``l01_attention_by_hand`` … ``l10_capstone``, named like the lesson's notebooks and tested in
``tests/checks/test_<module>.py``; a lesson with many diagnoses is a package whose ``mistakes.py`` holds the
mistake simulators and the ``__init__`` its cases and checks. ``CHECKS`` maps each graded function's name to its check, lesson by lesson.
"""
from __future__ import annotations

from course_lib.checking import Check
from course_lib.checks import (
    l01_attention_by_hand,
    l02_masks_and_stability,
    l03_self_attention_in_pytorch,
    l04_multihead_attention,
    l05_positions,
    l06_the_cost_of_attention,
    l07_sparse_attention,
    l08_flash_attention,
    l09_linear_attention,
    l10_capstone,
)
from course_lib.checks.l01_attention_by_hand import (check_attention_scores, check_scaled_dot_product_attention,
                                                      check_softmax)
from course_lib.checks.l02_masks_and_stability import check_causal_mask, check_masked_attention, check_padding_mask
from course_lib.checks.l03_self_attention_in_pytorch import check_sdpa, check_SelfAttention
from course_lib.checks.l04_multihead_attention import check_merge_heads, check_MultiHeadAttention, check_split_heads
from course_lib.checks.l05_positions import check_apply_rope, check_sinusoidal_encoding
from course_lib.checks.l06_the_cost_of_attention import (check_attention_flops, check_grouped_query_attention,
                                                          check_kv_cache_bytes)
from course_lib.checks.l07_sparse_attention import (check_sliding_window_attention, check_sliding_window_mask,
                                                     check_strided_mask)
from course_lib.checks.l08_flash_attention import check_flash_attention, check_online_softmax_update
from course_lib.checks.l09_linear_attention import (check_causal_linear_attention, check_elu_feature_map,
                                                     check_linear_attention, check_positive_random_features)
from course_lib.checks.l10_capstone import check_cached_attention, check_rotate_half_order, check_window_with_sinks_mask

LESSON_MODULES = (l01_attention_by_hand, l02_masks_and_stability, l03_self_attention_in_pytorch,
                  l04_multihead_attention, l05_positions, l06_the_cost_of_attention, l07_sparse_attention,
                  l08_flash_attention, l09_linear_attention, l10_capstone)

CHECKS: dict[str, Check] = {check.name: check for module in LESSON_MODULES for check in module.CHECKS}

__all__ = ["CHECKS", "LESSON_MODULES", *(f"check_{name}" for name in CHECKS)]
