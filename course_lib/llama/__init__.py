"""Lesson 10's model: SmolLM2-135M-Instruct, a real pretrained Llama, offline on a CPU, in plain torch.

    from course_lib import llama
    model = llama.load()                                   # float32, from the GGUF fetched at set-up
    ids = torch.tensor([model.tokenizer.encode("The capital of France is")])   # (1, T)
    model(ids)                                             # logits (1, T, 49152)
    model.generate(ids, 20, attention=my_sdpa)             # your attention in every layer
    llama.chat(model, "What is the capital of France?")    # the answer, as a string

Modules: :mod:`~course_lib.llama.files` (where the model comes from, and the one download),
:mod:`~course_lib.llama.weights` (GGUF to float32), :mod:`~course_lib.llama.tokenizer` (byte-level BPE),
:mod:`~course_lib.llama.model` (the decoder, its attention hook and KV cache),
:mod:`~course_lib.llama.heads` (recording, scoring and silencing heads), :mod:`~course_lib.llama.texts` (a story).

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

from pathlib import Path

import torch

from course_lib.llama import files
from course_lib.llama.files import fetch, model_path
from course_lib.llama.model import (KVCache, Llama, bottom_right_mask, cached_attention, generation_speed,
                                    in_rotate_half_layout, masked, perplexity, torch_attention, window_with_sinks_mask)
from course_lib.llama.tokenizer import Tokenizer
from course_lib.llama.weights import Config, read

__all__ = ["Config", "KVCache", "Llama", "Tokenizer", "bottom_right_mask", "cached_attention", "chat", "fetch",
           "generation_speed", "in_rotate_half_layout", "load", "masked", "model_path", "perplexity", "torch_attention",
           "window_with_sinks_mask"]


def load(path: str | Path | None = None) -> Llama:
    """The model in float32, with its tokenizer, from the fetched GGUF (or ``path``)."""
    path = Path(path) if path is not None else model_path()
    if path == files.default_path() and path.stat().st_size != files.GGUF_BYTES:
        raise ValueError(f"{path} is not the model this course was tested with ({files.GGUF_BYTES} bytes, got "
                         f"{path.stat().st_size}): delete it and run `python -m course_lib.llama fetch` again")
    try:
        config, weights, reader = read(path)
    except (ValueError, KeyError, IndexError, OSError) as error:
        if "Llama" in str(error) or "llama" in str(error):
            raise
        raise ValueError(f"{path} could not be read as a GGUF model ({type(error).__name__}: {error}); if it is the "
                         f"course's copy, delete it and run `python -m course_lib.llama fetch` again") from None
    return Llama(config, weights, Tokenizer(reader))


def chat(model: Llama, question: str, max_new_tokens: int = 64, **generate) -> str:
    """The model's answer to ``question`` in its chat template, greedy unless ``generate`` says otherwise."""
    prompt = torch.tensor([model.tokenizer.encode(model.tokenizer.chat_prompt(question))])  # (1, T)
    ids = model.generate(prompt, max_new_tokens, **generate)  # (1, T + n)
    return model.tokenizer.decode(ids[0, prompt.shape[1]:], skip_special=True).strip()
