"""Sampling is judged on its own: the reference replays the engine's draws."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scrub
from scrub import Dataset
from hypotheses import Hypothesis, Node, agree, exact, from_datum, shared, token_at, tokens_at, unconditional

from conftest import tiny_tokens, tiny_transformer

MODEL = tiny_transformer(seed=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), pos=st.integers(0, 3), n=st.integers(5, 60))
def test_agreement_holds_for_every_draw(seed, pos, n):
    data = Dataset(tiny_tokens(n=n, pos=4, seed=seed % 7))
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0", agree(token_at(pos)), children=[
        Node("b", ".k <- head.0.1", agree(tokens_at([0, 3])))])]))
    r = scrub.run(MODEL, h, data, seed=seed)
    idx = r.node_indices()
    toks = data.inputs.numpy()
    assert (toks[idx["a"]["x"], pos] == toks[r.reference, pos]).all()
    assert (toks[idx["b"]["x"]][:, [0, 3]] == toks[idx["a"]["x"]][:, [0, 3]]).all()


def test_draws_are_uniform_within_the_class():
    # 600 data in 3 classes of sizes 100, 200, 300; one parent datum repeated many times
    labels = np.repeat([0, 1, 2], [100, 200, 300])
    data = Dataset(torch.zeros(600, 4, dtype=torch.long) + 2, raw=labels.tolist())
    feature = from_datum(lambda v: v, name="class")
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0", agree(feature))]))
    ref = np.full(30_000, 150)  # class 1: indices 100..299
    r = scrub.run(MODEL, h, data, reference=ref, seed=1, keep_outputs=False, batch_size=30_000)
    drawn = r.node_indices()["a"]["x"]
    assert drawn.min() >= 100 and drawn.max() < 300
    counts = np.bincount(drawn - 100, minlength=200)
    chi2 = ((counts - 150) ** 2 / 150).sum()  # 199 degrees of freedom: mean 199, sd ~20
    assert chi2 < 199 + 5 * 20


def test_unconditional_is_uniform_over_the_pool():
    data = Dataset(tiny_tokens(n=50, pos=4))
    h = Hypothesis(Node("root", sampler=unconditional()))
    r = scrub.run(MODEL, h, data, reference=np.zeros(25_000, dtype=int), seed=3, keep_outputs=False,
                  batch_size=25_000)
    counts = np.bincount(r.node_indices()["root"]["x"], minlength=50)
    assert ((counts - 500) ** 2 / 500).sum() < 49 + 5 * 10


def test_exact_is_the_parent_and_shared_nodes_get_one_draw():
    data = Dataset(tiny_tokens(n=40, pos=4))
    g = shared("g", agree(token_at(1)))
    h = Hypothesis(Node("root", children=[
        Node("a", "output <- head.1.0", agree(token_at(2)), children=[Node("a exact", ".q <- embed", exact())]),
        Node("s1", "output <- head.1.1", g), Node("s2", "output <- mlp.1", g)]))
    idx = scrub.run(MODEL, h, data, seed=2).node_indices()
    assert np.array_equal(idx["a exact"]["x"], idx["a"]["x"])
    assert np.array_equal(idx["s1"]["x"], idx["s2"]["x"])
    assert not np.array_equal(idx["s1"]["x"], idx["a"]["x"])


def test_adding_a_node_leaves_other_draws_alone():
    data = Dataset(tiny_tokens(n=40, pos=4))
    a = Node("a", "output <- head.1.0", agree(token_at(2)))
    one = scrub.run(MODEL, Hypothesis(Node("root", children=[a])), data, seed=5)
    two = scrub.run(MODEL, Hypothesis(Node("root", children=[a, Node("b", "output <- mlp.0", unconditional())])),
                    data, seed=5)
    assert np.array_equal(one.node_indices()["a"]["x"], two.node_indices()["a"]["x"])


def test_independent_policy_draws_one_datum_per_unclaimed_edge():
    data = Dataset(tiny_tokens(n=30, pos=4))
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0")]), policy="independent")
    edges = scrub.run(MODEL, h, data, seed=0).node_indices()["root"]["other_edges"]
    expected = {f"output.in <- {s}" for s in ("embed", "pos_embed", "head.0.0", "head.0.1", "mlp.0", "head.1.1",
                                               "mlp.1")}
    assert set(edges) == expected
    draws = [tuple(v) for v in edges.values()]
    assert len(set(draws)) == len(draws)  # independent streams
