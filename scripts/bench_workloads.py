"""Benchmark workloads: a model, data and hypotheses each (see scripts/bench.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from scrub import Dataset, ScrubTransformer, TransformerConfig
from hypotheses import Hypothesis, Node, agree, token_at, unconditional


@dataclass
class Workload:
    name: str
    model: torch.nn.Module
    data: Dataset
    loss: object
    hypotheses: list  # the workload's own hypotheses
    main: Hypothesis  # the one compared with the naive loop and nnsight
    ops: object = None  # the reference's model operations for the naive loop (default: ScrubTransformerOps)
    cancel_hypothesis: Optional[Hypothesis] = None  # the one the cancel-out report runs on (default: main)
    cancel_model: Optional[torch.nn.Module] = None  # the model it runs on (default: model)

    @property
    def cancel(self) -> Hypothesis:
        return self.cancel_hypothesis or self.main

    def variants(self, k: int) -> list:
        """k variants of `main` for the stacking measurement (cancel-out report variants)."""
        return restore_variants(self.model, self.main, k)


def restore_variants(model, h: Hypothesis, k: int) -> list:
    """k distinct variants of h, as a cancel-out report builds them: h with one unexplained component restored."""
    import scrub
    from metrics.cancel import unexplained_components, with_restored

    components = unexplained_components(h, scrub.adapt(model).graph)
    return [with_restored(h, [c], f"{h.name} + {c}") for c in components[:k]]


def induction(n: int) -> Workload:
    from hypotheses.cases.induction import model as ind
    from hypotheses.cases.induction import hypotheses as hyps
    from metrics import NextTokenLoss

    main = hyps.full_induction()
    return Workload("induction", ind.load_model(), ind.make_dataset(n, seed=12345), NextTokenLoss("induction_mask"),
                    [mk() for mk in hyps.ALL], main)


def paren(n: int) -> Workload:
    from hypotheses.cases.paren import model as P
    from hypotheses.cases.paren import hypotheses as hyps
    from metrics import ClassificationLoss

    if P.external_available():
        model, data = P.load_external_model(), P.load_external_data("redwood", n=n)
    else:
        model, data = P.load_model(), P.make_dataset(n, seed=1)
    main = hyps.exp_2a()
    return Workload("paren", model, data, ClassificationLoss(0), [mk() for mk in hyps.ALL], main)


# An IOI-shaped hypothesis in GPT-2 small's coordinates (the heads the IOI circuit names), 19 heads.
NAME_MOVERS = ["head.9.6", "head.9.9", "head.10.0"]
S_INHIBITION = ["head.7.3", "head.7.9", "head.8.6", "head.8.10"]
DUPLICATE = ["head.0.1", "head.3.0", "head.5.5", "head.6.9"]
BACKUP = ["head.10.10", "head.10.6", "head.10.2", "head.10.1", "head.11.2", "head.9.7", "head.9.0", "head.11.9"]


def ioi_hypothesis() -> Hypothesis:
    dup = Node("duplicate-token heads", [f".v <- {h}" for h in DUPLICATE], agree(token_at(2)))
    s_inh = Node("S-inhibition heads", [f".q <- {h}" for h in S_INHIBITION], agree(token_at(4)), children=[dup])
    movers = Node("name movers", [f"output <- {h}" for h in NAME_MOVERS], agree(token_at(-1)), children=[s_inh])
    backup = Node("backup name movers", [f"output <- {h}" for h in BACKUP], agree(token_at(-1)))
    return Hypothesis(Node("output", children=[movers, backup]), name="IOI-shaped, 19 heads")


def gpt2_shaped(n: int, seq: int) -> Workload:
    cfg = TransformerConfig(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
                            act_fn="gelu_new", normalization="LN", seed=0, init_range=0.02)
    return _ioi_shaped("gpt2-shaped", ScrubTransformer(cfg).eval(), n, seq)


def _ioi_shaped(name: str, model, n: int, seq: int, ops=None) -> Workload:
    """A 12-layer, 12-head model with the IOI-shaped hypothesis, a smaller one and the random baseline."""
    from metrics import NextTokenLoss

    tokens = torch.randint(0, 100, (n, seq), generator=torch.Generator().manual_seed(0))  # few values: real classes
    mask = torch.zeros(n, seq, dtype=torch.bool)
    mask[:, -2] = True  # loss where the IOI answer would be predicted
    data = Dataset(tokens, fields={"loss_mask": mask}, name=f"random tokens ({seq} long)")
    main = ioi_hypothesis()
    simple = Hypothesis(Node("output", children=[Node("name movers", [f"output <- {h}" for h in NAME_MOVERS],
                                                      agree(token_at(-1)))]), name="name movers only")
    rnd = Hypothesis(Node("output", sampler=unconditional()), name="random")
    # "name movers only" leaves 155 components unexplained (every other head, MLP and embedding at the output);
    # on our transformer the cancel-out report runs on a copy with two planted sets among them
    planted = plant_cancellations(model) if isinstance(model, ScrubTransformer) else None
    return Workload(name, model, data, NextTokenLoss(), [main, simple, rnd], main, ops, simple, planted)


def _bridge(config, model_class):
    """A TransformerBridge over a randomly initialised Hugging Face model built from `config` (no download:
    the folder TransformerBridge boots from holds only the config)."""
    import tempfile
    import warnings

    from scrub.huggingface import offline

    offline()
    from transformer_lens.model_bridge import TransformerBridge

    torch.manual_seed(0)
    model = model_class(config).eval()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config.save_pretrained(folder)
        return TransformerBridge.boot_transformers(folder, hf_model=model, device="cpu").eval()


def gpt2_bridge(n: int, seq: int) -> Workload:
    """GPT-2 small's shape (transformers' GPT2Config defaults) as a TransformerBridge, random weights."""
    import transformers
    from reference import GPT2Ops

    model = _bridge(transformers.GPT2Config(), transformers.GPT2LMHeadModel)
    return _ioi_shaped("gpt2-bridge", model, n, seq, GPT2Ops)


def pythia_bridge(n: int, seq: int) -> Workload:
    """Pythia-160m's shape (GPT-NeoX: rotary on a quarter of each head, parallel attention and MLP) as a
    TransformerBridge, random weights."""
    import transformers
    from reference import NeoXOps

    config = transformers.GPTNeoXConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                        intermediate_size=3072, vocab_size=50304, rotary_pct=0.25,
                                        use_parallel_residual=True, max_position_embeddings=2048)
    return _ioi_shaped("pythia-bridge", _bridge(config, transformers.GPTNeoXForCausalLM), n, seq, NeoXOps)


PLANTED_SETS = (("head.10.0", "head.10.1"), ("head.11.0", "head.11.1", "head.11.2"))


def plant_cancellations(model, scale: float = 30.0):
    """A copy of `model` whose heads in each of PLANTED_SETS read alike (the first head's q/k/v weights) and
    write large outputs that sum to zero (W_O of A, B, ... and minus their sum for the last): cancel-out
    sets of sizes 2 and 3 hidden among GPT-2 small's heads."""
    import copy

    planted = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for heads in PLANTED_SETS:
            layer, first = (int(v) for v in heads[0].split(".")[1:])
            attn = planted.blocks[layer].attn
            idx = [int(h.split(".")[2]) for h in heads]
            writes = [torch.randn(attn.W_O.shape[1:], generator=g) * 0.02 * scale for _ in idx[:-1]]
            writes.append(-sum(writes))
            for i, w in zip(idx, writes):
                for W in (attn.W_Q, attn.W_K, attn.W_V):
                    W[i] = W[first]
                for b in (attn.b_Q, attn.b_K, attn.b_V):
                    b[i] = b[first]
                attn.W_O[i] = w
    return planted
