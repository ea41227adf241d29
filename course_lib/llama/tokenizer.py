"""Text to token ids and back, built from the vocabulary and merges in the GGUF file (no download).

SmolLM2 uses GPT-2's byte-level BPE: the text is split into pieces (every digit on its own, then GPT-2's
word-and-space pattern), each piece's bytes are mapped to printable characters, and BPE merges adjacent pairs
in the order the merge list gives. The control tokens (``<|im_start|>``, ``<|im_end|>``, ...) are matched
whole, before any splitting. The chat template, also in the file, wraps a question in those tokens.

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""
from __future__ import annotations

CONTROL = 3  # GGUF token type of control tokens such as <|im_end|>


class Tokenizer:
    """``encode(text) -> list[int]``, ``decode(ids) -> str`` and ``chat_prompt(question)``, from a GGUF reader."""

    def __init__(self, reader):
        from tokenizers import AddedToken, Tokenizer as BPETokenizer, decoders, models, pre_tokenizers

        tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
        types = list(reader.fields["tokenizer.ggml.token_type"].contents())
        merges = [tuple(merge.split(" ", 1)) for merge in reader.fields["tokenizer.ggml.merges"].contents()]
        self.vocab = {token: index for index, token in enumerate(tokens)}
        bpe = BPETokenizer(models.BPE(vocab=self.vocab, merges=merges, unk_token=None, fuse_unk=False))
        bpe.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        bpe.decoder = decoders.ByteLevel()
        bpe.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                for token, kind in zip(tokens, types) if kind == CONTROL])
        self._bpe = bpe
        self._encodable: set[str] = set()  # characters seen to survive encoding (21 byte values do not)
        self.eos_id = int(reader.fields["tokenizer.ggml.eos_token_id"].contents())
        self.end_of_turn_id = self.vocab.get("<|im_end|>", self.eos_id)
        self._template = reader.fields["tokenizer.chat_template"].contents()

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        for character in set(text) - self._encodable:
            if self._bpe.decode(self._bpe.encode(character, add_special_tokens=False).ids) != character:
                raise ValueError(f"the character {character!r} (U+{ord(character):04X}) cannot be encoded: some of "
                                 f"its UTF-8 bytes are not in SmolLM2's vocabulary, which would drop them")
            self._encodable.add(character)
        return self._bpe.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special: bool = False) -> str:
        """The text of token ids: a list, a 1-D tensor, or one id (an int or a 0-d tensor)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        ids = [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]
        bad = [i for i in ids if not 0 <= i < len(self.vocab)]
        if bad:
            raise ValueError(f"token ids must lie in 0..{len(self.vocab) - 1}, got {bad[:5]}")
        return self._bpe.decode(ids, skip_special_tokens=skip_special)

    def chat_prompt(self, question: str, system: str | None = None) -> str:
        """The question as the model was trained to see it: the GGUF's own chat template (ChatML), rendered."""
        import jinja2

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        return jinja2.Template(self._template).render(messages=messages, add_generation_prompt=True)
