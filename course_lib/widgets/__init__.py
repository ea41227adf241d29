"""Widgets for the lessons, one module per lesson (``l01_attention_by_hand`` … ``l10_capstone``, named
like the lessons' notebooks), on the shared figure machinery of :mod:`course_lib.widgets.figures`.

In each, a pure ``*_view`` function takes the controls' values and returns plain data (unit-tested
headlessly); the ``*_explorer`` builder draws its figure once, and its ``update`` puts a new view into it.
Notebooks call them from here: ``widgets.mask_explorer()``.
"""
from __future__ import annotations

from course_lib.widgets.figures import blank_figure, interactive_figure, new_figure, render_png, time_updates
from course_lib.widgets.l01_attention_by_hand import attention_explorer, attention_view
from course_lib.widgets.l02_masks_and_stability import mask_explorer, mask_view
from course_lib.widgets.l03_self_attention_in_pytorch import training_explorer, training_view
from course_lib.widgets.l05_positions import positions_explorer, positions_view
from course_lib.widgets.l04_multihead_attention import heads_explorer, heads_view
from course_lib.widgets.l06_the_cost_of_attention import context_explorer, context_view
from course_lib.widgets.l07_sparse_attention import pattern_mask, sparse_explorer, SPARSE_PATTERNS, sparse_view
from course_lib.widgets.l08_flash_attention import online_softmax_explorer, online_softmax_view
from course_lib.widgets.l09_linear_attention import recurrent_state_explorer, recurrent_state_view
from course_lib.widgets.l10_capstone import generation_explorer, generation_view
