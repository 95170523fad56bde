"""Benchmark the engine: against a hand-written expert scrub, the limit, the naive hook loop and nnsight;
stacking; memory.

    python scripts/bench.py --quick                 # CPU-sized: a few minutes
    python scripts/bench.py [--device cuda]         # full sizes
    python scripts/bench.py --workloads gpt2 --quick
    python scripts/bench.py --quick --workloads gpt2-bridge,pythia-bridge --doc bridges-cpu   # TransformerBridges
    python scripts/bench.py --quick --doc quick-cpu  # also rewrite that block of docs/performance.md
    python scripts/bench.py --only expert --threads 1  # the expert rows alone, on one thread

Every figure is a ratio against a baseline timed in the same process:

- the expert: a causal scrub written by hand in plain torch (scripts/bench_expert.py:
  clean activations cached over the data set, per-node data sampled, outputs
  assembled from cached pieces), run side by side with scrub on the same
  hypotheses and seeds, alternating which goes first; it also replays scrub's
  draws, and "max diff" is the largest difference of the outputs;
- the machine limit: the FLOPs a scrub of the drawn data needs at least
  (scrub/engine/cost.py `least_flops`) at this machine's measured
  matrix-multiply rate, so a slow forward pass cannot hide behind a ratio to itself;
- the limit: plain forward passes over the same data, each timed right after
  the run it is compared with, times the plan's least work in forward-pass
  equivalents (scrub/engine/cost.py);
- the naive hook loop: one full forward pass with TransformerLens hooks per
  treeified node (the site-level walk of tests/reference.py);
- nnsight: the same walk with every forward pass an nnsight trace;
- stacking: K hypotheses one after another against K in one merged plan;
- memory: peak memory at N and 4N reference data with a fixed chunk size;
- cancel: the cancel-out report (its variants and its time) against one
  evaluation of the same hypothesis, and one evaluation with the
  independent-draw check against one without it (`--tables cancel` alone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import scrub  # noqa: E402
from scrub.engine.cost import least_flops, plan_limit  # noqa: E402
from scrub.engine.executor import DEFAULT_MAX_ROWS, run_width  # noqa: E402
from scrub.engine.run import compile_many, run_seeds  # noqa: E402
from scrub.app.report import markdown_table  # noqa: E402

import bench_workloads as W  # noqa: E402
from doc_blocks import put_block  # noqa: E402

SIZES = {  # (reference data, naive/nnsight data, sequence length)
    "quick": {"induction": (512, 64), "paren": (512, 64), "gpt2": (8, 2, 32), "gpt2-bridge": (8, 1, 32),
              "pythia-bridge": (8, 1, 32)},
    "full": {"induction": (4096, 256), "paren": (4096, 256), "gpt2": (64, 4, 128), "gpt2-bridge": (64, 2, 128),
             "pythia-bridge": (64, 2, 128)},
}
SEQUENCE_WORKLOADS = {"gpt2": W.gpt2_shaped, "gpt2-bridge": W.gpt2_bridge, "pythia-bridge": W.pythia_bridge}
EXPERT_SIZES = {  # reference data (and GPT-2 sequence length) of the expert rows
    "quick": {"paren": 4000, "induction": 1024, "gpt2": (16, 32)},
    "full": {"paren": 4000, "induction": 4096, "gpt2": (64, 128)},
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 3, warm: bool = True) -> float:
    """Median wall time of `fn()` over `repeat` runs (after one warm-up unless `warm` is False)."""
    if warm:
        fn()
        sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def forward_pass_fn(model, inputs, rows: int):
    """Plain forward passes over `inputs`, in batches of `rows`: the unit the limit is counted in."""
    def go():
        with torch.inference_mode():
            for i in range(0, len(inputs), rows):
                model(inputs[i:i + rows])
    return go


def paired(fn, unit, device: str, repeat: int) -> tuple[float, float]:
    """Median time of `fn()` and median of its time over the time of `unit()` run right after it.

    Pairing each run with its own unit keeps the ratio honest on a machine whose
    speed drifts during the benchmark (shared CPUs, clocks, other processes).
    """
    fn()
    unit()
    times, ratios = [], []
    for _ in range(repeat):
        t_fn = timed(fn, device, 1, warm=False)
        times.append(t_fn)
        ratios.append(t_fn / timed(unit, device, 1, warm=False))
    return sorted(times)[len(times) // 2], sorted(ratios)[len(ratios) // 2]


def workload(name: str, mode: str):
    size = SIZES[mode][name]
    if name in SEQUENCE_WORKLOADS:
        return SEQUENCE_WORKLOADS[name](size[0], size[2]), size[1]
    return getattr(W, name)(size[0]), size[1]


def run_ours(compiled, seeds=(0,), batch=None):
    return run_seeds(compiled, list(seeds), keep_outputs=False, batch_size=batch)


def matmul_rate(device: str, n: int = 1024, repeat: int = 5) -> float:
    """This machine's float32 matrix-multiply rate (FLOP/s): the median of `repeat` n x n products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / timed(lambda: a @ b, device, repeat)


def machine_limit(results, adapter, data, read_positions=None) -> float:
    """The least FLOPs of the run that gave `results` (its stacked plan and drawn data)."""
    r = results[0][0]
    width = run_width(r.plan, adapter, adapter.n_positions(data.inputs), read_positions)
    return least_flops(r.plan, adapter, data.inputs, r.roles, width)


def bench_speed(w, device: str, repeat: int, rate: float) -> tuple[list, dict]:
    model = w.model.to(device)
    adapter = scrub.adapt(model)
    data = w.data.to(device)
    rows = []
    n = len(data)
    # the unit: plain forward passes in batches as large as the engine's stacked passes (a fair baseline)
    forward = forward_pass_fn(model, data.inputs, min(n, DEFAULT_MAX_ROWS))
    for h in w.hypotheses:
        compiled = scrub.compile(adapter, h, data)
        limit = plan_limit(compiled.plan, adapter).forward_equivalents
        t, per_forward = paired(lambda: run_ours(compiled), forward, device, repeat)
        per_s = n / t
        flops = machine_limit(run_ours(compiled), adapter, data)
        rows.append([w.name, h.name, f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}", f"{limit:.2f}",
                     f"{per_forward / limit:.2f}", f"{flops / 1e9:.2f}", f"{t / (flops / rate):.1f}"])
    return rows, {"forward": forward, "n": n}


def expert_workload(name: str, mode: str):
    size = EXPERT_SIZES[mode][name]
    return W.gpt2_expert(*size) if name == "gpt2" else getattr(W, f"{name}_expert")(size)


def bench_expert(ew, device: str, pairs: int, rate: float) -> list:
    """scrub and the hand-written expert on the same hypotheses and seeds, side by side (the order
    alternates); the expert replaying scrub's draws checks the numbers."""
    from bench_expert import Expert, run_all

    model = ew.model.to(device)
    data = ew.data.to(device)
    adapter = scrub.adapt(model)
    hyps = ew.hypotheses()
    n_pos = data.inputs.shape[1]
    read = ew.read if ew.read is not None else list(range(n_pos))
    features = {k: f for k, (f, _) in ew.features.items()}
    tokens = data.inputs

    def expert():
        return Expert(model, tokens, data.raw, ew.shapes, features, read, model.cfg.pad_token_id,
                      model.cfg.attention_dir == "causal")

    # the numbers: the expert on scrub's draws
    drawn = run_seeds(compile_many(adapter, hyps, data), list(ew.seeds[:1]), read_positions=ew.read)[0]
    replay = expert()
    diff = 0.0
    for shape, result in zip(ew.shapes, drawn):
        idx = result.node_indices()
        ys = replay.assemble(shape, idx["output"]["other"], {c.name: idx[c.name]["x"] for c in shape.claims})
        diff = max(diff, (ys - result.scrubbed[:, read]).abs().max().item())
    del drawn, replay
    metrics = {"loss": lambda ys, ym, b: ew.loss(ys, b)}
    rows = max(1, 2 ** 26 // (len(read) * model.cfg.vocab_out))  # expert's logits per step: 256 MB at most

    def ours():
        compiled = compile_many(adapter, hyps, data)
        return run_seeds(compiled, list(ew.seeds), metrics=metrics, keep_outputs=False, read_positions=ew.read)

    def theirs():
        return run_all(expert(), ew.shapes, ew.seeds, ew.expert_loss, rows)

    results = ours()
    theirs()
    t_ours, t_exp, ratios = [], [], []
    for i in range(pairs):
        first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)
        a = timed(first, device, 1, warm=False)
        b = timed(second, device, 1, warm=False)
        mine, other = (a, b) if first is ours else (b, a)
        t_ours.append(mine)
        t_exp.append(other)
        ratios.append(mine / other)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    machine = machine_limit(results, adapter, data, ew.read) / rate
    return [ew.name, f"{len(ew.shapes)} x {len(ew.seeds)}", len(data), f"{med(t_ours):.2f}", f"{med(t_exp):.2f}",
            f"{med(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]", f"{diff:.1e}",
            f"{machine * rate / 1e9:.1f}", f"{med(t_ours) / machine:.1f}", f"{med(t_exp) / machine:.1f}"]


def bench_baselines(w, n_small: int, device: str, use_nnsight: bool) -> list:
    """Ours, the naive hook loop and nnsight on the main hypothesis and the same data subset."""
    from reference import Reference, ScrubTransformerOps

    model = w.model.to(device)
    data = w.data.take(list(range(n_small))).to(device)
    result = scrub.run(model, w.main, data, seed=0)
    t_ours = timed(lambda: scrub.run(model, w.main, data, seed=0, keep_outputs=False), device, 3)
    ops = (w.ops or ScrubTransformerOps)(model)
    start = time.perf_counter()
    naive = Reference(ops, w.main, data.inputs, result).run()
    t_naive = time.perf_counter() - start
    diff = (naive - result.scrubbed).abs().max().item()
    row = [w.name, w.main.name, n_small, f"{t_ours / n_small * 1e3:.1f}", f"{t_naive / n_small * 1e3:.1f}",
           f"{t_naive / t_ours:.1f}x", f"{diff:.1e}"]
    if use_nnsight and w.ops is None:  # the nnsight operations are written for ScrubTransformers
        from bench_nnsight import NNsightOps

        nn_ops = NNsightOps(model)
        start = time.perf_counter()
        via_nnsight = Reference(nn_ops, w.main, data.inputs, result).run()
        t_nn = time.perf_counter() - start
        row += [f"{t_nn / n_small * 1e3:.1f}", f"{t_nn / t_ours:.1f}x",
                f"{(via_nnsight - result.scrubbed).abs().max().item():.1e}"]
    else:
        row += ["-", "-", "-"]
    return row


def bench_stacking(w, k: int, device: str, forward, repeat: int) -> list:
    model = w.model.to(device)
    adapter = scrub.adapt(model)
    data = w.data.to(device)
    variants = w.variants(k)
    singles = [scrub.compile(adapter, h, data) for h in variants]
    stacked = compile_many(adapter, variants, data)
    t_seq = timed(lambda: [run_ours(c) for c in singles], device, repeat)
    t_stack, per_forward = paired(lambda: run_ours(stacked), forward, device, repeat)
    limit = plan_limit(stacked.plan, adapter).forward_equivalents
    return [w.name, len(variants), f"{t_seq:.2f}", f"{t_stack:.2f}", f"{t_seq / t_stack:.1f}x", f"{limit:.1f}",
            f"{per_forward / limit:.2f}"]


def bench_cancel(w, device: str, repeat: int) -> list:
    """Variants and time of the cancel-out report, and the cost of the independent-draw check, each against
    one evaluation (`metrics.evaluate`, which includes the check) of the workload's cancel hypothesis."""
    from metrics import cancel_out_report, evaluate
    from metrics.cancel import unexplained_components

    model = (w.cancel_model or w.model).to(device)
    data = w.data.to(device)
    h = w.cancel
    n = len(unexplained_components(h, scrub.adapt(model).graph))
    t_eval = timed(lambda: evaluate(model, h, data, w.loss), device, repeat)
    t_plain = timed(lambda: evaluate(model, h, data, w.loss, check_independent=False), device, repeat)
    reports = []
    t_report = timed(lambda: reports.append(cancel_out_report(model, h, data, w.loss)), device, 1)
    c = reports[-1].cost
    found = "; ".join(" + ".join(m.split(" <- ")[-1] for m in sorted(s.names)) for s in reports[-1].sets) or "none"
    return [w.name, h.name, n, c.large, c.candidates, c.measured_sets, f"{c.effect_variants} + {c.verify_variants}",
            found, f"{t_report:.1f}", f"{t_eval:.2f}", f"{t_report / t_eval:.0f}x",
            f"{t_plain:.2f}", f"{t_eval / t_plain:.2f}x"]


def peak_memory(name: str, mode: str, scale: int, batch: int, device: str) -> float:
    """Peak memory (MB) of one run at `scale` times the reference data, in a fresh process."""
    cmd = [sys.executable, __file__, "--_memory", name, mode, str(scale), str(batch), device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(name: str, mode: str, scale: int, batch: int, device: str) -> None:
    w, _ = workload(name, mode)
    data = w.data
    if scale > 1:
        data = data.take(torch.arange(len(data)).repeat(scale))
    model = w.model.to(device)
    compiled = scrub.compile(model, w.main, data.to(device))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:  # reset the kernel's peak-RSS counter so only the run is measured (Linux: clear_refs 5)
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        base = _rss("VmRSS")
    run_ours(compiled, batch=batch)
    if device.startswith("cuda"):
        print((torch.cuda.max_memory_allocated() - base) / 2**20)
    else:
        print((_rss("VmHWM") - base) / 2**20)


def _rss(field: str) -> int:
    """Bytes of a /proc/self/status memory field (VmRSS: now; VmHWM: peak since the last reset)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_memory":
        _memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized workloads (a few minutes)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workloads", default="induction,paren,gpt2")
    parser.add_argument("--stack", type=int, default=16, help="hypotheses stacked in one pass")
    parser.add_argument("--no-nnsight", action="store_true")
    parser.add_argument("--tables", default="expert,speed,baselines,stacking,memory,cancel",
                        help="which measurements to run (comma-separated)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--only", choices=["expert"], help="only the rows against the hand-written expert "
                                                           "(--tables expert)")
    parser.add_argument("--pairs", type=int, default=7, help="side-by-side runs against the expert (GPT-2: 3)")
    parser.add_argument("--json", type=pathlib.Path, help="also write the tables as JSON")
    parser.add_argument("--doc", metavar="BLOCK", help="also rewrite block BLOCK of docs/performance.md")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import nnsight  # noqa: F401
        use_nn = not args.no_nnsight
    except ImportError:
        use_nn = False
        print("nnsight is not installed (pip install nnsight); its column is skipped")
    speed, base, stack, memory, cancel, expert = [], [], [], [], [], []
    which = {"expert"} if args.only == "expert" else set(args.tables.split(","))
    started = time.time()
    rate = matmul_rate(args.device)
    print(f"matrix-multiply rate: {rate / 1e9:.1f} GFLOP/s", flush=True)
    for name in args.workloads.split(","):
        if "expert" in which and name in EXPERT_SIZES[mode]:
            print(f"[{time.time() - started:5.0f}s] {name}: against the expert", flush=True)
            expert.append(bench_expert(expert_workload(name, mode), args.device,
                                       min(args.pairs, 3) if name == "gpt2" else args.pairs, rate))
        if not which - {"expert"}:
            continue
        w, n_small = workload(name, mode)
        print(f"[{time.time() - started:5.0f}s] {name}: {len(w.data)} reference data", flush=True)
        repeat = 1 if name in SEQUENCE_WORKLOADS else 5  # medians of 5 where a run takes seconds, not minutes
        info = None
        if which & {"speed", "stacking"}:
            rows, info = bench_speed(w, args.device, repeat, rate)
            speed += rows if "speed" in which else []
        if "baselines" in which:
            base.append(bench_baselines(w, n_small, args.device, use_nn))
        if "stacking" in which:
            stack.append(bench_stacking(w, args.stack, args.device, info["forward"], min(repeat, 3)))
        if "memory" in which:
            batch = max(1, len(w.data) // 4)
            memory.append([name, batch, len(w.data), f"{peak_memory(name, mode, 1, batch, args.device):.0f}",
                           4 * len(w.data), f"{peak_memory(name, mode, 4, batch, args.device):.0f}"])
        if "cancel" in which:
            cancel.append(bench_cancel(w, args.device, min(repeat, 3)))
    tables = {
        "against a hand-written expert scrub": (
            ["workload", "hypotheses x seeds", "reference data", "scrub (s)", "expert (s)",
             "scrub / expert, median [range]", "max diff (same draws)", "least work (GFLOP)",
             "scrub / machine limit", "expert / machine limit"], expert),
        "speed": (["workload", "hypothesis", "data/s", "limit (fwd/datum)", "time / limit", "least work (GFLOP)",
                   "time / machine limit"], speed),
        "baselines": (["workload", "hypothesis", "data", "ours ms/datum", "naive hook loop ms/datum", "speedup",
                       "max diff", "nnsight ms/datum", "speedup", "max diff (nnsight)"], base),
        "stacking": (["workload", "hypotheses", "one after another (s)", "stacked (s)", "speedup",
                      "stacked limit (fwd/datum)", "stacked time / limit"], stack),
        "memory": (["workload", "chunk", "reference data", "peak MB above start", "reference data",
                    "peak MB above start"], memory),
        "cancel": (["workload", "hypothesis", "unexplained components", "large", "candidate sets", "sets measured",
                    "variants (effects + verification)", "sets found", "report (s)", "one evaluation (s)",
                    "report / evaluation", "evaluation without the check (s)", "with / without the check"], cancel),
    }
    tables = {k: v for k, v in tables.items() if v[1]}
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    command = " ".join(["python", "scripts/bench.py", *sys.argv[1:]])
    heading = (f"{mode} benchmark on {device}, {torch.get_num_threads()} torch thread(s), matrix-multiply rate "
               f"{rate / 1e9:.1f} GFLOP/s, torch {torch.__version__}, {datetime.date.today()}: "
               f"`{command}` ({time.time() - started:.0f}s)")
    body = "\n\n".join(f"**{title}**\n\n{markdown_table(rows, header)}" for title, (header, rows) in tables.items())
    print(f"\n## {heading}\n\n{body}\n")
    if args.json:
        args.json.write_text(json.dumps({k: {"header": h, "rows": r} for k, (h, r) in tables.items()}, indent=1))
    if args.doc:
        put_block(HERE.parent / "docs" / "performance.md", args.doc, f"{heading}\n\n{body}")


if __name__ == "__main__":
    main()
