"""Benchmark (lesson 10): SmolLM2-135M on this CPU, with and without the KV cache, and with flash attention.

    python benchmarks/llama.py                      # 256 generated tokens, prefill of 1024, 1 and 2 threads
    python benchmarks/llama.py --tokens 64 --threads 1

Prints, in one run:
  * tokens per second generating ``--tokens`` tokens greedily after a short prompt, with the KV cache (each
    step runs one token) and without it (each step reruns the whole sequence), and their ratio;
  * prefill time of a 1024-token text with torch's fused kernel and with course_lib.flash.flash_attention
    (pure PyTorch tiles) in every layer, and their ratio, for each thread count, timed in turns.
Targets: the cache at least 5x faster at 256 tokens; flash prefill within 1.5x of torch's kernel.
"""
from __future__ import annotations

import argparse
import functools

import torch

from course_lib import flash, llama, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--prefill", type=int, default=1024)
    parser.add_argument("--block-size", type=int, default=flash.DEFAULT_BLOCK_SIZE)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = llama.load()
    prompt = torch.tensor([model.tokenizer.encode("Once upon a time, in a small village by the sea,")])  # (1, T)
    text = torch.randint(100, model.config.vocab_size, (1, args.prefill), generator=torch.Generator().manual_seed(0))
    flash_attention = functools.partial(flash.flash_attention, block_size=args.block_size)
    contenders = {"torch SDPA (fused)": lambda ids: model(ids),
                  f"flash (block {args.block_size})": lambda ids: model(ids, attention=flash_attention)}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            print(f"{threads} thread(s):")
            _, cached = llama.generation_speed(model, prompt, args.tokens, cache=True)
            _, uncached = llama.generation_speed(model, prompt, args.tokens, cache=False)
            print(f"  generating {args.tokens} tokens: {cached:.1f} tokens/s with the KV cache, {uncached:.1f} without:"
                  f" the cache is {cached / uncached:.1f}x faster (target: >= 5)")
            seconds = measure.time_in_turns(contenders, text, repeats=args.repeats)
        for name, value in seconds.items():
            print(f"  prefill of {args.prefill} tokens, {name:20} {value * 1000:8.0f} ms")
        ratio = seconds[f"flash (block {args.block_size})"] / seconds["torch SDPA (fused)"]
        print(f"  flash / torch SDPA prefill time: {ratio:.2f} (target: <= 1.5)")


if __name__ == "__main__":
    main()
