"""`vidtldr triton` (a Triton model repository from exports) and `vidtldr triton-client`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli.console import console, guarded, out
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.files import check_input_file
from vidtldr_deploy.serve.client import DEFAULT_TIMEOUT_S


def triton_command(
    targets: Annotated[
        list[Path],
        typer.Argument(help="Engines (.plan, with their .plan.json) and/or exported .onnx graphs."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The model repository folder to write.")
    ],
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="Model name (one TARGET only; default: the file stem)."),
    ] = None,
    instances: Annotated[
        int, typer.Option("--instances", help="Model instances (instance_group count).")
    ] = 1,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="Instance kind of ONNX models: gpu or cpu (engines: always gpu)."
        ),
    ] = "gpu",
    max_queue_delay_us: Annotated[
        Optional[int],
        typer.Option(
            "--max-queue-delay-us",
            help="Dynamic batching delay; only for graphs with a dynamic batch dimension.",
        ),
    ] = None,
    max_batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--max-batch-size",
            help="max_batch_size of graphs with a dynamic batch dimension (default: the graph's "
            "export --max-batch, else 8; static batch: 0).",
        ),
    ] = None,
    plugins: Annotated[
        Optional[Path],
        typer.Option(
            "--plugins",
            help="libvidtldr_plugins.so for engines with plugin layers "
            "(default: $VIDTLDR_PLUGIN_DIR or plugins/build).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing non-empty repository folder (all of it)."
        ),
    ] = False,
    ensemble: Annotated[
        bool,
        typer.Option(
            "--ensemble",
            help="Add NAME_preprocess (Python backend: decode video bytes) and NAME_ensemble.",
        ),
    ] = False,
    no_warmup: Annotated[
        bool, typer.Option("--no-warmup", help="Leave model_warmup out of the configs.")
    ] = False,
) -> None:
    """Write a Triton Inference Server model repository for exported engines and graphs."""
    from vidtldr_deploy.serve.triton import RepositoryOptions, build_repository

    opts = RepositoryOptions(
        name=name, instances=instances, device=device, max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us, force=force, ensemble=ensemble, plugins=plugins,
        warmup=not no_warmup,
    )  # fmt: skip
    result = build_repository(targets, output, opts)
    for m in result.models:
        out.print(
            f"{m.name}: {m.platform} (max_batch_size {m.max_batch_size}) from {m.source}",
            markup=False,
            highlight=False,
        )
    if result.plugin_library is not None:
        console.print(
            f"plugin library: {result.plugin_library} (TensorRT {result.tensorrt_version}); "
            f"load commands in {output}/README.md",
            markup=False,
            highlight=False,
        )
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"wrote {output}", markup=False, highlight=False)


def triton_client_command(
    model: Annotated[
        str, typer.Argument(help="Model name in the server (NAME, or NAME_ensemble with --video).")
    ],
    inputs: Annotated[
        Optional[Path],
        typer.Option("--inputs", help="Clips: .npy (one batch) or .npz (one batch per array)."),
    ] = None,
    video: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--video",
            help="Encoded video file(s) for a NAME_ensemble model; repeat for each batch slot.",
        ),
    ] = None,
    input_name: Annotated[str, typer.Option("--input-name", help="Tensor input name.")] = "video",
    url: Annotated[
        str, typer.Option("--url", "-u", help="Triton HTTP endpoint host:port.")
    ] = "localhost:8000",
    repeat: Annotated[
        int,
        typer.Option("--repeat", help="Send each request this many times (latency statistics)."),
    ] = 1,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", help="Workers sending at once (each its own connection)."),
    ] = 1,
    duration: Annotated[
        Optional[float],
        typer.Option("--duration", help="Send the requests in turn for this many seconds."),
    ] = None,
    requests: Annotated[
        Optional[int],
        typer.Option("--requests", help="Send this many requests in all (the requests in turn)."),
    ] = None,
    save_outputs: Annotated[
        Optional[Path],
        typer.Option(
            "--save-outputs", help="Write the outputs (batches in request order) as .npz."
        ),
    ] = None,
    report: Annotated[
        Optional[Path],
        typer.Option(
            "--report", help="Write latency and throughput as JSON (and Markdown beside it)."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds one request may take in total, answer included."),
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Send clips (or encoded videos to an ensemble) to Triton; print outputs, latency percentiles
    and throughput. --concurrency/--duration/--requests make it a bounded load test."""
    from vidtldr_deploy.cli.results import write_report_files
    from vidtldr_deploy.serve import client

    if (inputs is None) == (not video):
        raise InputError("pass either --inputs clips.npz or --video file.mp4 (one or more)")
    client.check_timeout(timeout)
    plan = client.LoadPlan(repeat, concurrency, duration, requests).check()
    if video:
        for path in video:  # every file checked before the server is asked anything
            check_input_file(path, "--video")
        metadata = client.model_metadata(model, url, timeout)
        batched = client.batches_inputs(metadata, client.BYTES_INPUT)
        batches = [client.video_inputs(video, batched=batched)]
        described = ", ".join(map(str, video))
    else:
        batches = [client.tensor_inputs({input_name: a}) for a in client.load_clips(inputs)]
        described = str(inputs)
    result = client.infer(model, batches, url=url, timeout_s=timeout, plan=plan)
    for name, value in result.outputs.items():
        out.print(
            f"{name}: shape {list(value.shape)} {value.dtype}, "
            f"first values {value.reshape(-1)[:5].tolist()}",
            markup=False,
            highlight=False,
        )
    s = result.summary()
    out.print(
        f"latency over {int(s['requests'])} requests ({int(s['concurrency'])} at a time, "
        f"{s['throughput_rps']:.1f} req/s): mean {s['mean_ms']:.2f} ms, p50 {s['p50_ms']:.2f} ms, "
        f"p90 {s['p90_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, min {s['min_ms']:.2f} ms, "
        f"max {s['max_ms']:.2f} ms",
        markup=False, highlight=False,
    )  # fmt: skip
    if save_outputs is not None:
        from vidtldr_deploy.cli.commands.validate import save_arrays

        save_arrays(save_outputs, result.outputs)
        console.print(f"outputs: {save_outputs}", markup=False, highlight=False)
    write_report_files(report, client.load_report(result, model, url, described))


def register(app: typer.Typer) -> None:
    """Add `triton` and `triton-client` to the `vidtldr` app."""
    app.command("triton")(guarded(triton_command))
    app.command("triton-client")(guarded(triton_client_command))
