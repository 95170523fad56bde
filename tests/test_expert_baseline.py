"""The hand-written expert scrub (scripts/bench_expert.py, the benchmark's speed bar) computes the
engine's numbers when it replays the data the engine drew."""

import pathlib
import sys

import numpy as np
import torch

from scrub.engine.run import compile_many, run_seeds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
import bench_workloads as W  # noqa: E402
from bench_expert import Expert, run_all  # noqa: E402

ATOL = 2e-5


def _replayed(ew, seed: int):
    """Max difference between the engine's outputs and the expert's on the engine's draws."""
    model, data = ew.model, ew.data
    P = data.inputs.shape[1]
    read = ew.read if ew.read is not None else list(range(P))
    results = run_seeds(compile_many(model, ew.hypotheses(), data), [seed], read_positions=ew.read)[0]
    expert = Expert(model, data.inputs, data.raw, ew.shapes, {k: f for k, (f, _) in ew.features.items()}, read,
                    model.cfg.pad_token_id, model.cfg.attention_dir == "causal")
    worst = 0.0
    for shape, result in zip(ew.shapes, results):
        drawn = result.node_indices()
        xs = {c.name: drawn[c.name]["x"] for c in shape.claims}
        ours = expert.assemble(shape, drawn["output"]["other"], xs)
        worst = max(worst, (ours - result.scrubbed[:, read]).abs().max().item())
    return worst, expert


def test_expert_equals_engine_on_paren():
    from hypotheses.cases.paren import model as P

    ew = W.paren_expert(model=P.load_model(), data=P.make_dataset(300, seed=1))
    worst, expert = _replayed(ew, seed=2)
    assert worst < ATOL
    losses = run_all(expert, ew.shapes[:2], (0,), ew.expert_loss)
    assert losses[0][0].shape == (300,) and torch.isfinite(losses[0][0]).all()


def test_expert_equals_engine_on_induction():
    ew = W.induction_expert(64)
    ew.shapes = ew.shapes[:4]
    worst, _ = _replayed(ew, seed=1)
    assert worst < ATOL


def test_expert_draws_agree_with_the_feature():
    from bench_expert import _agree, _classes

    values = np.array([0, 1, 1, 2, 2, 2])
    drawn = _agree(_classes(values), np.array([0, 1, 3, 5] * 50), np.random.default_rng(0))
    assert (values[drawn] == values[np.array([0, 1, 3, 5] * 50)]).all()
    assert set(drawn[1::4]) == {1, 2}
