"""The `scrub` command: run, compare, cancel, validate, sites, kinds.

Exit codes: 0 ran (whatever the verdicts); 2 invalid input (a bad spec,
option or model name); 1 any other error; 130 interrupted. Invalid input gets
a one-paragraph message and no traceback (`--debug` shows one). See docs/cli.md.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
import traceback
from typing import Optional

import click

from scrub.errors import ScrubError

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
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report, never exit 0
        if debug:
            traceback.print_exc()
        raise Failure(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                      EXIT_ERROR) from None


class ScrubGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Failure as f:
            click.echo(f"error: {f}", err=True)
            ctx.exit(f.code)


common = [
    click.option("--device", default=None, help="torch device for the model (default: where the model is)."),
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


def _load(paths) -> list:
    from scrub.app.spec import load_spec

    return [load_spec(p) for p in paths]


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
    rows = []
    for spec in loaded:
        settings = Settings(_seeds(spec, seed, n_seeds), reference, device, with_cancel)
        start = time.time()
        record, folder, done = _guard(debug, run_spec, spec, out, settings, _progress(spec.name))
        status = "already done" if done else f"{time.time() - start:.0f}s"
        cancels = " (flagged: the parts it leaves out cancel)" if record["verdict"].get("cancels") else ""
        click.echo(f"{spec.name}: {record['verdict']['status']}{cancels} ({status}) -> {folder / 'result.json'}")
        if use_wandb and not done:
            _guard(debug, _log_wandb, record, spec.file, folder, wandb_project)
        rows.append(_row(record))
    click.echo("\n" + format_table(rows, ["hypothesis", "loss recovered [95% CI]", "distance", "verdict"]))


def _log_wandb(record: dict, spec_file, folder: pathlib.Path, project: str) -> None:
    from scrub.app.report.wandb_log import log_record

    report = folder / "report.html"
    path = log_record(record, project=project, spec_file=spec_file, report_html=report if report.exists() else None,
                      run_name=record["name"])
    click.echo(f"  logged to W&B: {path}")


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
@with_common
@click.option("--alpha", type=float, default=0.025, show_default=True, help="family-wise level (one-sided).")
def compare(specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, debug, alpha):
    """Rank hypotheses about one model (same model, data, loss and seeds) with Holm's correction."""
    _guard(debug, _compare, specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, alpha)


def _compare(specs, device, seed, n_seeds, reference, out, use_wandb, wandb_project, alpha):
    from scrub.app.cli.runner import safe_child, write_atomic
    from scrub.app.report.record import ranking_record
    from scrub.app.spec import SpecError, prepare

    from metrics.compare import rank
    from metrics.evaluate import evaluate_many

    loaded = _load(specs)
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
    folder = safe_child(out, "compare-" + "-".join(s.name for s in loaded)[:80])
    write_atomic(folder / "compare.json", json.dumps(record, indent=1).encode())
    try:
        from scrub.app.report.html import render_compare_html
        write_atomic(folder / "compare.html", render_compare_html(record).encode())
    except ImportError:  # pragma: no cover
        pass
    click.echo(f"\nwrote {folder / 'compare.json'}")
    if use_wandb:
        from scrub.app.report.wandb_log import log_ranking
        click.echo(f"logged to W&B: {log_ranking(record, project=wandb_project)}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@with_common
def cancel(spec, device, seed, n_seeds, reference, out, use_wandb, wandb_project, debug):
    """The cancel-out report: unexplained components that are large alone but cancel together."""
    from scrub.app.cli.runner import Settings, run_spec

    loaded = _guard(debug, _load, [spec])[0]
    settings = Settings(_seeds(loaded, seed, n_seeds), reference, device, True)
    record, folder, _ = _guard(debug, run_spec, loaded, out, settings, _progress(loaded.name))
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
    click.echo(f"wrote {folder / 'result.json'}")
    if use_wandb:
        _guard(debug, _log_wandb, record, loaded.file, folder, wandb_project)


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option("--device", default=None)
@click.option("--debug", is_flag=True)
def validate(specs, device, debug):
    """Check spec files against their models without running them."""
    from scrub.app.spec import prepare

    for spec in _guard(debug, _load, specs):
        prepared = _guard(debug, prepare, spec, device)
        click.echo(f"{spec.file}: ok ({len(list(spec.hypothesis))} nodes; model, data and paths checked; "
                   f"{len(prepared.data)} data)")


@cli.command()
@click.argument("model")
@click.option("--debug", is_flag=True)
def sites(model, debug):
    """List a model's sites: a bundled name, a checkpoint file, or a spec file."""
    _guard(debug, _sites, model)


def _sites(model: str) -> None:
    import scrub
    from hypotheses.cases import registry
    from scrub.app.spec import load_spec
    from scrub.app.spec.run_spec import load_model

    path = pathlib.Path(model)
    if model in registry.MODELS:
        obj = registry.MODELS[model]()
    elif path.suffix in (".yaml", ".yml") and path.exists():
        obj = load_model(load_spec(path))
    elif path.exists():
        obj = scrub.load_checkpoint(path)
    else:
        from scrub.errors import did_you_mean
        raise ScrubError(f"{model!r} is not a bundled model, a checkpoint or a spec file."
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


def main() -> None:  # pragma: no cover - console entry point
    cli()
