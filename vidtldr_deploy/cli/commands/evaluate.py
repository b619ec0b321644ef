"""`vidtldr evaluate`: what each schedule costs on real clips, against the unmerged model."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.commands.clip_args import ClipArgs, clip_progress, show_clips
from vidtldr_deploy.cli.console import guarded, info, out, status
from vidtldr_deploy.cli.results import show_warnings, write_report_files
from vidtldr_deploy.errors import InputError

TRIVIAL_FACTOR = (
    4  # R@k over fewer than k x this many clips says little: a random ranking scores high
)


def _kl(value: float) -> str:
    """KL of a light schedule is 1e-4 or less: in scientific notation, not 0.000."""
    return f"{value:.2e}" if 0 < abs(value) < 1e-2 else f"{value:.3f}"


def _evaluate_table(data: dict):
    from rich.table import Table

    classifier = data["output"] == "logits"
    labeled = any("accuracy" in row["metrics"] for row in data["schedules"])
    table = Table(
        title=f"{data['arch']}, {data['frames']} frames: {data['clips']['count']} clips against the unmerged model"
    )
    heads = ["schedule", "FLOPs", "cosine", "min cos", "rel L2"]
    heads += ["top-1", "top-5", "KL"] if classifier else ["R@1", "R@5"]
    heads += ["accuracy"] if labeled else []
    for h in heads:
        table.add_column(h, justify="left" if h == "schedule" else "right", no_wrap=h != "schedule")
    keys = (
        ("top1_agreement", "top5_agreement", "kl_mean")
        if classifier
        else ("recall_at_1", "recall_at_5")
    )
    keys += ("accuracy",) if labeled else ()
    for row in data["schedules"]:
        m = row["metrics"]
        cells = [row["schedule"], f"{row['flops']['ratio']:.3f}", f"{m['cosine_mean']:.5f}",
                 f"{m['cosine_min']:.5f}", f"{m['rel_l2_mean']:.4f}"]  # fmt: skip
        cells += ["-" if m.get(k) is None else _kl(m[k]) if k == "kl_mean" else f"{m[k]:.3f}"
                  for k in keys]  # fmt: skip
        table.add_row(*cells)
    return table


def _table_notes(data: dict) -> list[str]:
    """What the table cannot say in its cells: the unmerged accuracy, and a trivial R@k."""
    notes = []
    first = data["schedules"][0]["metrics"] if data["schedules"] else {}
    if "baseline_accuracy" in first:
        notes.append(f"accuracy of the unmerged model: {first['baseline_accuracy']:.3f} "
                     f"on {first['labeled']} labeled clips")  # fmt: skip
    count = data["clips"]["count"]
    if data["output"] != "logits":
        trivial = [k for k in (1, 5) if count < k * TRIVIAL_FACTOR]
        if trivial:
            ks = " and ".join(f"R@{k}" for k in trivial)
            notes.append(f"{ks} over {count} clips {'say' if len(trivial) > 1 else 'says'} little (a random ranking would score "
                         f"{', '.join(f'{min(1, k / count):.2f}' for k in trivial)}): give at least "
                         f"{max(trivial) * TRIVIAL_FACTOR} clips")  # fmt: skip
    return notes


@opt.argument_group("clip_args", ClipArgs)
def evaluate_command(
    target: Annotated[
        str,
        typer.Argument(
            help="Checkpoint, Hugging Face folder or 'demo' (PyTorch), or an exported .onnx / TensorRT .plan (its runtime, its schedule)."
        ),
    ],
    clip_args: ClipArgs = None,
    runtime: Annotated[
        Optional[str],
        typer.Option(
            "--runtime",
            help="For an .onnx target: onnxruntime or openvino.",
            show_default="onnxruntime; tensorrt for .plan, openvino for .xml",
        ),
    ] = None,
    device: Annotated[
        Optional[str],
        typer.Option(
            "--device",
            help="--runtime openvino: an OpenVINO device (CPU, GPU, NPU, AUTO).",
            show_default="CPU",
        ),
    ] = None,
    schedules: Annotated[
        Optional[list[str]],
        typer.Option(
            "--schedule",
            "-s",
            help="A schedule to evaluate (repeat for several); PyTorch targets only.",
            show_default="the architecture's presets, or the demo's 0.25x2",
        ),
    ] = None,
    methods: Annotated[
        Optional[list[str]],
        typer.Option(
            "--method",
            help="Merge method: vidtldr, tome (ToMe: no saliency) or random (random pairs, a baseline); repeat to compare them side by side on every schedule. PyTorch targets only.",
            show_default="vidtldr",
        ),
    ] = None,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            "--labels",
            help="CSV of path,label: adds the accuracy of each schedule and of the unmerged model (classifiers).",
            show_default="none; for 'demo' without --clips, the labels of the clips made for it",
        ),
    ] = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    report: opt.Report = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help="PNG: drift (1 - mean cosine) against FLOPs, one point per schedule, presets marked.",
            show_default="none",
        ),
    ] = None,
    seed: opt.Seed = 0,
    unsafe_load: opt.UnsafeLoad = False,
) -> None:
    """What a schedule costs on clips: drift of pooled vectors or logits, agreement, retrieval, FLOPs."""
    from vidtldr_deploy.constants import DEMO_SCHEDULE, MergeMethod
    from vidtldr_deploy.evaluate import (
        GraphTarget,
        MethodSchedule,
        check_classifier,
        evaluate,
        load_labels,
        plot_drift,
    )
    from vidtldr_deploy.files import check_input_file, check_outputs
    from vidtldr_deploy.models.presets import presets_for
    from vidtldr_deploy.models.source import is_demo
    from vidtldr_deploy.runtime import registry
    from vidtldr_deploy.target import resolve_target

    check_outputs({"--report": report, "--plot": plot},
                  {"the target": Path(target), "--labels": labels,
                   **{f"--clips {p}": p for p in clip_args.paths}})  # fmt: skip
    if labels is not None:
        check_input_file(labels, "--labels")  # missing, a folder, a FIFO or a device
    label_map = load_labels(labels) if labels is not None else None
    resolved = resolve_target(target)  # an engine's sidecar and graph checked here
    resolved.refuse_model_flags(schedule=schedules, arch=arch, frames=frames, method=methods)
    merge_methods = list(dict.fromkeys(MergeMethod.parse(m) for m in methods or ["vidtldr"]))
    clip_args.require(target)
    if device is not None and runtime != "openvino":
        raise InputError("--device applies to --runtime openvino")
    runtime, device = registry.choose_runtime(resolved.kind.value, runtime, device, target)
    if runtime == "openvino":
        from vidtldr_deploy.runtime.devices import check_device

        check_device("openvino", device)  # before any work

    runner = None
    if resolved.kind.exported:
        with status(f"loading {target} and rebuilding its PyTorch model from the metadata"):
            ref = resolved.reference(None, unsafe_load, ckpt_frames)
        loaded = ref.loaded
        runner = resolved.open_runner(runtime, registry.RunnerOptions(device))
        targets = [
            GraphTarget(
                runner,
                resolved.graph.rs,
                label=f"{Path(target).name} ({runner.name})",
                batch=resolved.graph.batch,
                method=resolved.graph.method.value,
            )
        ]
    else:
        with status(f"loading {target}"):
            loaded = resolved.load(arch, frames, ckpt_frames, unsafe_load, seed)
        wanted = list(schedules or [])
        if not wanted:
            wanted = [DEMO_SCHEDULE] if is_demo(target) else list(presets_for(loaded.arch))
        if not wanted:
            raise InputError(
                f"{loaded.arch} has no published presets: pass --schedule (e.g. 16x12 or 0.25x2)"
            )
        for spec in wanted:
            loaded.schedule(spec)  # every schedule checked before the clips are decoded
        targets = [
            spec if method is MergeMethod.VIDTLDR else MethodSchedule(spec, method)
            for method in merge_methods
            for spec in wanted
        ]
    info(loaded.description)
    if label_map is not None:
        check_classifier(loaded.model.cfg.num_classes)  # before any clip is decoded
    progress, advance = clip_progress(f"evaluating {len(targets)} schedule(s)")
    # clips decoded and run a batch at a time: memory does not grow with them
    with (
        contextlib.nullcontext() if runner is None else runner,
        clip_args.demo_clips(target) as demo_labels,
        progress,
    ):
        if label_map is None and demo_labels is not None:
            label_map = load_labels(demo_labels)
        stream = clip_args.stream(loaded.model, loaded.arch, advance)
        roots = [p for p in clip_args.paths if p.is_dir()]
        result = evaluate(loaded.model, (b.video[: b.valid] for b in stream), stream.names,
                          targets, arch=loaded.arch, labels=label_map, label_roots=roots,
                          target_label=target)  # fmt: skip
    show_clips(stream)
    show_warnings(list(result.warnings))
    data = result.to_dict()
    data["arch"] = loaded.name  # a folder of its own size by its family and sizes, as in export
    data["inputs"] = stream.label
    if stream.warnings() or result.warnings:
        data["warnings"] = stream.warnings() + list(result.warnings)
    out.print(_evaluate_table(data))
    for note in _table_notes(data):
        info(f"note: {note}")
    for row in data["schedules"]:
        for note in row["spec"].get("notes", []):
            info(f"note: {note}")
    write_report_files(report, data)
    if plot is not None:
        plot_drift(data, plot)
        info(f"plot: {plot}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(guarded(evaluate_command))
