"""Bad hypotheses fail before any forward pass, with messages that name the culprit and the fix."""

import pytest
import torch

import scrub
from scrub import DataError, Dataset, HypothesisError, SamplingError, SiteError
from hypotheses import Hypothesis, Node, agree, from_datum, parse_path, shared, token_at

from conftest import tiny_tokens, tiny_transformer

MODEL = tiny_transformer(seed=0)
DATA = Dataset(tiny_tokens(n=20, pos=4), raw=[f"s{i}" for i in range(20)])


def one_child(path, **kw):
    return Hypothesis(Node("root", children=[Node("child", path, **kw)]))


def check(h, error, match):
    with pytest.raises(error, match=match):
        scrub.compile(MODEL, h, DATA)


def test_misspelt_site_suggests_close_names():
    check(one_child("output <- hed.1.0"), SiteError, r"unknown site 'hed\.1\.0'.*Did you mean 'head\.1\.0'")
    check(one_child("output <- mlp0"), SiteError, r"unknown site 'mlp0'.*Did you mean 'mlp\.0'")


def test_head_index_out_of_range_names_the_valid_range():
    check(one_child("output <- head.1.7"), SiteError, r"head index 7 is out of range; layer 1 has heads 0\.\.1")
    check(one_child("output <- head.4.0"), SiteError, r"layer 4 does not exist; the model has layers 0\.\.1")


def test_mlp_on_attention_only_model():
    with pytest.raises(SiteError, match="attention-only and has no MLP sites"):
        scrub.compile(tiny_transformer(attn_only=True), one_child("output <- mlp.0"), DATA)


def test_bad_port_lists_the_ports():
    h = Hypothesis(Node("root", children=[Node("h", "output <- head.1.0", children=[Node("x", ".mask")])]))
    check(h, SiteError, r"head\.1\.0 has no input port 'mask'; it reads through q, k, v")


def test_edge_that_does_not_exist_in_the_model():
    check(one_child("output <- head.0.0 <- head.1.0"), SiteError,
          r"head\.1\.0 is not an input of head\.0\.0 \(a site reads only sites of earlier layers\)")
    check(one_child("output <- head.1.0 <- head.1.1"), SiteError, r"head\.1\.1 is not an input of head\.1\.0")


def test_path_must_extend_the_parent():
    with pytest.raises(HypothesisError, match=r"node 'b' claims 'output <- head\.1\.1 <- embed', which does not "
                                              r"extend any path of its parent 'a'"):
        Hypothesis(Node("root", children=[Node("a", "output <- head.1.0", children=[
            Node("b", "output <- head.1.1 <- embed")])]))


def test_two_nodes_claiming_one_path():
    with pytest.raises(HypothesisError, match=r"'output <- head\.1\.0' is claimed by two nodes, 'a' and 'b'"):
        Hypothesis(Node("root", children=[Node("a", "output <- head.1.0"), Node("b", "output <- head.1.0")]))


def test_claims_that_overlap_through_another_nodes_claim():
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0"),
                                          Node("b", "output <- ... <- head.0.0")]))
    check(h, HypothesisError, r"node 'b' claims 'output <- \.\.\. <- head\.0\.0', which passes through .*head\.1\.0.*"
                              r"claimed by node 'a'\. Make 'b' a descendant of 'a'")


def test_duplicate_names_make_a_non_tree():
    shared_node = Node("same", "output <- head.1.0")
    with pytest.raises(HypothesisError, match="two nodes are named 'same'"):
        Hypothesis(Node("root", children=[shared_node, Node("same", "output <- head.1.1")]))


def test_root_must_claim_the_output():
    with pytest.raises(HypothesisError, match="the root node 'root' must claim exactly 'output'"):
        Hypothesis(Node("root", "output <- head.1.0"))


def test_children_below_an_input_site():
    h = Hypothesis(Node("root", children=[Node("e", "output <- embed", children=[Node("x", "output <- embed <- head.0.0")])]))
    check(h, (HypothesisError, SiteError), r"embed")


def test_position_out_of_range():
    check(one_child("output <- head.1.0@9"), SiteError, r"position 9 is out of range for sequences of length 4")


def test_a_node_that_would_silently_do_nothing():
    # the child continues head 1.0 through q, but only from position 3 of head 0.0, while head 1.0 is claimed at 0
    h = Hypothesis(Node("root", children=[Node("a", "output <- head.1.0@0", children=[
        Node("b", ".q <- head.0.0@3")])]))
    check(h, HypothesisError, r"node 'b' claims .*none of these paths is reached .* silently do nothing")


def test_shared_group_with_different_samplers():
    with pytest.raises(HypothesisError, match=r"shared group 'g': node 'a' draws with agree\(token_at\(0\)\) but node 'b'"):
        Hypothesis(Node("root", children=[Node("a", "output <- head.1.0", shared("g", agree(token_at(0)))),
                                          Node("b", "output <- head.1.1", shared("g", agree(token_at(1))))]))


def test_shared_group_across_parents_with_different_data():
    h = Hypothesis(Node("root", children=[
        Node("a", "output <- head.1.0", agree(token_at(1)), children=[Node("a2", ".k", shared("g", agree(token_at(2))))]),
        Node("b", "output <- head.1.1", agree(token_at(3)), children=[Node("b2", ".k", shared("g", agree(token_at(2))))])]))
    check(h, HypothesisError, r"shared group 'g': nodes 'a2' and 'b2' have parents that receive different data")


def test_empty_agreement_class_names_node_and_value():
    pool = Dataset(tiny_tokens(n=20, pos=4, vocab=4), name="pool")  # tokens 2..3 only
    outside = Dataset(torch.full((3, 4), 5), name="outside")  # token 5 never occurs in the pool
    h = one_child("output <- head.1.0", sampler=agree(token_at(1)))
    with pytest.raises(SamplingError, match=r"node 'child': no datum in the sampling pool agrees on feature "
                                            r"'token_at\(1\)' with value 5 .*if_empty='parent'"):
        scrub.run(MODEL, h, pool, reference=outside)
    ok = scrub.run(MODEL, one_child("output <- head.1.0", sampler=agree(token_at(1), if_empty="parent")), pool,
                   reference=outside)
    assert (ok.node_indices()["child"]["x"] >= 20).all()  # fell back to the parent's own datum


def test_feature_errors_name_the_feature():
    def broken(s):
        raise KeyError(s)

    h = one_child("output <- head.1.0", sampler=agree(from_datum(broken, name="broken")))
    with pytest.raises(DataError, match=r"feature 'broken' failed on dataset 'dataset': KeyError"):
        scrub.run(MODEL, h, DATA)


def test_path_syntax_errors():
    for text, match in [("output <- head.1.0 <-", "empty hop"), ("output <- ...", "ends in '...'"),
                        ("head.1.0", "must start at 'output'"), ("output <- head.1.0@x", "cannot read hop"),
                        ("output <- ... <- ... <- embed", "'...' twice"), ("output <- head.1.0@3:1", "start < stop")]:
        with pytest.raises(HypothesisError, match=match):
            parse_path(text)


def test_unknown_dataset_column():
    with pytest.raises(DataError, match=r"has no column 'lables'.*Did you mean 'labels'"):
        Dataset(torch.zeros(3, 2, dtype=torch.long), labels=torch.zeros(3)).column("lables")


def test_compile_catches_feature_mistakes_and_names_the_node():
    """Before any forward pass (the quickstart's promise): a feature reading a column the data lacks, or
    returning the wrong number of values, fails in scrub.compile with its node."""
    from hypotheses import column, from_batch

    for feature, match in [(column("lables"), r"node 'child' \(sampler\): .*no column 'lables'"),
                           (from_batch(lambda ds: [0, 1], name="two"), r"node 'child' \(sampler\): feature 'two' "
                                                                       r"returned 2 values for 20 data"),
                           (from_batch(lambda ds: None, name="none"), r"node 'child' \(sampler\): feature 'none' "
                                                                      r"returned NoneType")]:
        with pytest.raises(DataError, match=match) as info:
            scrub.compile(MODEL, one_child("output <- head.1.0", sampler=agree(feature)), DATA)
        assert info.value.node == "child" and info.value.field == "sampler"


def test_bundled_loaders_check_the_device():
    from hypotheses.cases import induction
    from scrub.errors import DeviceError

    with pytest.raises(DeviceError, match=r"unknown device 'gpu'\. Did you mean 'cuda'"):
        induction.load_model(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"no CUDA device here"):
            induction.load_model(device="cuda")
