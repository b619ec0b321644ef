"""The conventions a Polygraphy / trtexec / Optimum user expects: engines validated by
`vidtldr validate`, runtime and device choice, saved inputs and outputs, one --report flag on every
command, help without bogus arguments and with defaults, tables readable at 80 columns, export
configs that state the code's tolerances, and a README install a newcomer can copy."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from vidtldr_deploy.cli.main import app
from vidtldr_deploy.errors import EXIT_BAD_INPUT

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["archs", "schedule", "export", "validate", "profile", "build-plugins"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv")
    result = invoke("export", "demo-random", "-o", out / "demo.onnx", "--no-validate")
    assert result.exit_code == 0, result.output
    return out / "demo.onnx"


# ------------------------------------------------------------------ validate: inputs, outputs, runtimes


def test_validate_saves_inputs_and_outputs_and_reloads_them(graph, tmp_path):
    ins, outs, rep = tmp_path / "in.npz", tmp_path / "out.npz", tmp_path / "r.json"
    res = invoke("validate", graph, "--save-inputs", ins, "--save-outputs", outs, "--report", rep)
    assert res.exit_code == 0, res.output
    clips = np.load(ins)
    assert clips.files == ["clip_000", "clip_001"] and clips["clip_000"].shape == (1, 3, 4, 32, 32)
    saved = np.load(outs)
    assert set(saved.files) == {"tokens", "pooled", "reference/tokens", "reference/pooled"}
    assert saved["pooled"].shape == (2, 64)  # two batches, concatenated in input order
    np.testing.assert_allclose(saved["pooled"], saved["reference/pooled"], atol=1e-3)
    # --load-inputs (Polygraphy's name) reproduces the run: the same outputs
    again = tmp_path / "again.npz"
    res = invoke("validate", graph, "--load-inputs", ins, "--save-outputs", again)
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.load(again)["pooled"], saved["pooled"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "again.npz",
        "in.npz",
        "out.npz",
        "r.json",
        "r.md",
    ]


def test_validate_refuses_bad_save_paths_before_work(graph, tmp_path):
    res = invoke("validate", graph, "--save-outputs", tmp_path / "nowhere" / "o.npz")
    assert res.exit_code == EXIT_BAD_INPUT and "does not exist" in res.output
    res = invoke(
        "validate", graph, "--save-inputs", tmp_path / "x.npz", "--save-outputs", tmp_path / "x.npz"
    )
    assert res.exit_code == EXIT_BAD_INPUT and "one would overwrite the other" in res.output
    assert list(tmp_path.iterdir()) == []


def test_validate_ort_cuda_without_the_provider_is_a_named_error(graph):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed")
    res = invoke("validate", graph, "--device", "cuda")
    assert res.exit_code == EXIT_BAD_INPUT and "onnxruntime-gpu" in res.output


def test_validate_wrong_runtime_for_the_file(graph):
    res = invoke("validate", graph, "--runtime", "tensorrt")
    assert res.exit_code == EXIT_BAD_INPUT and "build an engine" in " ".join(res.output.split())


def _engine_beside(graph, tmp_path, precision: str) -> Path:
    """e.plan (bytes no TensorRT loads) with its sidecar, and e.onnx (a copy of `graph`) beside it."""
    import shutil

    from vidtldr_deploy.runtime.tensorrt import sidecar as sc

    onnx_path = tmp_path / "e.onnx"
    shutil.copy(graph, onnx_path)
    sidecar = sc.make_sidecar(
        tensorrt_version="10.7.0", cuda_version="12.6", gpu_name="GPU", compute_capability="9.0",
        precision=precision, inputs={"video": sc.io_spec((1, 3, 4, 32, 32), "float32")},
        outputs={"pooled": sc.io_spec((1, 64), "float32")}, schedule=None, onnx_path=onnx_path,
    )  # fmt: skip
    sc.write_engine_and_sidecar(tmp_path / "e.plan", b"engine", sidecar)
    return tmp_path / "e.plan"


def test_validate_engine_without_tensorrt_is_a_named_error(graph, tmp_path, monkeypatch):
    import vidtldr_deploy.runtime.tensorrt.environment as env

    def missing():
        from vidtldr_deploy.errors import EnvironmentProblem

        raise EnvironmentProblem("TensorRT is not installed: install it")

    monkeypatch.setattr(env, "require_tensorrt", missing)
    plan = _engine_beside(graph, tmp_path, "fp32")  # the files are right: only TensorRT is missing
    res = invoke("validate", plan)
    assert res.exit_code == EXIT_BAD_INPUT and "TensorRT is not installed" in res.output


def test_validate_engine_uses_the_tensorrt_runner_and_the_graph_beside_it(
    graph, tmp_path, monkeypatch
):
    """`vidtldr validate X.plan`: TensorRTRunner with the sidecar's precision, the PyTorch reference
    rebuilt from X.onnx. A stand-in runner (ONNX Runtime on the graph) plays TensorRT here."""

    import vidtldr_deploy.runtime.devices as devices
    import vidtldr_deploy.runtime.tensorrt.runner as trt_runner
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    class FakeTensorRTRunner(OnnxRuntimeRunner):
        name = "tensorrt"
        opened: list = []

        def __init__(self, engine_path, plugin_library=None):
            self.opened.append((Path(engine_path), plugin_library))
            super().__init__(Path(engine_path).with_suffix(".onnx"))

    monkeypatch.setattr(devices, "check_device", lambda runtime, device: None)
    monkeypatch.setattr(trt_runner, "TensorRTRunner", FakeTensorRTRunner)
    _engine_beside(graph, tmp_path, "fp16")
    rep = tmp_path / "r.json"
    res = invoke("validate", tmp_path / "e.plan", "--plugins", tmp_path / "lib.so", "--report", rep)
    assert res.exit_code == 0, res.output
    assert FakeTensorRTRunner.opened == [(tmp_path / "e.plan", tmp_path / "lib.so")]
    data = json.loads(rep.read_text())
    assert (
        data["runtime"] == "tensorrt" and data["device"] == "cuda" and data["precision"] == "fp16"
    )
    assert data["tolerances"]["max_abs"] == pytest.approx(0.1)  # fp16 defaults for an fp16 engine
    (tmp_path / "e.onnx").unlink()
    res = invoke("validate", tmp_path / "e.plan")
    assert res.exit_code == EXIT_BAD_INPUT and "is not beside it" in " ".join(res.output.split())


# ------------------------------------------------------------------ one --report, --version, help


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_report_and_h(command):
    res = invoke(command, "-h")
    assert res.exit_code == 0, res.output
    assert "--report" in res.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_without_bogus_argument_and_defaults(command):
    text = invoke(command, "--help").output
    assert "<bool>" not in text and "BOOLEAN" not in text
    assert "[default:" in text
    for line in text.splitlines():
        # a flag is shown as `--flag` or `--flag / --no-flag`, never with a value argument
        if (
            re.match(r"\s+(--(unsafe-load|strict-tokens|compile|no-validate|json)\b)", line)
            and command != "profile"
        ):
            assert not re.search(
                r"--(unsafe-load|strict-tokens|compile|no-validate|json) <", line
            ), line


def test_profile_help_shows_defaults():
    text = " ".join(invoke("profile", "--help").output.split())
    assert (
        "[default: 50]" in text and "[default: torch]" in text and "--layers / --no-layers" in text
    )
    assert "--duration" in text and "--threads" in text


def test_export_help_shows_every_default():
    from vidtldr_deploy.cli.commands.export import export_app

    raw = runner.invoke(export_app, ["--help"], env={"COLUMNS": "200"}).output
    options: dict[str, str] = {}  # each option's help, wrapped lines joined
    flag = None
    for line in raw.split("Options:")[1].splitlines():
        start = re.match(r"\s{2}(-\w, )?(--[\w-]+)", line)
        flag = start.group(2) if start else flag
        if flag:
            options[flag] = options.get(flag, "") + " " + line.strip()
    for flag, default in (
        ("--merge-impl", "onnx"), ("--precision", "fp32"), ("--workspace", "TensorRT's"),
        ("--max-abs", "fp32 0.05, fp16 0.1, int8 0.5"), ("--min-cosine", "fp32 0.9995"),
        ("--schedule", "0.25x2 for demo"),
    ):  # fmt: skip
        assert f"[default: ({default}" in options[flag], (flag, options.get(flag))
    assert "`vidtldr profile` defaults to plugin" in options["--merge-impl"]  # why they differ


def test_root_help_lists_whole_command_summaries_at_80_columns():
    text = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    commands = text.split("Commands:")[1]
    assert "..." not in commands and max(map(len, text.splitlines())) <= 80
    joined = " ".join(commands.split())
    assert "compare it with the PyTorch model (same schedule)." in joined
    assert "print outputs, latency percentiles and throughput." in joined


def test_version_on_both_apps(capsys, monkeypatch):
    import sys

    from vidtldr_deploy import __version__
    from vidtldr_deploy.cli.main import export_main

    assert invoke("--version").output.strip() == f"vidtldr-deploy {__version__}"
    monkeypatch.setattr(sys, "argv", ["vidtldr-export", "--version"])
    export_main()
    assert capsys.readouterr().out.strip() == f"vidtldr-deploy {__version__}"


def test_archs_and_schedule_write_reports(tmp_path):
    res = invoke("archs", "--report", tmp_path / "a.json")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["kind"] == "archs" and any(r[0] == "videomae-tiny" for r in data["rows"])
    assert "videomae-tiny" in (tmp_path / "a.md").read_text()
    res = invoke("schedule", "--arch", "umt-b16", "-s", "msrvtt", "--report", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "s.md").read_text()
    assert "## Merge schedule `msrvtt`" in md and "Ideal speedup from FLOPs: 1.70x" in md
    # --json still prints exactly one JSON object and no table
    out = invoke("schedule", "--arch", "umt-b16", "-s", "msrvtt", "--json").output
    assert set(json.loads(out)) == {"kind", "arch", "frames", "spec", "layers", "flops"}


# ------------------------------------------------------------------ 80-column tables


def render80(renderable) -> str:
    con = Console(width=80, record=True, file=io.StringIO())
    con.print(renderable)
    return con.export_text()


def _assert_whole(text: str, cells) -> None:
    assert "…" not in text, text
    for cell in cells:
        assert cell in text, f"{cell!r} cut in:\n{text}"


def test_archs_table_fits_80_columns():
    from vidtldr_deploy.cli.commands.archs import HEADERS, arch_rows
    from vidtldr_deploy.report.tables import grid_table

    rows = arch_rows()
    text = render80(grid_table((HEADERS[:-1], [r[:-1] for r in rows]), "architectures", left=2))
    _assert_whole(text, [c for r in rows for c in r[:5]])


def _fake_profile_report() -> dict:
    lat = {"mean": 12345.678, "median": 12000.001, "p90": 13999.5, "p99": 14999.25, "min": 11111.111,
           "max": 15555.555}  # fmt: skip
    entry = {"latency_ms": lat, "throughput": 1234.56, "iterations": 50, "peak_memory_mb": 12345.0,
             "breakdown": {"parts": {"attention": 1234.567, "saliency": 12.5, "merge": 3.25, "mlp": 2345.678,
                                     "other": 1.0, "total": 3600.0},
                           "layers": [{"ms": 1234.567, "saliency": 12.5, "merge": 3.25}] * 2}}  # fmt: skip
    return {
        "runtime": "onnxruntime", "device": "cpu", "precision": "fp32", "batch": 8, "merged": entry,
        "baseline": entry, "speedup": 1.0, "speedup_vs_ideal": 0.5,
        "flops": {"merged": 1e9, "baseline": 2e9, "ideal_speedup": 2.0},
        "schedule": {"spec": "600,200", "layers": [
            {"layer": 0, "tokens_in": 2352, "r_requested": 600, "r": 600, "tokens_out": 1752, "clamped": False},
            {"layer": 1, "tokens_in": 1752, "r_requested": 200, "r": 200, "tokens_out": 1552, "clamped": False}]},
    }  # fmt: skip


def test_profile_tables_fit_80_columns():
    from vidtldr_deploy.report import tables
    from vidtldr_deploy.report.cells import latency_grid, layer_grid, parts_grid

    report = _fake_profile_report()
    for make, grid in ((tables.latency_table, latency_grid), (tables.layer_table, layer_grid),
                       (tables.parts_table, parts_grid)):  # fmt: skip
        _, rows = grid(report)
        _assert_whole(render80(make(report)), [c for r in rows for c in r])


def test_comparison_table_fits_80_columns():
    from vidtldr_deploy.report.cells import comparison_grid
    from vidtldr_deploy.report.tables import comparison_table

    metrics = {"max_abs": 0.012345678, "mean_abs": 1.234567e-05, "cosine": 0.99991234, "rel_l2": 0.0123456,
               "top1": 0.875, "top5": 0.9375}  # fmt: skip
    rows = [{"name": n, "shape": [8, 1452, 1024], "metrics": metrics, "failures": ["max_abs 0.01235 > 0.01"],
             "passed": False, "gating": True} for n in ("tokens", "logits")]  # fmt: skip
    _, cells = comparison_grid(rows, True, rich=False)
    _assert_whole(
        render80(comparison_table(rows, "tensorrt against PyTorch")),
        [c for r in cells[:-1] for c in r],
    )


# ------------------------------------------------------------------ export configs and README


def _tolerance_statements(text: str):
    """(precision, name, value) for every tolerance a comment states as `fp32 ... name value`."""
    for segment in re.findall(r"\b(fp32|fp16)\b([^;)]*)", text):
        precision, body = segment
        for name, value in re.findall(
            r"\b(max_abs|mean_abs|cosine|rel_l2|top1|top5)\s+([0-9.e-]+)", body
        ):
            yield precision, name, float(value)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "export_configs").glob("*.toml")), ids=lambda p: p.name
)
def test_export_configs_state_the_code_tolerances(path):
    from vidtldr_deploy.export.config import load_export_config
    from vidtldr_deploy.validate.tolerances import apply_overrides, default_tolerances

    cfg = load_export_config(path)
    apply_overrides(default_tolerances(cfg.precision), cfg.tolerances)  # set values are valid ones
    text = path.read_text()
    comments = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    stated = list(_tolerance_statements(comments))
    for precision, name, value in stated:
        assert value == pytest.approx(getattr(default_tolerances(precision), name)), (
            precision,
            name,
        )
    section = text.split("[tolerances]", 1)[1] if "[tolerances]" in text else ""
    commented = re.findall(
        r"^#\s*(max_abs|mean_abs|cosine|rel_l2|top1|top5)\s*=\s*([0-9.e-]+)", section, re.M
    )
    for name, value in commented:  # commented-out keys show this config's precision's defaults
        assert float(value) == pytest.approx(getattr(default_tolerances(cfg.precision), name)), name
    assert stated or commented


def test_readme_install_gives_the_cpu_torch_first():
    text = (ROOT / "README.md").read_text()
    install = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    cpu = install.find("--index-url https://download.pytorch.org/whl/cpu")
    assert cpu != -1 and cpu < install.find('pip install -e ".[test]"')
    assert "torch==2.13.0" not in install
