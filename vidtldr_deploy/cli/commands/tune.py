"""`vidtldr tune`: the schedule with the least drift on the user's clips that meets a budget."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.commands.clip_args import ClipArgs, clip_progress, show_clips
from vidtldr_deploy.cli.console import console, error, guarded, info, out, status
from vidtldr_deploy.cli.results import show_warnings, write_report_files
from vidtldr_deploy.errors import EXIT_INTERRUPTED, InputError

LATENCY_RUNTIMES = ("torch", "openvino")  # runtimes with a per-block timer (tune/cost_model.py)


def _budget(target_flops, target_speedup, target_latency_ms):
    from vidtldr_deploy.tune import Budget

    given = [
        (k, v)
        for k, v in (
            ("flops", target_flops),
            ("speedup", target_speedup),
            ("latency_ms", target_latency_ms),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise InputError(
            "pass exactly one of --target-flops F, --target-speedup S, --target-latency-ms MS"
        )
    return Budget(*given[0])


def _pareto_table(data: dict):
    from rich.table import Table

    latency = data["target"]["kind"] == "latency_ms"
    cost = "latency" if latency else "FLOPs"
    table = Table(title=f"Pareto front: {cost} against drift on {data['clips']['count']} clips")
    table.add_column("schedule", overflow="fold")
    table.add_column("latency ms" if latency else "FLOPs", justify="right", no_wrap=True)
    table.add_column("drift", justify="right", no_wrap=True)
    for row in data["pareto"]:
        cost = row.get("latency_ms") if latency else row["flops_ratio"]
        table.add_row(
            row["schedule"] + (" *" if row["schedule"] == data["schedule"] else ""),
            f"{cost:.3f}",
            f"{row['drift']:.3g}",
        )
    return table


def _latency_model_text(cost_model) -> str:
    """How far the latency model can be trusted: its threads and the spread of its timings."""
    widest = cost_model.spread
    caution = (
        "; timings this spread make latency targets unreliable: run on an idle machine or "
        "with fewer --threads"
        if widest > 0.25 else ""
    )  # fmt: skip
    return (
        f"latency model: blocks timed on {cost_model.threads} thread(s); repeated runs at one token "
        f"count spread by up to {widest:.0%} of their median (interquartile range){caution}"
    )


def _show_presets(data: dict, arch: str) -> None:
    """Which published presets were tried, which were left out and why, and the frame-count note."""
    from vidtldr_deploy.models.presets import preset_note

    for name, why in data["presets_skipped"].items():
        info(f"preset {name} skipped: {why}")
    tried = [p["name"].rstrip("~") for p in data["presets"]]
    notes = [preset_note(name, arch, data["frames"]) for name in tried]
    if any(notes):
        info(f"note: {next(n for n in notes if n)} (also: {', '.join(tried)})")


@opt.argument_group("clip_args", ClipArgs)
def tune_command(
    checkpoint: Annotated[
        str,
        typer.Argument(
            help="Checkpoint file, Hugging Face folder, 'demo', or an exported .onnx/.plan (tunes the model it was exported from)."
        ),
    ],
    clip_args: ClipArgs = None,
    target_flops: Annotated[
        Optional[float],
        typer.Option(
            "--target-flops",
            help="Merged FLOPs at most this share of the unmerged model's (0 < F < 1).",
            show_default="none",
        ),
    ] = None,
    target_speedup: Annotated[
        Optional[float],
        typer.Option(
            "--target-speedup", help="FLOPs-ideal speedup at least this (> 1).", show_default="none"
        ),
    ] = None,
    target_latency_ms: Annotated[
        Optional[float],
        typer.Option(
            "--target-latency-ms",
            help="Latency at most this, predicted by a per-block cost model timed on --runtime.",
            show_default="none",
        ),
    ] = None,
    runtime: Annotated[
        str,
        typer.Option("--runtime", help="Runtime that times the blocks for --target-latency-ms."),
    ] = "torch",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="cpu or cuda (torch), or an OpenVINO device (CPU, GPU, NPU, AUTO), for --target-latency-ms.",
        ),
    ] = "cpu",
    threads: opt.Threads = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    report: opt.Report = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", help="PNG: the Pareto front with the presets on it.", show_default="none"
        ),
    ] = None,
    write_config: Annotated[
        Optional[Path],
        typer.Option(
            "--write-config",
            help="Write an export config TOML with the chosen schedule, for vidtldr-export --config.",
            show_default="none",
        ),
    ] = None,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            "--labels",
            help="CSV of path,label (classifiers): choose the schedule with the highest accuracy within the budget, ties by drift.",
            show_default="none: least drift; for 'demo' without --clips, the labels of the clips made for it",
        ),
    ] = None,
    methods: Annotated[
        Optional[list[str]],
        typer.Option(
            "--method",
            help="Merge method to search: vidtldr or tome; repeat to search both and keep the better (the report lists each one's best).",
            show_default="vidtldr",
        ),
    ] = None,
    beam_width: Annotated[
        int,
        typer.Option("--beam-width", help="Partial schedules kept per layer by the beam search."),
    ] = 3,
    activation_mib: Annotated[
        int,
        typer.Option(
            "--activation-mib",
            help="Memory for the hidden states candidates share (MiB): less recomputes more; it does not grow with the clips.",
        ),
    ] = 1024,
    seed: opt.Seed = 0,
    unsafe_load: opt.UnsafeLoad = False,
) -> None:
    """The schedule for a budget: least drift on your clips among schedules meeting it."""
    from vidtldr_deploy.clips import SpilledClips
    from vidtldr_deploy.constants import MergeMethod
    from vidtldr_deploy.evaluate import load_labels, match_labels
    from vidtldr_deploy.files import check_outputs
    from vidtldr_deploy.runtime.devices import check_device
    from vidtldr_deploy.target import resolve_target
    from vidtldr_deploy.tune import (
        SearchOptions,
        openvino_cost_model,
        torch_cost_model,
        tune_methods,
    )

    budget = _budget(target_flops, target_speedup, target_latency_ms)
    check_outputs({"--report": report, "--plot": plot, "--write-config": write_config},
                  {"the target": Path(checkpoint), **{f"--clips {p}": p for p in clip_args.paths}})  # fmt: skip
    _check_counts(threads=threads, beam_width=beam_width, activation_mib=activation_mib)
    if labels is not None and not labels.is_file():
        raise InputError(f"--labels {labels} does not exist: give a CSV of path,label rows")
    label_map = load_labels(labels) if labels is not None else None
    clip_args.require(checkpoint)
    merge_methods = list(
        dict.fromkeys(
            MergeMethod.parse(m, allowed=("vidtldr", "tome")) for m in methods or ["vidtldr"]
        )
    )
    if budget.kind == "latency_ms":
        if runtime not in LATENCY_RUNTIMES:
            raise InputError(
                f"--target-latency-ms with --runtime {runtime}: only {', '.join(LATENCY_RUNTIMES)} has a per-block "
                "timer so far; use --runtime torch, or --target-flops / --target-speedup"
            )
        check_device(runtime, device)
    target = resolve_target(checkpoint)
    if target.kind.exported:  # a graph fixes one schedule: tune searches its recorded model's
        target.refuse_model_flags(arch=arch, frames=frames)
        checkpoint = target.recorded_source("tune")
        info(f"tuning the model {target.text} was exported from: {checkpoint}")
    with status(f"loading {checkpoint}"):
        loaded = target.load(arch, frames, ckpt_frames, unsafe_load, seed)
    info(loaded.description)
    if label_map is not None and loaded.model.head is None:
        raise InputError(
            f"--labels needs a classifier: {loaded.name} outputs embeddings, not class logits"
        )
    with SpilledClips() as calibration:
        decoding, advance = clip_progress()
        with clip_args.demo_clips(checkpoint) as demo_labels, decoding:
            if label_map is None and demo_labels is not None:
                label_map = load_labels(demo_labels)
            stream = clip_args.stream(loaded.model, loaded.arch, advance)
            # the search runs every candidate on every clip: decoded once, kept on disk
            for batch in stream:
                calibration.append(batch.video[: batch.valid])
        show_clips(stream)
        clip_labels = None
        if label_map is not None:
            clip_labels = match_labels(stream.names, label_map)
            if not any(y is not None for y in clip_labels):
                raise InputError(
                    "--labels: no row of the CSV names any of the clips (by path, file name or stem)"
                )
        cost_model = None
        if budget.kind == "latency_ms":
            with status(f"timing single blocks on {runtime} ({device}) for the latency model"):
                if runtime == "openvino":
                    cost_model = openvino_cost_model(loaded.model, device, threads=threads)
                else:
                    cost_model = torch_cost_model(loaded.model.to(device), threads=threads)
            info(_latency_model_text(cost_model))
        with search_progress() as advance:
            result = tune_methods(loaded.model, calibration, budget, merge_methods, arch=loaded.arch, names=stream.names,
                                  cost_model=cost_model, options=SearchOptions(beam_width=beam_width, cache_mib=activation_mib), progress=advance,
                                  labels=clip_labels)  # fmt: skip
    data = result.to_dict()
    data["arch"] = loaded.name  # a folder of its own size by its family and sizes, as in export
    data["inputs"] = stream.label
    if stream.warnings():
        data["warnings"] = stream.warnings()
    _show_result(data, loaded.arch, checkpoint)
    _write_outputs(data, report, plot, write_config, loaded.arch, checkpoint)
    if data["interrupted"]:
        error("interrupted: the schedule above (and any report or config written) is the best "
              "found so far that meets the budget")  # fmt: skip
        raise typer.Exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def search_progress():
    """A transient progress bar for the search, and its callback (the search's progress record)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} candidates"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("searching", total=None)

        def advance(p) -> None:
            best = (
                f", best {p.best.schedule} drift {p.best.drift:.3g}" if p.best is not None else ""
            )
            progress.update(task, completed=p.evaluated, description=f"searching ({p.phase}{best})")

        yield advance


def _check_counts(**counts: int | None) -> None:
    """Each count given is at least 1 (--threads, --beam-width, --activation-mib)."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _show_result(data: dict, arch: str, checkpoint: str) -> None:
    """The search's result on the console: the Pareto table, the presets, the chosen schedule, each
    method's best, and the export command that uses it."""
    out.print(_pareto_table(data))
    _show_presets(data, arch)
    flops = data["flops"]
    verdict = "meets" if data["meets_budget"] else "does NOT meet"
    accuracy = (
        f"accuracy {data['accuracy']:.3f} (unmerged {data['baseline_accuracy']:.3f}), "
        if data.get("accuracy") is not None
        else ""
    )
    out.print(f"objective: {data['objective']}", highlight=False, markup=False)
    out.print(
        f"schedule {data['schedule']!r}: FLOPs x{flops['ratio']:.3f} of unmerged, {accuracy}drift {data['drift']:.4g}, "
        f"{verdict} the budget; {data['candidates_evaluated']} candidates in {data['seconds']['search']:.0f} s"
        + (" (interrupted: best so far)" if data["interrupted"] else ""),
        highlight=False,
    )
    for method, best in data.get("methods", {}).items():
        acc = f", accuracy {best['accuracy']:.3f}" if best.get("accuracy") is not None else ""
        out.print(f"  best with {method}: {best['schedule']!r}, FLOPs x{best['flops_ratio']:.3f}{acc}, drift {best['drift']:.4g}",
                  highlight=False, markup=False)  # fmt: skip
    method_flag = f" --method {data['method']}" if data["method"] != "vidtldr" else ""
    out.print(
        f"use it: vidtldr-export {checkpoint} --schedule {data['schedule']}{method_flag} -o model.onnx",
        highlight=False,
        markup=False,
    )


def _write_outputs(data: dict, report, plot, write_config, arch: str, checkpoint: str) -> None:
    """The report (JSON and Markdown), the Pareto plot, and the export config, which is written only
    for a schedule that meets the budget."""
    from vidtldr_deploy.tune import plot_pareto, write_tuned_config

    write_report_files(report, data)
    if plot is not None:
        plot_pareto(data, plot)
        info(f"plot: {plot}")
    if write_config is not None:
        if data["meets_budget"]:
            write_tuned_config(write_config, data, arch)
            info(
                f"export config: {write_config} (vidtldr-export {checkpoint} --config {write_config} -o model.onnx)"
            )
        else:
            show_warnings(
                [f"no schedule met the budget: --write-config {write_config} not written"]
            )


def register(app: typer.Typer) -> None:
    app.command("tune")(guarded(tune_command))
