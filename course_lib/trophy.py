"""The running example of lessons 01-02: "The trophy would not fit in the suitcase because it was too big."

What "it" means depends on one word far away: too *big* points at the trophy, too *small* at the suitcase.
Here the embeddings and projections are built by hand (not trained), with one readable feature per axis, so
that every number in the attention can be explained. Two attention steps resolve "it":

1. *describe*: "it" asks "which adjective describes me?" and copies the size (big/small) into its vector;
2. *resolve*: "it", now knowing its size, asks "too big: what was meant to go inside?" (the trophy) or
   "too small: what was the container?" (the suitcase).

A real transformer learns such projections; lesson 04 trains heads that specialise like this.

Lesson: notebooks/01_attention_by_hand.ipynb. Tests: tests/test_examples.py.
"""
from __future__ import annotations

import numpy as np

from course_lib.numpy_attention import scaled_dot_product_attention

SENTENCES = {
    "big": "The trophy would not fit in the suitcase because it was too big .".split(),
    "small": "The trophy would not fit in the suitcase because it was too small .".split(),
}
# One readable feature per axis of the embedding.
FEATURES = ["thing", "goes inside", "container", "pronoun", "adjective", "big", "small", "function word"]
_WORD_FEATURES = {
    "trophy": {"thing": 1, "goes inside": 1},
    "suitcase": {"thing": 1, "container": 1},
    "it": {"pronoun": 1},
    "big": {"adjective": 1, "big": 1},
    "small": {"adjective": 1, "small": 1},
}
STRENGTH = 12.0  # how sharply the hand-built queries pick their targets (bigger: sharper attention)


def feature_vector(**features: float) -> np.ndarray:
    """A vector in the FEATURES space, e.g. feature_vector(thing=1, container=1)."""
    vector = np.zeros(len(FEATURES))  # (E,)
    for name, amount in features.items():
        vector[FEATURES.index(name.replace("_", " "))] = amount
    return vector


def embed(tokens: list[str]) -> np.ndarray:
    """Token vectors (T, E): content words get their features, every other word is a plain function word."""
    rows = [feature_vector(**{k.replace(" ", "_"): v for k, v in _WORD_FEATURES.get(t.lower(), {"function word": 1}).items()})
            for t in tokens]
    return np.stack(rows)  # (T, E)


def projection(pairs: dict[str, str], strength: float = 1.0) -> np.ndarray:
    """A (E, E) matrix that maps each input feature to an output feature: {"pronoun": "adjective"} ..."""
    matrix = np.zeros((len(FEATURES), len(FEATURES)))  # (E, E); x @ matrix moves features around
    for source, target in pairs.items():
        matrix[FEATURES.index(source), FEATURES.index(target)] = strength
    return matrix


def describe_step() -> dict[str, np.ndarray]:
    """Step 1: the pronoun looks for an adjective and copies its size."""
    return {
        "query": projection({"pronoun": "adjective"}, STRENGTH),  # "it" asks: which adjective describes me?
        "key": projection({"adjective": "adjective"}),  # adjectives answer: I describe something
        "value": projection({"big": "big", "small": "small"}),  # what they hand over: the size
    }


def resolve_step() -> dict[str, np.ndarray]:
    """Step 2: knowing "too big" or "too small", the pronoun looks for the object that goes inside or the container."""
    return {
        "query": projection({"big": "goes inside", "small": "container"}, STRENGTH),
        "key": projection({"goes inside": "goes inside", "container": "container"}),
        "value": projection({"thing": "thing", "goes inside": "goes inside", "container": "container"}),
    }


def attend(x: np.ndarray, step: dict[str, np.ndarray], temperature: float = 1.0):
    """One attention step with hand-built projections; returns (output (T, E), weights (T, T)).

    ``temperature`` divides the queries: above 1 the weights spread out, below 1 they sharpen.
    """
    queries = x @ step["query"] / temperature  # (T, E)
    keys = x @ step["key"]  # (T, E)
    values = x @ step["value"]  # (T, E)
    return scaled_dot_product_attention(queries, keys, values)  # (T, E), (T, T)


def resolve(sentence: str = "big", temperature: float = 1.0) -> dict:
    """Run both steps on one sentence; returns tokens, the weights of each step and what "it" attends to."""
    tokens = SENTENCES[sentence]
    x = embed(tokens)  # (T, E)
    described, describe_weights = attend(x, describe_step(), temperature)  # (T, E), (T, T)
    x = x + described  # (T, E); the residual connection: each token keeps its own features and adds context
    _, resolve_weights = attend(x, resolve_step(), temperature)  # (T, T)
    it = tokens.index("it")
    return {
        "tokens": tokens,
        "describe_weights": describe_weights,
        "resolve_weights": resolve_weights,
        "referent": tokens[int(np.argmax(resolve_weights[it]))],
        "it": it,
    }
