"""Reuse of plain values and trimmed positions change no number.

The activations cache (scrub/engine/activations.py) computes each distinct
datum once and trims each pass to the positions its rows need; `read_positions`
computes only the leading positions the caller reads. Each is checked against
the same run without it and against the reference judge.
"""

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import scrub
from scrub import Dataset, HypothesisError
from scrub.engine.executor import run_width
from scrub.errors import DataError

from conftest import tiny_tokens, tiny_transformer
from reference import ScrubTransformerOps, reference_outputs
from strategies import hypotheses_for

from hypotheses import Hypothesis, Node, agree, token_at

ATOL = 2e-5
SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
POS = 8

PADDED = tiny_transformer(seed=3, pad=True, bidirectional=True)
CAUSAL = tiny_transformer(seed=1)
PADDED_DATA = Dataset(tiny_tokens(n=12, pos=POS, seed=6, pad=True))  # right padding with token 1, lengths 2..8
CAUSAL_DATA = Dataset(tiny_tokens(n=12, pos=POS, seed=7))


def _run(model, h, data, seed, **kw):
    try:
        return scrub.run(model, h, data, seed=seed, **kw)
    except HypothesisError:
        assume(False)  # a generated overlap: not a valid hypothesis


@settings(**SETTINGS)
@given(h=hypotheses_for(has_mlp=True, padded=True, n_pos=POS), seed=st.integers(0, 3), read=st.sampled_from([0, 2]))
def test_trimmed_equals_untrimmed_padded(h, seed, read):
    """Bidirectional, pad keys masked, right padding: reading position `read` computes fewer positions
    (when no head is evaluated) and passes trimmed to each batch's longest row; the read positions equal
    the untrimmed run's and the judge's; the positions not computed are NaN, never made-up numbers."""
    full = _run(PADDED, h, PADDED_DATA, seed, cache_mb=0)
    trimmed = _run(PADDED, h, PADDED_DATA, seed, read_positions=[read])
    width = run_width(trimmed.plan, scrub.adapt(PADDED), POS, [read])
    assert torch.allclose(trimmed.scrubbed[:, :width], full.scrubbed[:, :width], atol=ATOL)
    assert torch.isnan(trimmed.scrubbed[:, width:]).all()
    assert torch.allclose(trimmed.model[:, :width], full.model[:, :width], atol=ATOL)
    judge = reference_outputs(ScrubTransformerOps(PADDED), h, PADDED_DATA, trimmed)
    assert (judge[:, :read + 1] - trimmed.scrubbed[:, :read + 1]).abs().max() < ATOL


@settings(**SETTINGS)
@given(h=hypotheses_for(has_mlp=True, n_pos=POS), seed=st.integers(0, 3), read=st.sampled_from([0, 3, POS - 1]))
def test_trimmed_equals_untrimmed_causal(h, seed, read):
    """Causal: position t reads positions <= t only, so the leading read + 1 positions are computed
    alone, heads included."""
    full = _run(CAUSAL, h, CAUSAL_DATA, seed)
    trimmed = _run(CAUSAL, h, CAUSAL_DATA, seed, read_positions=[read], cache_mb=0)
    assert torch.allclose(trimmed.scrubbed[:, :read + 1], full.scrubbed[:, :read + 1], atol=ATOL)
    assert torch.isnan(trimmed.scrubbed[:, read + 1:]).all()


@settings(**SETTINGS)
@given(h=hypotheses_for(has_mlp=True, padded=True, n_pos=POS), seed=st.integers(0, 3),
       cache_mb=st.sampled_from([0, 0.002, 1]), batch=st.sampled_from([None, 3]))
def test_cache_and_eviction_change_nothing(h, seed, cache_mb, batch):
    """Off, tiny (values dropped and recomputed between chunks) or ample: the same numbers, equal to the
    judge's."""
    ample = _run(PADDED, h, PADDED_DATA, seed)
    other = _run(PADDED, h, PADDED_DATA, seed, cache_mb=cache_mb, batch_size=batch)
    assert torch.allclose(ample.scrubbed, other.scrubbed, atol=ATOL)
    judge = reference_outputs(ScrubTransformerOps(PADDED), h, PADDED_DATA, other)
    assert (judge - other.scrubbed).abs().max() < ATOL


class Counting:
    """Counts the rows and positions each plain pass of an adapter computes."""

    def __init__(self, adapter):
        self.adapter, self.passes = adapter, []
        real = adapter.plain_prefix

        def plain_prefix(inputs, wants, width):
            self.passes.append(tuple(inputs.shape))
            return real(inputs, wants, width)
        adapter.plain_prefix = plain_prefix

    @property
    def rows(self):
        return sum(r for r, _ in self.passes)


def _seeded(n_seeds):
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0@0", agree(token_at(0))),
                                          Node("b", "output <- mlp.1@0", agree(token_at(1)))]))
    return h, list(range(n_seeds))


def test_each_distinct_datum_computed_once():
    """Five seeds of one hypothesis draw every datum many times over; with the cache each is computed once
    (plus one probe row per cached group), without it once per chunk and role."""
    from scrub.engine.run import compile, run_seeds

    data = Dataset(tiny_tokens(n=40, pos=POS, seed=2, pad=True))
    h, seeds = _seeded(5)
    counts = {}
    results = {}
    for cache_mb in (None, 0):
        counter = Counting(scrub.adapt(PADDED))
        compiled = compile(counter.adapter, h, data)
        results[cache_mb] = run_seeds(compiled, seeds, batch_size=10, cache_mb=cache_mb, read_positions=[0])
        counts[cache_mb] = counter.rows
    assert counts[None] <= len(data) + 2
    assert counts[0] > 3 * len(data)
    for a, b in zip(results[None], results[0]):
        assert torch.allclose(a[0].scrubbed[:, 0], b[0].scrubbed[:, 0], atol=ATOL)


def test_passes_trimmed_to_each_batch():
    """Reading position 0 of the bidirectional padded model: rows are sorted by length and each pass
    sees only its longest row's positions."""
    data = Dataset(tiny_tokens(n=40, pos=POS, seed=2, pad=True))
    lengths = POS - (data.inputs != 1).flip(1).long().argmax(1)
    counter = Counting(scrub.adapt(PADDED))
    h, _ = _seeded(1)
    scrub.run(counter.adapter, h, data, read_positions=[0])
    widths = [p for _, p in counter.passes]
    assert min(widths) < POS and max(widths) == int(lengths.max())


def test_exact_widths_by_model():
    """How many leading positions a row needs: causal models the read width; bidirectional models with
    masked padding through the last real token (left padding keeps every position); a row of padding
    alone every position."""
    padded = scrub.adapt(PADDED)
    rows = torch.tensor([[0, 3, 1, 1, 1], [0, 3, 4, 3, 1], [1, 1, 0, 3, 4], [1, 1, 1, 1, 1]])
    assert padded.exact_widths(rows, 1).tolist() == [2, 4, 5, 5]
    assert padded.exact_widths(rows, 3).tolist() == [3, 4, 5, 5]
    assert scrub.adapt(CAUSAL).exact_widths(rows, 2).tolist() == [2, 2, 2, 2]
    unmasked = scrub.adapt(tiny_transformer(seed=4, bidirectional=True))
    assert unmasked.exact_widths(rows, 1).tolist() == [5, 5, 5, 5]


def test_read_positions_checked():
    h, _ = _seeded(1)
    with pytest.raises(DataError, match=r"read_positions=\[8\]: give positions within 0\.\.7"):
        scrub.run(PADDED, h, PADDED_DATA, read_positions=[8])
    negative = scrub.run(CAUSAL, h, CAUSAL_DATA, read_positions=[-1])
    assert not torch.isnan(negative.scrubbed).any()


def test_last_block_on_fewer_queries():
    """The model's forward can compute its last block for the first positions only: they equal the full
    pass there (their queries still read every key)."""
    tokens = PADDED_DATA.inputs
    with torch.no_grad():
        full = PADDED(tokens)
        part = PADDED(tokens, queries=(1, 3))
    assert part.shape[1] == 3 and torch.allclose(part, full[:, :3], atol=1e-6)
