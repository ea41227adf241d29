"""Synthetic tasks small enough to train on a laptop CPU in seconds (lesson 03; reused by later lessons).

*Key-value retrieval*: a sequence holds ``num_pairs`` (key, value) pairs and ends with a query key; the answer
is the value paired with that key. The answer sits at one specific other position, which the query must
find by content, not by place: exactly what one attention head can learn.

Lesson: notebooks/03_self_attention_in_pytorch.ipynb. Tests: tests/test_examples.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.attention import SelfAttention


@dataclass
class RetrievalTask:
    num_pairs: int = 6
    num_keys: int = 16
    num_values: int = 16

    def sample(self, batch: int, generator: torch.Generator):
        """keys (B, P), values (B, P), query position (B,) and target value (B,); keys distinct per row."""
        keys = torch.stack([torch.randperm(self.num_keys, generator=generator)[: self.num_pairs]
                            for _ in range(batch)])  # (B, P)
        values = torch.randint(self.num_values, (batch, self.num_pairs), generator=generator)  # (B, P)
        asked = torch.randint(self.num_pairs, (batch,), generator=generator)  # (B,) which pair is asked for
        target = values.gather(1, asked[:, None])[:, 0]  # (B,)
        return keys, values, asked, target

    def labels(self, keys: torch.Tensor, values: torch.Tensor, asked: int) -> list[str]:
        """Readable token labels for one example: 'k3:v7' for each pair and '?k3' for the query."""
        pairs = [f"k{int(k)}:v{int(v)}" for k, v in zip(keys, values)]
        return pairs + [f"?k{int(keys[asked])}"]


class RetrievalModel(nn.Module):
    """Embed the pairs and the query, one head of self-attention, read the answer at the query position.

    ``attention_class`` builds the head from ``(d_model, d_head)``: lesson 03's softmax
    :class:`~course_lib.attention.SelfAttention` by default; lesson 09 swaps in linear attention.
    """

    def __init__(self, task: RetrievalTask, d_model: int = 32, attention_class: type[nn.Module] = SelfAttention):
        super().__init__()
        self.key_embedding = nn.Embedding(task.num_keys, d_model)
        self.value_embedding = nn.Embedding(task.num_values, d_model)
        self.query_embedding = nn.Embedding(task.num_keys, d_model)
        self.attention = attention_class(d_model, d_model)
        self.readout = nn.Linear(d_model, task.num_values)

    def forward(self, keys: torch.Tensor, values: torch.Tensor, asked: torch.Tensor) -> torch.Tensor:
        pairs = self.key_embedding(keys) + self.value_embedding(values)  # (B, P, E)
        query = self.query_embedding(keys.gather(1, asked[:, None]))  # (B, 1, E)
        x = torch.cat([pairs, query], dim=1)  # (B, P+1, E)
        attended = self.attention(x)  # (B, P+1, E)
        return self.readout(attended[:, -1])  # (B, num_values): logits read at the query position


def train_retrieval(steps: int = 150, batch: int = 128, seed: int = 0, record_every: int = 5,
                    learning_rate: float = 3e-3, task: RetrievalTask | None = None,
                    attention_class: type[nn.Module] = SelfAttention) -> dict:
    """Train a RetrievalModel; record the attention map of one fixed example every ``record_every`` steps.

    The same seed gives the same data and the same initial weights whatever ``attention_class`` is (as long
    as it has the same parameters), so two kinds of attention can be compared on an equal footing.
    """
    torch.manual_seed(seed)
    task = task or RetrievalTask()
    generator = torch.Generator().manual_seed(seed)
    model = RetrievalModel(task, attention_class=attention_class)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    shown = task.sample(1, torch.Generator().manual_seed(seed + 1))  # the example whose attention we record
    test = task.sample(1000, torch.Generator().manual_seed(seed + 2))
    history = {"steps": [], "weights": [], "accuracy": [], "loss": [],
               "labels": task.labels(shown[0][0], shown[1][0], int(shown[2][0]))}
    start = time.perf_counter()
    for step in range(steps + 1):
        if step % record_every == 0:
            history["steps"].append(step)
            history["accuracy"].append(accuracy(model, test))
            with torch.no_grad():
                model(*shown[:3])
            history["weights"].append(model.attention.last_weights[0].numpy().copy())  # (P+1, P+1)
        if step == steps:
            break
        keys, values, asked, target = task.sample(batch, generator)
        loss = nn.functional.cross_entropy(model(keys, values, asked), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["loss"].append(float(loss.detach()))
    history["seconds"] = time.perf_counter() - start
    history["model"] = model
    return history


def accuracy(model: nn.Module, batch) -> float:
    """Fraction of the batch's queries answered correctly."""
    keys, values, asked, target = batch
    with torch.no_grad():
        return float((model(keys, values, asked).argmax(-1) == target).float().mean())
