"""The `scrub` command: run, compare, cancel, sweep, validate, sites, kinds.

Exit codes: 0 ran (whatever the verdicts); 2 invalid input (a bad spec,
option, device, output folder or model name); 1 any other error; 130
interrupted, at any moment, start-up included. Invalid input gets a
one-paragraph message and no traceback (`--debug` shows one). See docs/cli.md.

Start-up stays light: this module imports click and `scrub.errors` only;
commands import what they need when they run (`--help` loads no torch).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
import traceback
import warnings
from typing import Optional

import click

from scrub.errors import ScrubError, ScrubWarning

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class Failure(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _invalid(exc: Exception) -> Failure:
    return Failure(str(exc), EXIT_INVALID)


def _guard(debug: bool, fn, *args, **kw):
    """Run a command body; map errors to messages and exit codes."""
    from scrub.app.spec import SpecError

    try:
        return fn(*args, **kw)
    except Failure:
        raise
    except KeyboardInterrupt:
        raise Failure("interrupted. Finished results are on disk; run the same command again to resume.",
                      EXIT_INTERRUPTED) from None
    except (SpecError, ScrubError) as exc:
        if debug:
            traceback.print_exc()
        raise _invalid(exc) from None
    except MemoryError:
        raise Failure("out of memory; use fewer reference data (--reference), a smaller batch_size, or a machine with "
                      "more memory.", EXIT_ERROR) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report, never exit 0
        if debug:
            traceback.print_exc()
        raise Failure(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                      EXIT_ERROR) from None


INTERRUPTED = "interrupted. Finished results are on disk; run the same command again to resume."


class ScrubGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Failure as f:
            click.echo(f"error: {f}", err=True)
            ctx.exit(f.code)
        except KeyboardInterrupt:  # Ctrl-C outside a command body (while its imports run): quiet, as inside
            click.echo(f"error: {INTERRUPTED}", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _device(ctx, param, value):
    """--device checked when the command line is read: exit 2 with the names that work here."""
    if value is None:
        return None
    from scrub.devices import resolve_device

    try:
        return str(resolve_device(value))
    except ScrubError as exc:
        raise click.BadParameter(exc.message) from None


common = [
    click.option("--device", default=None, callback=_device, expose_value=True,
                 help="torch device for the model: cpu, cuda, cuda:N, mps (default: where the model is)."),
    click.option("--seed", type=int, default=None, help="first resampling seed (overrides the spec's seeds)."),
    click.option("--seeds", "n_seeds", type=click.IntRange(1), default=None, help="number of resampling seeds."),
    click.option("--reference", type=click.IntRange(1), default=None,
                 help="number of reference data (seeded draws from the data; overrides the spec)."),
    click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=pathlib.Path("scrub-out"),
                 show_default=True, help="output folder."),
    click.option("--wandb", "use_wandb", is_flag=True, help="log each result to Weights & Biases."),
    click.option("--wandb-project", default="scrub", show_default=True),
    click.option("--debug", is_flag=True, help="show tracebacks."),
]


def with_common(fn):
    for option in reversed(common):
        fn = option(fn)
    return fn


@click.group(cls=ScrubGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Test interpretability hypotheses by causal scrubbing."""
    warnings.simplefilter("ignore", ScrubWarning)  # each command prints them once, as 'warning: ...' lines
    from scrub.huggingface import offline

    offline()  # before anything imports huggingface_hub: models come from disk, never the network


def _load(paths, keep_going: bool = False) -> list:
    """Every spec file read and checked; all failures reported together (one paragraph each). With
    `keep_going`, the good ones are returned and failures only printed (the caller sets the exit code)."""
    from scrub.app.spec.yamlpos import load_document

    texts, errors = [], []
    for p in paths:  # YAML first, with nothing heavy imported: syntax errors need no torch
        try:
            texts.append((p, *load_document(p)))
        except ScrubError as exc:
            errors.append(exc)
    loaded = []
    if texts:
        from scrub.app.spec.run_spec import parse_spec

        for p, text, doc in texts:
            try:
                loaded.append(parse_spec(text, str(p), doc))
            except ScrubError as exc:
                errors.append(exc)
    if errors and not keep_going:
        if len(errors) > 1:
            for exc in errors[:-1]:
                click.echo(f"error: {exc}", err=True)
        raise errors[-1]
    for exc in errors:
        click.echo(f"error: {exc}", err=True)
    return loaded


def _preflight(out: pathlib.Path, use_wandb: bool, wandb_project: str) -> None:
    """Checks that would otherwise fail after the computation: the output folder takes files, W&B is ready."""
    from scrub.app.outputs import check_writable

    check_writable(out)
    if use_wandb:
        from scrub.app.report.wandb_log import check_ready

        check_ready(wandb_project)


def _seeds(spec, seed: Optional[int], n_seeds: Optional[int]) -> tuple:
    if seed is None and n_seeds is None:
        return spec.seeds
    start = seed if seed is not None else spec.seeds[0]
    return tuple(range(start, start + (n_seeds or len(spec.seeds))))


def _progress(label: str):
    """A progress bar over seeds on a terminal; nothing when output is redirected."""
    if not sys.stderr.isatty():
        return None

    def wrap(items):
        with click.progressbar(items, label=label, file=sys.stderr) as bar:
            yield from bar
    return wrap


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _row(record: dict) -> list:
    lr = record["summary"]["loss_recovered"]
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    dist = record["verdict"]["distance"]
    d = record["summary"].get(dist, {})
    num = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
    return [record["name"], f"{pct(lr['value'])} [{pct(lr['low'])}, {pct(lr['high'])}]",
            f"{dist} {num(d.get('value'))}", record["verdict"]["text"]]


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
@with_common
@click.option("--cancel", "with_cancel", is_flag=True, help="also compute the cancel-out report for each spec.")
def run(specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, debug, with_cancel):
    """Run spec files: verdict table, OUT/<name>/result.json and report.html for each."""
    from scrub.app.cli.runner import Settings, run_spec
    from scrub.app.report import format_table

    loaded = _guard(debug, _load, specs)  # every spec is checked before anything runs
    _guard(debug, _preflight, out, use_wandb, wandb_project)
    rows = []
    for spec in loaded:
        settings = Settings(_seeds(spec, seed, n_seeds), reference, device, with_cancel)
        start = time.time()
        record, folder, done = _guard(debug, run_spec, spec, out, settings, _progress(spec.name))
        status = "already done: reused" if done else f"{time.time() - start:.0f}s"
        cancels = " (flagged: the parts it leaves out cancel)" if record["verdict"].get("cancels") else ""
        click.echo(f"{spec.name}: {record['verdict']['status']}{cancels} ({status}) -> {folder / 'result.json'}")
        for note in record.get("warnings") or ():
            click.echo(f"  warning: {note}")
        if use_wandb and not done:
            _guard(debug, _log_wandb, record, spec.file, folder, wandb_project, out)
        rows.append(_row(record))
    click.echo("\n" + format_table(rows, ["hypothesis", "loss recovered [95% CI]", "distance", "verdict"]))


def _log_wandb(record: dict, spec_file, folder: pathlib.Path, project: str, out: pathlib.Path) -> None:
    from scrub.app.report.wandb_log import log_record

    report = folder / "report.html"
    path = log_record(record, project=project, spec_file=spec_file, report_html=report if report.exists() else None,
                      run_name=record["name"], dir=out)  # W&B's own wandb/ folder goes under --out
    click.echo(f"  logged to W&B: {path}")


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
@with_common
@click.option("--alpha", type=float, default=0.025, show_default=True, help="family-wise level (one-sided).")
def compare(specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, debug, alpha):
    """Rank hypotheses about one model (same model, data, loss and seeds) with Holm's correction."""
    _guard(debug, _compare, specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, alpha)


def _compare(specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, alpha):
    from scrub.app.outputs import claim_folder, write_atomic
    from scrub.app.report.record import ranking_record
    from scrub.app.spec import SpecError, prepare

    from metrics.compare import rank
    from metrics.evaluate import evaluate_many

    loaded = _load(specs)
    _preflight(out, use_wandb, wandb_project)
    first = loaded[0]
    for spec in loaded[1:]:
        for part in ("model", "data", "loss"):
            if spec.raw.get(part) != first.raw.get(part):
                raise SpecError(f"'{part}' differs from {first.file}'s; compare ranks hypotheses about one model, "
                                "data and loss. Run the specs separately with `scrub run`.", str(spec.file))
    seeds = _seeds(first, seed, n_seeds)
    prepared = [prepare(s, device, reference) for s in loaded]
    p0 = prepared[0]
    evs = evaluate_many(p0.model, [s.hypothesis for s in loaded], p0.data, first.loss, seeds=seeds,
                        reference=p0.reference, metrics=first.metrics, batch_size=first.batch_size)
    ranking = rank(evs, first.rule, alpha)
    click.echo(str(ranking))
    record = ranking_record(ranking, [str(s.file) for s in loaded])
    owner = "compare:" + "|".join(sorted(str(pathlib.Path(s.file).resolve()) for s in loaded))
    folder = claim_folder(out, "compare-" + "-".join(s.name for s in loaded)[:80], owner)
    write_atomic(folder / "compare.json", json.dumps(record, indent=1).encode())
    from scrub.app.report.html import render_compare_html

    write_atomic(folder / "compare.html", render_compare_html(record).encode())
    click.echo(f"\nwrote {folder / 'compare.json'} and {folder / 'compare.html'}")
    if use_wandb:
        from scrub.app.report.wandb_log import log_ranking
        click.echo(f"logged to W&B: {log_ranking(record, project=wandb_project, dir=out)}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@with_common
def cancel(spec, device, seed, n_seeds, reference, out, use_wandb, wandb_project, debug):
    """The cancel-out report: unexplained components that are large alone but cancel together."""
    from scrub.app.cli.runner import Settings, run_spec

    loaded = _guard(debug, _load, [spec])[0]
    _guard(debug, _preflight, out, use_wandb, wandb_project)
    settings = Settings(_seeds(loaded, seed, n_seeds), reference, device, True)
    record, folder, done = _guard(debug, run_spec, loaded, out, settings, _progress(loaded.name))
    c = record["cancel"]
    search = c["search"]
    click.echo(f"cancel-out report for {record['name']!r} ({c['distance']}; random baseline "
               f"{_num(c['random_distance'])}): {search['large']} of {search['components']} unexplained components "
               f"large alone; {search['measured_sets']} sets measured ({search['variants']} variants)")
    if not c["sets"]:
        click.echo("no cancel-out sets found")
    for k, cs in enumerate(c["sets"], 1):
        alone = ", ".join(_num(e["value"]) for e in cs["effects"])
        click.echo(f"  {k}. {' + '.join(cs['components'])}: alone {alone}; together {_num(cs['joint']['value'])}")
    click.echo(f"thresholds: {c['settings']['description']} (spec key 'cancel:')")
    click.echo(f"{'reused (already computed with these settings)' if done else 'wrote'} {folder / 'result.json'}")
    if use_wandb and not done:
        _guard(debug, _log_wandb, record, loaded.file, folder, wandb_project, out)


@cli.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=pathlib.Path("scrub-out"),
              show_default=True, help="output folder (the sweep writes OUT/<sweep name>/).")
@click.option("--address", default=None, help="an existing Ray cluster: HOST:PORT of its head, or 'auto' "
                                               "(default: a private Ray cluster on this machine).")
@click.option("--num-cpus", type=click.IntRange(1), default=None, help="CPUs of the private cluster (default: all).")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="retries of a point whose task crashed, before it is reported as failed.")
@click.option("--device", default=None, help="torch device (default: the task's GPU if it has one, else where the "
                                             "model is).")
@click.option("--reference", type=click.IntRange(1), default=None,
              help="number of reference data (seeded draws from the data; overrides the specs).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="family-wise level of the ranking (default: the sweep file's, else 0.025).")
@click.option("--wandb", "use_wandb", is_flag=True, help="log each point as a W&B run, in one group named after "
                                                         "the sweep.")
@click.option("--wandb-project", default="scrub", show_default=True)
@click.option("--serial", is_flag=True, help="run the points one after another in this process, without Ray.")
@click.option("--check", "check_only", is_flag=True, help="check every point against its model and data; run nothing.")
@click.option("--debug", is_flag=True, help="show tracebacks.")
def sweep(sweep_file, out, address, num_cpus, retries, device, reference, alpha, use_wandb, wandb_project, serial,
          check_only, debug):
    """Run a sweep file's points (spec files x axes) on Ray; results, sweep.json and sweep.html in OUT/<name>/."""
    from scrub.app.sweep.command import sweep_command
    from scrub.app.sweep.driver import SweepOptions

    options = SweepOptions(out, address, num_cpus, retries, device, reference, alpha,
                           wandb_project if use_wandb else None, serial)
    outcome = _guard(debug, sweep_command, sweep_file, options, check_only, click.echo)
    if outcome is not None and (outcome.failed or outcome.wandb_error):
        lines = [f"{len(outcome.failed)} point(s) failed; their errors are in {outcome.folder}/<point>/error.txt. "
                 "Rerun the same command to retry them (finished points are not recomputed)."] if outcome.failed else []
        lines += [outcome.wandb_error] if outcome.wandb_error else []
        raise Failure(" ".join(lines), EXIT_INVALID if outcome.all_invalid and not outcome.wandb_error else EXIT_ERROR)


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option("--device", default=None, callback=_device, help="torch device for the model.")
@click.option("--debug", is_flag=True)
def validate(specs, device, debug):
    """Check spec files as a run would, short of the computation: every file, every error reported.

    Reads each spec, loads its model and data, compiles the hypothesis, draws the first seed and computes the
    loss and every metric on four reference data."""
    loaded = _guard(debug, _load, specs, True)
    failed = len(specs) - len(loaded)
    if loaded:
        from scrub.app.spec import prepare
    for spec in loaded:
        try:
            prepared = _guard(debug, prepare, spec, device)
        except Failure as f:
            if f.code != EXIT_INVALID:
                raise
            click.echo(f"error: {f}", err=True)
            failed += 1
            continue
        click.echo(f"{spec.file}: ok ({len(list(spec.hypothesis))} nodes; model, data, paths, loss and metrics "
                   f"checked; {len(prepared.data)} data)")
        for note in prepared.warnings:
            click.echo(f"  warning: {note}")
    if failed:
        if len(specs) > 1:
            click.echo(f"{failed} of {len(specs)} spec files invalid.", err=True)
        click.get_current_context().exit(EXIT_INVALID)


@cli.command()
@click.argument("model")
@click.option("--debug", is_flag=True)
def sites(model, debug):
    """List a model's sites: a bundled name, a checkpoint file, a spec file, or a Hugging Face model folder."""
    _guard(debug, _sites, model)


def _sites(model: str) -> None:
    """Bundled checkpoints and checkpoint files are read for their config only (no model is built, no
    TransformerLens import); other bundled models and spec files load the model."""
    from hypotheses.cases import registry

    path = pathlib.Path(model)
    if model in registry.CHECKPOINTS or (path.suffix not in (".yaml", ".yml") and path.is_file()):
        from scrub.adapters.scrub_transformer import checkpoint_graph

        click.echo(checkpoint_graph(registry.CHECKPOINTS.get(model, path)).table())
        return
    import scrub

    if model in registry.MODELS:
        obj = registry.MODELS[model]()
    elif path.suffix in (".yaml", ".yml") and path.exists():
        from scrub.app.spec import load_spec
        from scrub.app.spec.run_spec import load_model

        obj = load_model(load_spec(path))
    elif path.is_dir():
        obj = scrub.load_hf(path)
    else:
        from scrub.errors import did_you_mean
        raise ScrubError(f"{model!r} is not a bundled model, a checkpoint, a spec file or a model folder."
                         f"{did_you_mean(model, registry.MODELS)} Bundled: {', '.join(registry.MODELS)}.")
    click.echo(scrub.list_sites(obj))


@cli.command()
def kinds():
    """List what spec files can name: samplers, features, losses, distances, metrics, model and data sources."""
    from scrub.app.kinds import describe, registries

    for title, registry in registries():
        click.echo(f"{title}:")
        for name, kind in registry.items():
            click.echo(f"  {name:<17} {describe(kind)}")
        click.echo("")


def main() -> None:  # pragma: no cover - the console entry point is scrub.app.cli.entry:main
    from scrub.app.cli.entry import main as entry

    entry()
