"""The lesson manifest: one row per lesson, naming what makes it up.

Each lesson is three notebooks (``notebooks/``, ``solutions/`` and the generated ``exercises/``, all named by
its ``stem``), the library modules it teaches with and their tests, the graded functions of its exercise, and
its explorers. Its checks, their fixtures and its widgets are named after the stem too:
``course_lib/checks/l<stem>.py`` (or, when its mistakes make it long, a package ``course_lib/checks/l<stem>/``
whose ``mistakes.py`` holds the mistake simulators), ``tests/checks/test_l<stem>.py``, ``course_lib/widgets/l<stem>.py``.

``tests/test_manifest.py`` checks every row against the files: adding a lesson is one row here plus the files
it names, and that test says what is still missing (a notebook, a check, a fixture that triggers a diagnosis,
a docstring's backlink, a link on the start page).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    stem: str  # "07_sparse_attention": notebooks/07_sparse_attention.ipynb, and the same in solutions/, exercises/
    title: str
    modules: tuple[str, ...]  # the course_lib modules the lesson teaches with (their docstrings name the lesson)
    checks: tuple[str, ...]  # the graded functions of its exercise, in order: the checks in checks_module
    widgets: tuple[str, ...]  # the explorers its notebook shows, from widgets_module
    tests: tuple[str, ...]  # the test files that prove its modules
    note: str = ""  # what a reader would otherwise wonder about the row

    @property
    def number(self) -> int:
        return int(self.stem[:2])

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.stem}.ipynb"

    @property
    def checks_module(self) -> str:
        return f"course_lib.checks.l{self.stem}"

    @property
    def widgets_module(self) -> str | None:
        return f"course_lib.widgets.l{self.stem}" if self.widgets else None

    @property
    def checks_tests(self) -> str:
        """The check fixtures: wrong solutions with their diagnoses, and right solutions written differently."""
        return f"tests/checks/test_l{self.stem}.py"


LESSONS = (
    Lesson("01_attention_by_hand", "Attention by hand", ("course_lib.numpy_attention", "course_lib.trophy"),
           ("softmax", "attention_scores", "scaled_dot_product_attention"), ("attention_explorer",),
           ("tests/test_numpy_attention.py", "tests/test_examples.py")),
    Lesson("02_masks_and_stability", "Masks and numerical stability", ("course_lib.numpy_attention",),
           ("causal_mask", "padding_mask", "masked_attention"), ("mask_explorer",), ("tests/test_numpy_attention.py",)),
    Lesson("03_self_attention_in_pytorch", "Self-attention in PyTorch", ("course_lib.attention", "course_lib.toy_tasks"),
           ("sdpa", "SelfAttention"), ("training_explorer",),
           ("tests/test_attention_torch.py", "tests/test_examples.py")),
    Lesson("04_multihead_attention", "Multi-head attention", ("course_lib.multihead", "course_lib.induction"),
           ("split_heads", "merge_heads", "MultiHeadAttention"), ("heads_explorer",),
           ("tests/test_multihead.py", "tests/test_induction.py")),
    Lesson("05_positions", "Positions: sinusoidal and RoPE", ("course_lib.positional",),
           ("sinusoidal_encoding", "apply_rope"), ("positions_explorer",), ("tests/test_positional.py",)),
    Lesson("06_the_cost_of_attention", "The cost of attention",
           ("course_lib.cost", "course_lib.multihead", "course_lib.measure"),
           ("attention_flops", "kv_cache_bytes", "grouped_query_attention"), ("context_explorer",),
           ("tests/test_cost.py", "tests/test_multihead.py", "tests/test_measure.py"),
           note="grouped_query_attention is in course_lib.multihead, not cost: lesson 04's MultiHeadAttention "
                "(num_kv_heads=...) is built on it, and cost imports multihead. The measuring helpers, shared by "
                "lessons 06 to 09, are course_lib.measure."),
    Lesson("07_sparse_attention", "Sparse attention", ("course_lib.sparse", "course_lib.measure"),
           ("sliding_window_mask", "strided_mask", "sliding_window_attention"), ("sparse_explorer",),
           ("tests/test_sparse.py", "tests/test_measure.py")),
    Lesson("08_flash_attention", "Flash attention", ("course_lib.flash", "course_lib.measure"),
           ("online_softmax_update", "flash_attention"), ("online_softmax_explorer",),
           ("tests/test_flash.py", "tests/test_measure.py")),
    Lesson("09_linear_attention", "Linear attention", ("course_lib.linear", "course_lib.measure"),
           ("elu_feature_map", "linear_attention", "causal_linear_attention", "positive_random_features"),
           ("recurrent_state_explorer",), ("tests/test_linear.py", "tests/test_measure.py")),
    Lesson("10_capstone", "The capstone: your attention inside a real language model", ("course_lib.llama",),
           ("cached_attention", "window_with_sinks_mask", "rotate_half_order"), ("generation_explorer",),
           ("tests/test_llama.py", "tests/test_llama_heads.py", "tests/test_positional.py")),
)
