"""A toy grammar: sentences from templates whose slots draw from clusters of interchangeable words.

Words of one cluster occur in exactly the same contexts, so a distributional model should put them
close together; words of different clusters are told apart by their contexts. That gives word
embeddings a known ground truth: a negative from the positive's own cluster is a genuinely hard
negative, one from another cluster an easy one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

PAD = -1

CLUSTERS = ("person", "animal", "food", "place", "eat", "move", "adj", "time")  # content clusters
FUNCTION_WORDS = ("the", "a", "to", "in", "at")  # clusters of one word
TEMPLATES = (
    ("person", "eat", "the", "food", "in", "the", "place"),
    ("the", "animal", "eat", "a", "food"),
    ("person", "move", "to", "the", "place", "at", "time"),
    ("the", "adj", "animal", "move", "to", "place"),
    ("at", "time", "person", "eat", "adj", "food"),
    ("a", "adj", "person", "move", "in", "the", "place"),
)


@dataclass(frozen=True)
class Grammar:
    """Clusters (name, size) and templates (tuples of cluster names); words are numbered cluster by cluster."""

    clusters: tuple[tuple[str, int], ...]
    templates: tuple[tuple[str, ...], ...]

    @cached_property
    def words(self) -> list[str]:
        return [name if size == 1 else f"{name}{i}" for name, size in self.clusters for i in range(size)]

    @property
    def vocab_size(self) -> int:
        return sum(size for _, size in self.clusters)

    @cached_property
    def cluster_of(self) -> Tensor:
        """[V] the cluster index of every word."""
        return torch.repeat_interleave(torch.arange(len(self.clusters)), torch.tensor([s for _, s in self.clusters]))

    @cached_property
    def slots(self) -> Tensor:
        """[T, L] cluster index of every template slot, PAD after a template's end."""
        index = {name: i for i, (name, _) in enumerate(self.clusters)}
        width = max(len(t) for t in self.templates)
        return torch.tensor([[index[c] for c in t] + [PAD] * (width - len(t)) for t in self.templates])


def toy_grammar(cluster_size: int = 8) -> Grammar:
    """The lab's toy grammar: 8 content clusters of `cluster_size` words, 5 function words, 6 templates."""
    clusters = tuple((c, cluster_size) for c in CLUSTERS) + tuple((w, 1) for w in FUNCTION_WORDS)
    return Grammar(clusters, TEMPLATES)


def sentences(grammar: Grammar, n: int, gen: torch.Generator) -> Tensor:
    """[n, L] word ids, PAD-padded: a uniform template, each slot a uniform word of its cluster."""
    sizes = torch.tensor([s for _, s in grammar.clusters])
    offsets = torch.cumsum(sizes, 0) - sizes
    slots = grammar.slots[torch.randint(len(grammar.templates), (n,), generator=gen)]
    u = torch.rand(slots.shape, generator=gen)
    valid = slots != PAD
    cluster = slots.clamp(min=0)
    words = offsets[cluster] + (u * sizes[cluster]).long().clamp(max=sizes[cluster] - 1)
    return torch.where(valid, words, PAD)


def skipgram_pairs(tokens: Tensor, window: int) -> Tensor:
    """[P, 2] (center, context) for every pair of words at most `window` apart in the same sentence."""
    pairs = []
    for offset in [o for o in range(-window, window + 1) if o]:
        lo, hi = max(0, -offset), tokens.shape[1] - max(0, offset)
        center, context = tokens[:, lo:hi], tokens[:, lo + offset : hi + offset]
        keep = (center != PAD) & (context != PAD)
        pairs.append(torch.stack([center[keep], context[keep]], dim=1))
    return torch.cat(pairs)


def unigram(tokens: Tensor, vocab_size: int) -> Tensor:
    """[V] word frequencies in a corpus (PAD ignored)."""
    counts = torch.bincount(tokens[tokens != PAD], minlength=vocab_size).double()
    return counts / counts.sum()
