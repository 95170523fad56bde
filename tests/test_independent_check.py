"""The independent-draw check: rolled draws equal the reference semantics, cost no forward pass, and flag
exactly the survivors whose unexplained parts cancel."""

from dataclasses import replace

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import scrub
from scrub import Dataset, HypothesisError
from scrub.compiler.plan import ROLL, rolled_order
from scrub.engine.run import Compiled, run_seeds
from hypotheses import Hypothesis, Node, agree, token_at
from metrics import MSELoss, NextTokenLoss, VerdictRule, evaluate
from metrics.evaluate import Evaluation
from metrics.independent import MAX_FRESH, block_for, independent_variant, plan_check

from conftest import tiny_tokens, tiny_transformer
from reference import ScrubTransformerOps, reference_outputs
from strategies import hypotheses_for
from test_toy_cancellation import only_a, toy_setup

OWN = tiny_transformer(seed=1)
PADDED = tiny_transformer(seed=3, pad=True, bidirectional=True)
DATA = Dataset(tiny_tokens(n=10, pos=4, seed=5))
PADDED_DATA = Dataset(tiny_tokens(n=10, pos=4, seed=6, pad=True))
SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@given(n=st.integers(1, 300), shift=st.integers(0, 200), block=st.integers(1, 80))
def test_rolled_order_permutes_within_blocks(n, shift, block):
    order = rolled_order(n, shift, block)
    assert sorted(order.tolist()) == list(range(n))  # a permutation of the reference data
    assert (order // block == np.arange(n) // block).all()  # that never leaves a block
    start = (np.arange(n) // block) * block
    alone = np.minimum(block, n - start) == 1  # a datum alone in its block has no other to take from
    if shift >= 1:
        assert (order[~alone] != np.arange(n)[~alone]).all()  # every datum takes another datum's draw


def run_check(model, h, data, seed=0, batch_size=None):
    adapter = scrub.adapt(model)
    check = plan_check(h, adapter.graph, adapter.n_positions(data.inputs), block=4)
    if check is None:  # nothing to check (every node independent already, or nothing unexplained)
        assume(False)
    compiled = Compiled((check.variant,), adapter, data, len(data), check.plan)
    return run_seeds(compiled, [seed], batch_size=batch_size)[0][0]


def _agree(ops, h, data, result):
    expected = reference_outputs(ops, h, data, result)
    err = (expected - result.scrubbed).abs().max().item()
    assert err < 2e-5, f"engine and reference differ by {err:.3g} on\n{h}"


@settings(**SETTINGS)
@given(h=hypotheses_for(has_mlp=True), seed=st.integers(0, 3), batch=st.sampled_from([None, 3, 4, 8]))
def test_the_check_equals_the_reference_at_any_chunk_size(h, seed, batch):
    """Chunks of whole blocks take rolled values from the parent's pass; others run forward passes: both must
    equal the reference, which reads each edge's draw from the audit trail."""
    try:
        result = run_check(OWN, h, DATA, seed, batch)
    except HypothesisError:
        assume(False)
    _agree(ScrubTransformerOps(OWN), result.hypothesis, DATA, result)


@settings(**SETTINGS)
@given(h=hypotheses_for(has_mlp=True, padded=True), seed=st.integers(0, 3))
def test_the_check_equals_the_reference_with_padding_masks(h, seed):
    try:
        result = run_check(PADDED, h, PADDED_DATA, seed)
    except HypothesisError:
        assume(False)
    _agree(ScrubTransformerOps(PADDED), result.hypothesis, PADDED_DATA, result)


def test_a_callers_chunk_size_holds_whole_blocks():
    assert [block_for(b) for b in (None, 512, 100, 64, 8, 7, 1)] == [64, 64, 50, 64, 8, 7, 1]


def test_rolled_edges_take_other_data_and_add_no_forward_pass():
    h = Hypothesis(Node("out", children=[Node("h", "output <- head.1.0", children=[Node("k", ".k")])]))
    adapter = scrub.adapt(OWN)
    alone = scrub.compile(adapter, h, DATA).plan
    check = plan_check(h, adapter.graph, 4)
    edge_roles = [check.plan.roles[r] for nr in check.plan.nodes[0].values() for _, r in nr.other_edges]
    assert check.edges == len(edge_roles) > 4 and {r.kind for r in edge_roles} == {ROLL}
    from scrub.compiler.plan import merge_plans
    both = merge_plans([alone, check.plan])
    assert len(both.pass_needs()) == len(alone.pass_needs())  # the check's draws are served by existing passes
    compiled = Compiled((check.variant,), adapter, DATA, len(DATA), check.plan)
    result = run_seeds(compiled, [0])[0][0]
    for name, idx in result.node_indices().items():
        for edge, rows in idx.get("other_edges", {}).items():
            assert not (rows == idx["other"]).all(), (name, edge)  # another datum's draw, not the shared one


def test_conditional_other_inputs_keep_fresh_draws_and_are_capped():
    cond = lambda n: Hypothesis(Node("out", children=[Node("h", [f"output <- head.1.{i}" for i in range(n)],  # noqa: E731
                                                              children=[Node("k", ".k")],
                                                              other_inputs=agree(token_at(0)))]))
    adapter = scrub.adapt(OWN)
    check = plan_check(cond(1), adapter.graph, 4)
    kinds = {n: {check.plan.roles[r].kind for _, r in nr.other_edges} for n, nr in check.plan.nodes[0].items()}
    assert kinds["h"] == {"draw"} and kinds["out"] == {ROLL}  # h's draws agree with its datum: fresh ones
    assert len(check.plan.nodes[0]["h"].other_edges) == 10 <= MAX_FRESH
    assert plan_check(cond(2), adapter.graph, 4) is None  # 20 fresh draws would cost 20 forward passes: skipped


def test_nothing_to_check_when_already_independent_or_nothing_unexplained():
    assert independent_variant(only_a("independent")) is None
    variant = independent_variant(Hypothesis(Node("out", children=[Node("a", "output <- a", policy="shared")])))
    assert variant.policy == "independent" and all(n.policy is None for n in variant)
    _, adapter, data = toy_setup(n=50)
    everything = Hypothesis(Node("out", children=[Node(t, f"output <- {t}") for t in "abc"]))
    assert plan_check(everything, adapter.graph, 1) is None
    assert evaluate(adapter, everything, data, MSELoss()).independent is None


def test_flag_fires_on_cancelling_parts_and_its_margin_is_a_setting():
    _, adapter, data = toy_setup()
    ev = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(0, 1))
    verdict = VerdictRule().judge(ev)
    assert verdict.survives and verdict.cancels and verdict.independent_excess.low > 0.5
    assert "the parts it leaves out cancel; see the cancel-out report" in str(verdict)
    lax = VerdictRule(independent_margin=10.0).judge(ev)  # "far worse" now needs 10x the random distance
    assert lax.survives and not lax.cancels
    plain = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(0, 1), check_independent=False)
    assert plain.independent is None and not VerdictRule().judge(plain).cancels


def test_independent_values_survive_saving_and_merging_seeds():
    _, adapter, data = toy_setup(n=60)
    parts = [evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(s,)) for s in (0, 1)]
    again = [Evaluation.from_state(p.hypothesis, p.state()) for p in parts]
    merged = Evaluation.merge_seeds(again)
    assert merged.independent.comparisons["l2_logits"].shape == (2, 60)
    together = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(0, 1))
    assert torch.allclose(merged.independent.comparisons["l2_logits"], together.independent.comparisons["l2_logits"],
                          atol=1e-6)
    assert VerdictRule().judge(merged).cancels


def test_transformer_survivor_that_does_not_cancel_is_not_flagged():
    model = tiny_transformer(seed=4)
    data = Dataset(tiny_tokens(n=60, pos=4))
    everything_but_embed = Hypothesis(Node("out", children=[Node("x", ["output <- head.0.0", "output <- head.0.1",
                                                                       "output <- head.1.0", "output <- head.1.1",
                                                                       "output <- mlp.0", "output <- mlp.1",
                                                                       "output <- pos_embed"])]))
    ev = evaluate(model, everything_but_embed, data, NextTokenLoss(mask_field=None), seeds=(0,))
    assert ev.independent is not None
    assert not VerdictRule().judge(ev).cancels


def test_a_check_with_stacked_seeds_uses_each_seeds_own_draws():
    _, adapter, data = toy_setup(n=70)
    a = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(3,))
    b = evaluate(adapter, only_a("shared"), data, MSELoss(), seeds=(2, 3))
    assert torch.allclose(a.independent.comparisons["l2_logits"][0], b.independent.comparisons["l2_logits"][1],
                          atol=1e-6)
    assert not torch.allclose(b.independent.comparisons["l2_logits"][0], b.independent.comparisons["l2_logits"][1])
    assert replace(a).independent is a.independent


def test_compare_carries_the_flag_into_its_ranking_and_record():
    from metrics import compare
    from scrub.app.report.record import ranking_record

    _, adapter, data = toy_setup(n=120)
    truth = Hypothesis(Node("out", children=[Node("a", "output <- a"),
                                             Node("b-c", ["output <- b", "output <- c"])]), name="a; b-c together")
    ranking = compare(adapter, [truth, only_a("shared")], data, MSELoss(), seeds=(0,))
    rows = {r["name"]: r for r in ranking_record(ranking)["rows"]}
    assert rows["only a (shared)"]["cancels"] and rows["only a (shared)"]["survives"]
    assert not rows["a; b-c together"]["cancels"]
    assert "the parts it leaves out cancel" in str(ranking)
    from scrub.app.report.html import render_compare_html
    page = render_compare_html(ranking_record(ranking))
    assert page.count("survives, flagged") == 1 and '<tr class="other">' in page
