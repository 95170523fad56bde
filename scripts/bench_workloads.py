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
    main = hyps.exp_1b()  # the naive loop and nnsight run the main one: 2a's exclusions need one pass per path
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


PLANTED_SETS = (("head.8.0", "head.8.1"), ("head.11.0", "head.11.1", "head.11.2"))  # heads no hypothesis here claims


def plant_cancellations(model, scale: float = 7.0):
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


# --- workloads for the hand-written expert scrub (scripts/bench_expert.py) -------------------------

@dataclass
class ExpertWorkload:
    """Hypotheses of the expert's shape (scripts/bench_expert.py) on one model, under several seeds.

    features: name -> (the expert's own function of (tokens, raw) giving one value per datum, the same
    feature for scrub); read: the output positions the loss reads (None: all)."""

    name: str
    model: torch.nn.Module
    data: Dataset
    loss: object
    expert_loss: object  # (logits at the read positions, rows) -> per-datum loss
    shapes: list
    features: dict
    read: object
    seeds: tuple = (0, 1, 2, 3, 4)

    def hypotheses(self) -> list:
        return [shape_hypothesis(s, self.features) for s in self.shapes]


def shape_hypothesis(shape, features) -> Hypothesis:
    """The scrub hypothesis an expert shape stands for: leaf claims of heads' direct paths under a root
    whose other inputs are resampled."""
    kids = []
    for c in shape.claims:
        at = "" if c.positions is None else "@" + ",".join(str(p) for p in c.positions)
        paths = [f"output <- head.{layer}.{h}{at}" for layer, h in c.heads]
        kids.append(Node(c.name, paths) if c.feature is None else Node(c.name, paths, agree(features[c.feature][1])))
    return Hypothesis(Node("output", children=kids), name=shape.name)


def _next_token_loss(tokens, mask):
    import torch.nn.functional as F

    def loss(logits, rows):
        logp = F.log_softmax(logits[:, :-1].float(), -1)
        nll = -logp.gather(-1, tokens[rows, 1:, None]).squeeze(-1)
        w = mask[rows, :-1].float()
        return (nll * w).sum(-1) / w.sum(-1)
    return loss


def paren_expert(n: int = 4000, model=None, data=None) -> ExpertWorkload:
    """The paren balancer (`paren(n)`, or the given model and data), 16 hypotheses of the case study's
    shape: heads 1.0, 2.0 and 2.1 at position 0 claimed on their direct paths with agreement samplers,
    everything else resampled."""
    import numpy as np
    import torch.nn.functional as F
    from bench_expert import Claim, Shape
    from hypotheses import from_datum
    from hypotheses.cases.paren import model as P
    from metrics import ClassificationLoss

    w = paren(n) if model is None else Workload("paren", model, data, None, [], None)
    tests = {"count": P.is_equal_count, "horizon": P.elevation_never_negative, "open": P.starts_with_open,
             "balanced": P.is_balanced, "both": lambda s: 2 * P.is_equal_count(s) + P.elevation_never_negative(s)}
    features = {name: ((lambda fn: lambda tokens, raw: np.array([fn(s) for s in raw]))(fn),
                       from_datum(fn, name=f"{name} test")) for name, fn in tests.items()}
    a, b, c = (1, 0), (2, 0), (2, 1)

    def claim(name, heads, feature):
        return Claim(name, tuple(heads), (0,), feature)

    shapes = [Shape("count 2.0; horizon 1.0, 2.1", (claim("c", [b], "count"), claim("h", [a, c], "horizon"))),
              Shape("count 2.0; horizon 2.1; open 1.0", (claim("c", [b], "count"), claim("h", [c], "horizon"),
                                                          claim("o", [a], "open"))),
              Shape("all three: both tests", (claim("t", [a, b, c], "both"),)),
              Shape("all three: balanced", (claim("t", [a, b, c], "balanced"),)),
              Shape("all three exact", (claim("t", [a, b, c], None),)),
              Shape("count 2.0 alone", (claim("c", [b], "count"),)),
              Shape("horizon 2.0; count 1.0, 2.1", (claim("h", [b], "horizon"), claim("c", [a, c], "count"))),
              Shape("open 1.0; both 2.0, 2.1", (claim("o", [a], "open"), claim("t", [b, c], "both")))]
    for f1 in ("count", "both", "balanced"):
        for f2 in ("horizon", "both", "balanced"):
            if (f1, f2) != ("count", "horizon"):
                shapes.append(Shape(f"{f1} 2.0; {f2} 1.0, 2.1", (claim("x", [b], f1), claim("y", [a, c], f2))))
    labels = w.data.labels

    def expert_loss(logits, rows):
        return F.cross_entropy(logits[:, 0].float(), labels[rows], reduction="none")

    return ExpertWorkload("paren", w.model, w.data, ClassificationLoss(0), expert_loss, shapes[:16], features, [0])


def induction_expert(n: int) -> ExpertWorkload:
    """The induction model: layer-1 heads claimed on their direct paths (exact, or agreeing on the
    token they predict from), everything else resampled; next-token loss at the induction positions."""
    from bench_expert import Claim, Shape
    from hypotheses.cases.induction import model as ind
    from metrics import NextTokenLoss

    model, data = ind.load_model(), ind.make_dataset(n, seed=12345)
    features = {f"token {p}": ((lambda p: lambda tokens, raw: tokens[:, p].numpy())(p), token_at(p)) for p in (-2, -1)}
    heads = [(1, h) for h in range(4)]
    shapes = [Shape("induction heads exact", (Claim("i", tuple(heads)),))]
    shapes += [Shape(f"head 1.{h} exact", (Claim("i", ((1, h),)),)) for h in range(4)]
    shapes += [Shape(f"head 1.{h} on token -1", (Claim("i", ((1, h),), None, "token -1"),)) for h in range(4)]
    shapes += [Shape("1.0, 1.2 exact; 1.1, 1.3 on token -1", (Claim("a", ((1, 0), (1, 2))),
                                                               Claim("b", ((1, 1), (1, 3)), None, "token -1")))]
    shapes += [Shape("induction heads on token -2", (Claim("i", tuple(heads), None, "token -2"),))]
    shapes += [Shape("layer 0 and 1 heads exact", (Claim("i", tuple((layer, h) for layer in (0, 1) for h in range(4))),))]
    shapes += [Shape(f"heads 0.{h}, 1.{h} exact", (Claim("i", ((0, h), (1, h))),)) for h in range(4)]
    tokens, mask = data.inputs, data.fields["induction_mask"]
    return ExpertWorkload("induction", model, data, NextTokenLoss("induction_mask"), _next_token_loss(tokens, mask),
                          shapes[:16], features, None)


def gpt2_expert(n: int, seq: int) -> ExpertWorkload:
    """The GPT-2-small-shaped model: the IOI heads' direct paths, agreeing on the last token."""
    from bench_expert import Claim, Shape

    w = gpt2_shaped(n, seq)
    features = {"last token": (lambda tokens, raw: tokens[:, -1].numpy(), token_at(-1))}

    def hs(names):
        return tuple((int(s.split(".")[1]), int(s.split(".")[2])) for s in names)

    shapes = [Shape("name movers", (Claim("m", hs(NAME_MOVERS), None, "last token"),)),
              Shape("name movers + backup", (Claim("m", hs(NAME_MOVERS), None, "last token"),
                                             Claim("b", hs(BACKUP), None, "last token"))),
              Shape("name movers exact", (Claim("m", hs(NAME_MOVERS)),)),
              Shape("all 19 heads direct", (Claim("m", hs(NAME_MOVERS + BACKUP), None, "last token"),
                                            Claim("o", hs(S_INHIBITION + DUPLICATE)),))]
    tokens, mask = w.data.inputs, w.data.fields["loss_mask"]
    from metrics import NextTokenLoss

    return ExpertWorkload("gpt2-shaped", w.model, w.data, NextTokenLoss(), _next_token_loss(tokens, mask), shapes,
                          features, None)
