"""course_lib: the shared library of the course "Self-Attention from Scratch".

Modules mirror the lessons:

* :mod:`course_lib.numpy_attention` — lessons 01-02, attention and masks by hand in numpy;
* :mod:`course_lib.trophy` — the running example, hand-built embeddings that resolve "it";
* :mod:`course_lib.attention` — lesson 03 onwards, attention in PyTorch (proven equal to torch's own);
* :mod:`course_lib.multihead` — lesson 04, multi-head attention (proven equal to torch's module), and
  grouped-query attention for lesson 06;
* :mod:`course_lib.induction` — lesson 04, a tiny attention-only transformer whose heads specialise;
* :mod:`course_lib.positional` — lesson 05, sinusoidal encodings and RoPE;
* :mod:`course_lib.cost` — lesson 06, what attention costs: the formulas and the KV cache;
* :mod:`course_lib.measure` — lessons 06-09, timing, peak memory and slope fits, measured side by side;
* :mod:`course_lib.sparse` — lesson 07, sparse patterns and banded sliding-window attention;
* :mod:`course_lib.flash` — lesson 08, flash attention: the online softmax, tiles, memory traffic;
* :mod:`course_lib.linear` — lesson 09, linear attention: the kernel view, attention as an RNN, random features;
* :mod:`course_lib.llama` — lesson 10, a real pretrained Llama (SmolLM2-135M) that runs your attention;
* :mod:`course_lib.toy_tasks` — small synthetic tasks that train on a CPU in seconds;

and per lesson, named after its notebooks: :mod:`course_lib.checks` (one module of learner checks per lesson,
on the machinery of :mod:`course_lib.checking`) and :mod:`course_lib.widgets` (one module of explorers per
lesson, on :mod:`course_lib.widgets.figures` and :mod:`course_lib.plots`). :mod:`course_lib.lessons` is the
manifest that ties each lesson to all of these. Also: :mod:`course_lib.release` (exercises from solutions),
:mod:`course_lib.grading` (the sandboxed grader), :mod:`course_lib.calling` and :mod:`course_lib.validation`
(clear errors for bad input).
"""

__version__ = "0.1.0"
