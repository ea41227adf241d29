"""course_lib: the shared library of the course "Self-Attention from Scratch".

Modules mirror the lessons:

* :mod:`course_lib.numpy_attention` — lessons 01-02, attention and masks by hand in numpy;
* :mod:`course_lib.trophy` — the running example, hand-built embeddings that resolve "it";
* :mod:`course_lib.attention` — lesson 03 onwards, attention in PyTorch (proven equal to torch's own);
* :mod:`course_lib.multihead` — lesson 04, multi-head attention (proven equal to torch's module), and
  grouped-query attention for lesson 06;
* :mod:`course_lib.induction` — lesson 04, a tiny attention-only transformer whose heads specialise;
* :mod:`course_lib.positional` — lesson 05, sinusoidal encodings and RoPE;
* :mod:`course_lib.cost` — lesson 06, what attention costs: formulas, timing and peak memory, the KV cache;
* :mod:`course_lib.sparse` — lesson 07, sparse patterns and banded sliding-window attention;
* :mod:`course_lib.flash` — lesson 08, flash attention: the online softmax, tiles, memory traffic;
* :mod:`course_lib.linear` — lesson 09, linear attention: the kernel view, attention as an RNN, random features;
* :mod:`course_lib.toy_tasks` — small synthetic tasks that train on a CPU in seconds;

and the machinery: :mod:`course_lib.checks` (learner checks) on :mod:`course_lib.checking`,
:mod:`course_lib.release` (exercises from solutions), :mod:`course_lib.widgets` and :mod:`course_lib.plots`,
:mod:`course_lib.validation` (clear errors for bad input).
"""

__version__ = "0.1.0"
