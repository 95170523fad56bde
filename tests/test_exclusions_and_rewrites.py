"""Path exclusions, children that open their parent's last hop, component rewrites, per-position nodes."""

import pytest
import torch

import scrub
from scrub import Dataset, HypothesisError, InterventionError
from scrub.app.spec import SpecError, parse_spec, spec_dict, to_yaml

from conftest import tiny_tokens, tiny_transformer
from hypotheses import Hypothesis, Node, agree, parse_path, token_at, unconditional
from hypotheses.features import from_batch
from hypotheses.positions import per_position
from hypotheses.rewrites import function_estimate, rewrite, zero
from reference import ScrubTransformerOps, reference_outputs

ONE_LAYER = tiny_transformer(seed=4, n_layers=1)
TWO_LAYERS = tiny_transformer(seed=5, pad=True, bidirectional=True)
DATA = Dataset(tiny_tokens(n=12, pos=4, seed=2))
PADDED_DATA = Dataset(tiny_tokens(n=12, pos=4, seed=3, pad=True))


def _root(*children, **kw):
    return Hypothesis(Node("root", children=list(children)), **kw)


def _same(a, b, model=ONE_LAYER, data=DATA, seed=3):
    ra, rb = scrub.run(model, a, data, seed=seed), scrub.run(model, b, data, seed=seed)
    return (ra.scrubbed - rb.scrubbed).abs().max().item()


# --- exclusions -----------------------------------------------------------------------------------------

def test_exclusion_parses_prints_and_rejects_what_it_cannot_mean():
    p = parse_path("output <- head.1.0@0 <- ... <- embed (not mlp.0, head.0.0)")
    assert p.excluding == ("head.0.0", "mlp.0") and str(p) == "output <- head.1.0@0 <- ... <- embed (not head.0.0, mlp.0)"
    assert parse_path(str(p)) == p
    assert parse_path("... <- embed (not head.0.0)", parse_path("output <- head.1.0")).excluding == ("head.0.0",)
    with pytest.raises(HypothesisError, match=r"cannot exclude 'head\.0\.0@1'; name whole sites"):
        parse_path("output <- ... <- embed (not head.0.0@1)")
    with pytest.raises(HypothesisError, match="excludes 'output', which every path starts at"):
        parse_path("output <- ... <- embed (not output)")
    with pytest.raises(HypothesisError, match=r"only one '\(not \.\.\.\)' is allowed"):
        parse_path("output <- embed (not mlp.0) (not head.0.0)")
    with pytest.raises(HypothesisError, match="exclusions go at the end of the path"):
        parse_path("output <- (head.0.0) <- embed")


def test_exclusion_claims_exactly_the_paths_that_avoid_the_sites():
    """`... <- embed (not head.0.0)` equals the four paths from the embedding that avoid head 0.0, listed."""
    excluded = _root(Node("embed", "output <- ... <- embed (not head.0.0)"))
    listed = _root(Node("embed", ["output <- embed", "output <- mlp.0 <- embed", "output <- head.0.1 <- embed",
                                  "output <- mlp.0 <- head.0.1 <- embed"]))
    everything = _root(Node("embed", "output <- ... <- embed"))
    assert _same(excluded, listed) < 1e-6
    assert _same(excluded, everything) > 1e-3  # head 0.0's paths are really left to the root's other inputs


def test_excluded_site_is_never_visited_and_an_unknown_one_is_named():
    h = _root(Node("a", "output <- ... <- embed (not head.0.0)", agree(token_at(1))))
    plan = scrub.compile(ONE_LAYER, h, DATA).plan
    assert "head.0.0" not in {e.site for e in plan.evals}
    with pytest.raises(scrub.SiteError, match=r"unknown site 'head\.0\.7'"):
        scrub.compile(ONE_LAYER, _root(Node("a", "output <- ... <- embed (not head.0.7)")), DATA)


def test_exclusion_that_leaves_nothing_is_an_error():
    with pytest.raises(HypothesisError, match="none of these paths is reached"):
        scrub.compile(ONE_LAYER, _root(Node("a", "output <- ... <- head.0.0 (not head.0.0)")), DATA)


# --- opening the parent's last hop --------------------------------------------------------------------

def test_children_open_the_parents_last_hop():
    """A parent claims head 1.0's input at position 1; its children claim head 0.0 there (every path) and
    every path from the embedding that avoids head 0.0. The engine equals the judge on it."""
    kids = [Node("h00", "output <- head.1.0@0 <- ... <- head.0.0@1", agree(token_at(2))),
            Node("emb", "output <- head.1.0@0 <- ... <- embed (not head.0.0)", agree(token_at(3)))]
    for policy in ("shared", "independent"):
        h = _root(Node("a", "output <- head.1.0@0", agree(token_at(0)), children=[
            Node("p1", "output <- head.1.0@0 <- *@1", agree(token_at(1)), children=kids)]), policy=policy)
        result = scrub.run(TWO_LAYERS, h, PADDED_DATA, seed=1)
        expected = reference_outputs(ScrubTransformerOps(TWO_LAYERS), h, PADDED_DATA, result)
        assert (expected - result.scrubbed).abs().max().item() < 2e-5


def test_child_must_land_on_the_parents_last_edges():
    with pytest.raises(HypothesisError, match="does not extend any path of its parent 'p'"):
        _root(Node("p", "output <- head.1.0 <- *@1", children=[Node("c", "output <- head.1.1 <- ... <- embed")]))
    h = _root(Node("p", "output <- head.1.0@0 <- *@1", children=[
        Node("c", "output <- head.1.0@0 <- head.0.0@2")]))  # the right hop, at a position the parent does not claim
    with pytest.raises(HypothesisError, match="node 'c' claims .* none of these paths is reached"):
        scrub.compile(TWO_LAYERS, h, PADDED_DATA)


# --- rewrites -------------------------------------------------------------------------------------------

def embedding(batch, model):
    """The token embedding site's own output: a rewrite with it changes nothing."""
    return model.embed.W_E[batch.inputs]


def scaled_embedding(batch, model):
    return 0.5 * model.embed.W_E[batch.inputs[:, 0]]  # (batch, d): the same at every position


def wrong_shape(batch, model):
    return torch.zeros(len(batch), 3)


def test_an_estimate_that_is_the_site_itself_changes_nothing():
    plain = _root(Node("e", "output <- head.0.1 <- embed", agree(token_at(1))))
    for residual in ("resample", "drop", "exact", unconditional()):
        h = _root(Node("e", "output <- head.0.1 <- embed", agree(token_at(1)),
                       rewrite=rewrite(function_estimate(embedding), residual)))
        assert _same(plain, h) < 1e-5, residual


def test_residual_modes_give_the_definition():
    """y = f(x_n) + site(y) - f(y): each mode against the judge, on a padded model, both policies."""
    ops = ScrubTransformerOps(TWO_LAYERS)
    for residual in ("resample", "drop", agree(token_at(0))):
        for policy in ("shared", "independent"):
            h = _root(Node("a", "output <- head.1.0@0", children=[
                Node("r", ".k <- ... <- embed", agree(token_at(2)),
                     rewrite=rewrite(function_estimate(scaled_embedding), residual))]), policy=policy)
            result = scrub.run(TWO_LAYERS, h, PADDED_DATA, seed=2)
            err = (reference_outputs(ops, h, PADDED_DATA, result) - result.scrubbed).abs().max().item()
            assert err < 2e-5, (residual, policy)
    dropped = _root(Node("z", "output <- head.1.1", rewrite=rewrite(zero(), "drop")))
    assert _same(dropped, _root(Node("z", "output <- head.1.1")), TWO_LAYERS, PADDED_DATA) > 1e-3


def test_rewrite_errors_name_the_problem():
    with pytest.raises(HypothesisError, match="cannot also have children"):
        Node("r", "output <- head.1.0", rewrite=rewrite(zero()), children=[Node("c", ".k")])
    with pytest.raises(HypothesisError, match="root node 'root' cannot have a rewrite"):
        Hypothesis(Node("root", rewrite=rewrite(zero())))
    with pytest.raises(HypothesisError, match="use one of .* or a sampler"):
        rewrite(zero(), "keep")
    with pytest.raises(HypothesisError, match="pad_mask is read whole .* cannot be rewritten"):
        scrub.compile(TWO_LAYERS, _root(Node("a", "output <- head.1.0", children=[
            Node("m", ".mask", rewrite=rewrite(zero()))])), PADDED_DATA)
    bad = _root(Node("w", "output <- head.0.1", rewrite=rewrite(function_estimate(wrong_shape))))
    with pytest.raises(InterventionError, match=r"estimate 'wrong_shape' returned shape \(12, 3\)"):
        scrub.run(ONE_LAYER, bad, DATA)


# --- per-position nodes and spec files --------------------------------------------------------------------

def first_token_is(batch, position):
    return batch.inputs[:, position] == batch.inputs[:, 0]


def test_per_position_makes_one_node_per_position_and_a_spec_writes_it_once():
    nodes = per_position(range(4), "k at {i}", ".k <- *@{i}", lambda i: agree(from_batch(first_token_is, args=(i,))))
    assert [n.name for n in nodes] == ["k at 0", "k at 1", "k at 2", "k at 3"]
    h = _root(Node("a", "output <- head.1.0@-1", children=[*nodes, Node("q", ".q")]),
              name="per position")
    doc = spec_dict(h, model={"bundled": "induction"}, data={"bundled": "induction"}, loss="next_token")
    children = doc["hypothesis"]["children"][0]["children"]
    assert children[0]["each_position"] == "0:4" and children[0]["paths"] == ".k <- *@{i}"
    assert children[0]["sampler"]["agree"]["args"] == ["{i}"]
    assert parse_spec(to_yaml(doc)).hypothesis == h
    edited = h.replace_node("k at 2", sampler=unconditional())  # no longer what the group makes: written out
    doc = spec_dict(edited, model={"bundled": "induction"}, data={"bundled": "induction"}, loss="next_token")
    assert "each_position" not in str(doc) and parse_spec(to_yaml(doc)).hypothesis == edited
    with pytest.raises(HypothesisError, match=r"needs '\{i\}'"):
        per_position(range(2), "same name", "*@{i}")


def test_spec_rewrite_and_each_position_errors_point_at_the_entry():
    base = """name: t
model: {bundled: induction}
data: {bundled: induction, args: {n: 20}}
loss: next_token
hypothesis:
  name: output
  children:
"""
    bad_residual = base + """    - name: r
      paths: output <- head.1.0
      rewrite: {estimate: zero, residual: keep}
"""
    with pytest.raises(SpecError, match=r"line 10.*unknown sampler 'keep'"):
        parse_spec(bad_residual)
    no_estimate = base + "    - {name: r, paths: output <- head.1.0, rewrite: {residual: drop}}\n"
    with pytest.raises(SpecError, match="a rewrite needs an 'estimate'"):
        parse_spec(no_estimate)
    for bad in ("'3:1'", "3:10", "true"):  # an empty range; YAML's base-60 reading of an unquoted range; no positions
        entry = f"    - {{each_position: {bad}, name: 'p {{i}}', paths: 'output <- head.1.0@{{i}}'}}\n"
        with pytest.raises(SpecError, match="line 8.*each_position must be a position.*base-60 number 190"):
            parse_spec(base + entry)
    good = base + "    - {each_position: [0, 2], name: 'p {i}', paths: 'output <- head.1.0@{i}'}\n"
    assert [n.name for n in parse_spec(good).hypothesis.root.children] == ["p 0", "p 2"]
