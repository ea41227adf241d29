"""Make tests/reference/llama_reference.json: token ids, logits and greedy tokens of SmolLM2-135M-Instruct from an
independent implementation, Hugging Face transformers' GGUF loader, which tests/test_llama.py compares with
course_lib.llama. transformers is not a dependency of the course; run this in a scratch environment:

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch==2.13.0 transformers gguf accelerate
    /tmp/refenv/bin/python tests/reference/make_llama_reference.py .venv/share/self-attention-course/SmolLM2-135M-Instruct.Q4_1.gguf

Made with transformers 5.24.0, torch 2.13.0, gguf 0.19.0. It reads only the local file (HF_HUB_OFFLINE=1).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "In 1969, 3 astronauts flew to the Moon 🚀 and   back.",
    "<|im_start|>user\nThe trophy would not fit in the suitcase because it was too big. What was too big?<|im_end|>\n"
    "<|im_start|>assistant\n",
]
TOP = 10  # the logits kept per position: the reference's 10 largest, with their token ids
GREEDY = 12  # greedy tokens after each prompt


def main(gguf: str) -> None:
    path = Path(gguf).resolve()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.eval()
    cases = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]  # (T, vocab)
            greedy = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY, do_sample=False)[0, len(ids):]
        top = logits.topk(TOP, dim=-1)
        cases.append({"prompt": prompt, "ids": ids, "top_ids": top.indices.tolist(),
                      "top_logits": [[round(v, 5) for v in row] for row in top.values.tolist()],
                      "greedy": greedy.tolist()})
    made_with = {"transformers": transformers.__version__, "torch": torch.__version__}
    out = Path(__file__).with_name("llama_reference.json")
    out.write_text(json.dumps({"made_with": made_with, "top": TOP, "cases": cases}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
