"""Regenerate the measured tables of docs/case-studies/*.md.

    python scripts/case_studies.py [induction] [planted] [--n 2000] [--seeds 2]

Each page holds hand-written prose and blocks `<!-- BEGIN name -->` ...
`<!-- END name -->` that this script rewrites with tables measured now. The
paren balancer's tables come from scripts/reproduce_redwood_paren.py.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import torch

from hypotheses.cases import induction, registry
from scrub.app.report import markdown_table
from doc_blocks import put_block
from hypotheses.cases.induction import hypotheses as ind_h
from hypotheses.cases.planted import hypotheses as planted_h
from metrics import MSELoss, NextTokenLoss, VerdictRule, cancel_out_report, compare, evaluate

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "case-studies"
RULE = VerdictRule()


def put(page: str, block: str, text: str) -> None:
    put_block(DOCS / page, block, text)


def ranking_table(ranking, extra=None) -> str:
    rows = []
    for r in ranking.rows:
        ev, v = r.evaluation, r.verdict
        row = [r.rank, ev.name, v.loss_recovered.percent(), str(v.distance), f"{r.p_holm:.2g}",
               ("survives" if r.survives else "rejected") + (": " + "; ".join(v.reasons + v.flags) if not r.survives
                                                             or v.flags else "")]
        if extra:
            row.insert(4, extra(ev))
        rows.append(row)
    header = ["rank", "hypothesis", "loss recovered [95% CI]", f"{ranking.distance} [95% CI]", "p (Holm)", "verdict"]
    if extra:
        header.insert(4, "accuracy")
    return markdown_table(rows, header)


def settings(n, seeds, data_name) -> str:
    return f"_{n} reference data ({data_name}), seeds {list(seeds)}; rule: {RULE.describe()}._\n\n"


def run_induction(n: int, seeds) -> None:
    model, data = induction.load_model(), induction.make_dataset(n, seed=12345)
    loss = NextTokenLoss("induction_mask")
    ranking = compare(model, [mk() for mk in ind_h.ALL], data, loss, seeds=seeds)
    put("induction.md", "hypotheses", settings(n, seeds, "fresh sequences, loss at induction positions")
        + ranking_table(ranking))
    report = cancel_out_report(model, ind_h.induction_heads_only(), data, loss, seeds=seeds[:1])
    rows = [[str(c.component), str(c.scrubbed_alone), str(c.restored_alone)] for c in report.components]
    c = report.cost
    put("induction.md", "cancel", f"_'induction heads only', {n} reference data, seed {seeds[0]}; distance: "
        f"KL; random baseline KL {report.random_distance:.3g}. {c.large} of {c.components} components large alone; "
        f"{c.candidates} candidate sets, {c.measured_sets} measured ({c.variants} variants); cancel-out sets "
        f"found: {len(report.sets)}._\n\n"
        + markdown_table(rows, ["unexplained component", "scrubbed alone", "restored alone"]))


def _verdict(model, h, data, loss, **kw):
    ev = evaluate(model, h, data, loss, seeds=(0, 1), **kw)
    v = RULE.judge(ev)
    says = "no loss" if "no loss to recover" in v.flags else (
        "survives" if v.survives else ("flagged" if "loss preserved but function changed" in v.flags else "rejected"))
    pair = ""
    if says == "survives":
        rep = cancel_out_report(model, h, data, loss, seeds=(0, 1), **kw)
        if rep.pairs:
            says, pair = "flagged", f"cancel-out pair: {rep.pairs[0].a}, {rep.pairs[0].b}"
    return ev, v, says, pair
def _why(v) -> str:
    flags = [f.split(" (")[0] if f.startswith("the parts it leaves out cancel") else f
             for f in v.flags if f != "no loss to recover"]
    return "; ".join(list(v.reasons) + flags) or "-"


def run_planted() -> None:
    header = ["hypothesis", "ground truth", "loss recovered [95% CI]", "distance [95% CI]", "toolkit says", "why"]

    def rows(model, cases, data, loss, **kw):
        out = []
        for h, expected in cases:
            v = RULE.judge(evaluate(model, h, data, loss, seeds=(0, 1), **kw))
            says = planted_h.toolkit_says(v)
            lr = "undefined" if says == "no loss" else v.loss_recovered.percent()
            out.append([h.name, expected, lr, str(v.distance), says, _why(v)])
        return out

    cancel_header = ["hypothesis", "ground truth", "loss recovered [95% CI]", "distance [95% CI]",
                     "with independent draws", "toolkit says", "cancel-out sets named", "planted sets"]
    for key, (cases, loss, _) in planted_h.cancellation_cases().items():
        model, data = registry.MODELS[f"planted-{key}"](), registry.DATASETS[f"planted-{key}"]()
        table = []
        for h, expected, sets in cases():
            v = RULE.judge(evaluate(model, h, data, loss, seeds=(0, 1)))
            report = cancel_out_report(model, h, data, loss, seeds=(0, 1))
            named = "; ".join("{" + ", ".join(sorted(s.names)) + "}" for s in report.sets) or "none"
            planted = "; ".join("{" + ", ".join(sorted(s)) + "}" for s in sets) or "none"
            table.append([h.name, expected, v.loss_recovered.percent(), str(v.distance),
                          "-" if v.independent is None else str(v.independent), planted_h.toolkit_says(v), named,
                          planted])
        put("planted.md", key, markdown_table(table, cancel_header))
    table = []
    for act in (True, False):
        adapter, data = planted.xor_and_linear(act)
        for h, which, expected in planted_h.xor_and_linear(act):
            loss = MSELoss(dims=(0,) if which == "xor" else (1,))
            r = rows(adapter, [(h, expected)], data, loss)[0]
            table.append([("with" if act else "without") + " activation"] + r)
    put("planted.md", "xor", markdown_table(table, ["model"] + header))
    adapter, data, reference = planted.sine()
    put("planted.md", "sine", markdown_table(rows(adapter, planted_h.sine(), data, MSELoss(), reference=reference),
                                             header))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", default=["induction", "planted"])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    seeds = tuple(range(args.seeds))
    for study in args.studies:
        start = time.time()
        {"induction": lambda: run_induction(args.n, seeds), "planted": run_planted}[study]()
        print(f"{study}: {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
