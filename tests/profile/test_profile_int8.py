"""`vidtldr profile --precision int8`: fp32 unmerged, INT8 unmerged and INT8 merged timed side by
side (interleaved), the Q/DQ graphs calibrated as the export does."""

from __future__ import annotations

import json


def test_int8_profile_has_three_rows(cli, tmp_path):
    report = tmp_path / "p.json"
    result = cli("profile", "demo-random", "--runtime", "onnxruntime", "--precision", "int8", "-n", "2",
                 "--warmup", "0", "--no-layers", "--report", report, "--plot",
                 tmp_path / "p.png")  # fmt: skip
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    data = json.loads(report.read_text())
    for key in ("baseline", "baseline_int8", "merged"):
        assert data[key]["iterations"] == 2
    assert data["speedup_baseline_int8"] > 0 and data["precision"] == "int8"
    assert "no calibration clips given" in text  # the scales came from noise, and it says so
    md = report.with_suffix(".md").read_text()
    assert "| ms per batch | fp32 unmerged | int8 unmerged | int8 merged |" in md
    # the headline: merging (INT8 unmerged over INT8 merged) against its FLOPs ideal; the
    # precision gain apart
    medians = {k: data[k]["latency_ms"]["median"] for k in ("baseline", "baseline_int8", "merged")}
    merging = medians["baseline_int8"] / medians["merged"]
    assert abs(data["merging_speedup"] - merging) < 1e-9
    assert abs(data["merging_vs_ideal"] - merging / data["flops"]["ideal_speedup"]) < 1e-9
    assert f"merging speedup {merging:.2f}x" in text and f"{merging:.2f}x" in md
    assert f"int8 unmerged {data['speedup_baseline_int8']:.2f}x fp32 unmerged" in text
    assert (tmp_path / "p.png").stat().st_size > 0


def test_int8_profile_needs_onnxruntime(cli):
    result = cli("profile", "demo-random", "--runtime", "torch", "--precision", "int8")
    assert result.exit_code == 2 and "use --runtime onnxruntime" in " ".join(result.output.split())
