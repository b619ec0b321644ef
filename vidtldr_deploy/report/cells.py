"""Cells shared by every rendering (console tables and Markdown): number formats, the schedule rows,
the comparison grid, the latency, per-part and per-layer grids, and the facts and warnings lines, so
a Markdown report holds what the console showed."""

from __future__ import annotations

from vidtldr_deploy.profile.result import ORT_FP32_BASELINE
from vidtldr_deploy.profile.stats import STATS
from vidtldr_deploy.runtime.breakdown import PARTS

Grid = tuple[list[str], list[list[str]]]


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def schedule_rows(schedule: dict) -> list[list[str]]:
    return [
        [str(r["layer"]), str(r["tokens_in"]), fmt(r["r_requested"]),
         f"{r['r']}{' (clamped)' if r['clamped'] else ''}", str(r["tokens_out"])]
        for r in schedule["layers"]
    ]  # fmt: skip


SCHEDULE_HEADERS = ["layer", "tokens in", "r asked", "r", "tokens out"]


METRIC_ORDER = ["max_abs", "mean_abs", "cosine", "rel_l2", "top1", "top5"]


def _metric_names(rows: list[dict]) -> list[str]:
    present = {k for r in rows for k in r["metrics"]}
    return [m for m in METRIC_ORDER if m in present]


def _verdict(row: dict, rich: bool) -> str:
    if row["passed"]:
        return "[green]pass[/]" if rich else "pass"
    if not row.get("gating", True):
        # Reported, not judged: row-aligned tokens after a merge-selection flip (see validate.py).
        return "[yellow]info[/]" if rich else "info"
    return "[red]FAIL[/]" if rich else "FAIL"


def comparison_grid(rows: list[dict], verdict: bool, rich: bool) -> Grid:
    """A comparison laid out one column per output and one row per metric (few outputs, many
    metrics: tall, so it fits 80 columns); shared by the terminal table and the Markdown."""
    headers = ["metric", *[r["name"] for r in rows]]
    cells = [["shape", *["x".join(map(str, r["shape"])) for r in rows]]]
    for m in _metric_names(rows):
        cells.append([m, *[fmt(r["metrics"].get(m, "")) or "-" for r in rows]])
    if verdict:
        cells.append(["result", *[_verdict(r, rich=rich) for r in rows]])
    return headers, cells


def comparison_notes(rows: list[dict]) -> list[str]:
    """Why each output failed (or is reported only): the text under the table."""
    notes = []
    for r in rows:
        if r["passed"]:
            continue
        why = "; ".join(r["failures"])
        gating = r.get("gating", True)
        notes.append(f"{r['name']}: {'FAIL' if gating else 'info (not gating)'}: {why}")
    return notes


def tolerance_text(tolerances: dict) -> str:
    """The bounds a validation was held to, in the order of the comparison table."""
    text = ", ".join(f"{k} {fmt(float(tolerances[k]))}" for k in METRIC_ORDER if k in tolerances)
    return f"{text} (errors at most, cosine and top-k at least)"


# ---------------------------------------------------------------------------- profiles

MODELS = (("baseline", "unmerged"), ("merged", "merged"))


def _memory_cell(entry: dict) -> str:
    mem = entry.get("peak_memory_mb")
    if mem is None and entry.get("rss_delta_mb") is not None:
        return f"RSS +{entry['rss_delta_mb']:.0f}"
    return "-" if mem is None else f"{mem:.0f}"


def _models(report: dict) -> list[tuple[str, str]]:
    """The timed models of a profile, in the order to show them: the baseline first; an INT8
    profile adds INT8 unmerged between it and the (INT8) merged model."""
    if "baseline_int8" in report:
        return [
            ("baseline", "fp32 unmerged"),
            ("baseline_int8", "int8 unmerged"),
            ("merged", "int8 merged"),
        ]
    if ORT_FP32_BASELINE in report:  # an OpenVINO profile: the common ONNX Runtime baseline first
        return [(ORT_FP32_BASELINE, "ORT fp32 unmerged"), *MODELS]
    return list(MODELS)


def latency_grid(report: dict) -> Grid:
    """One row per statistic, one column per model: narrow enough for any terminal."""
    MODELS = _models(report)  # noqa: N806 - the module default, widened for INT8 profiles
    headers = ["ms per batch", *[label for _, label in MODELS]]
    rows = [[s, *[f"{report[key]['latency_ms'][s]:.3f}" for key, _ in MODELS]] for s in STATS]
    rows.append(["clips/s", *[f"{report[key]['throughput']:.2f}" for key, _ in MODELS]])
    rows.append(["peak MiB", *[_memory_cell(report[key]) for key, _ in MODELS]])
    rows.append(["iterations", *[str(report[key].get("iterations", "")) for key, _ in MODELS]])
    return headers, rows


def _breakdown(report: dict, key: str) -> dict:
    return report.get(key, {}).get("breakdown") or {}


def parts_grid(report: dict) -> Grid:
    m, b = (
        _breakdown(report, "merged").get("parts", {}),
        _breakdown(report, "baseline").get("parts", {}),
    )
    keys = [k for k in ("patch_embed", *PARTS, "head", "total") if k in m or k in b]
    rows = [[k, f"{m.get(k, 0.0):.3f}", f"{b.get(k, 0.0):.3f}"] for k in keys]
    return ["part (ms per batch)", "merged", "unmerged"], rows


def layer_grid(report: dict) -> Grid:
    """Per-layer token table with the measured block times of both models."""
    # Two-line headers: numbers columns stay narrow enough for 80 columns (Markdown joins them).
    headers = ["layer", "tokens\nin", "r", "tokens\nout", "merged\nms", "saliency\n+merge ms",
               "unmerged\nms"]  # fmt: skip
    m = _breakdown(report, "merged").get("layers")
    b = _breakdown(report, "baseline").get("layers")
    rows = []
    for i, row in enumerate(report["schedule"]["layers"]):
        cells = [str(row["layer"]), str(row["tokens_in"]), str(row["r"]), str(row["tokens_out"])]
        if m and b:
            cells += [
                f"{m[i]['ms']:.3f}",
                f"{m[i]['saliency'] + m[i]['merge']:.3f}",
                f"{b[i]['ms']:.3f}",
            ]
        else:
            cells += ["-", "-", "-"]
        rows.append(cells)
    return headers, rows


def summary_text(report: dict) -> str:
    f = report["flops"]
    if "merging_speedup" in report:  # INT8: merging against its ideal, then the precision gain
        return (
            f"merging speedup {report['merging_speedup']:.2f}x (int8 unmerged median / int8 "
            f"merged median); ideal from FLOPs {f['ideal_speedup']:.2f}x "
            f"({f['merged'] / 1e9:.2f} of {f['baseline'] / 1e9:.2f} GFLOPs); "
            f"{report['merging_vs_ideal']:.0%} of ideal. Precision: int8 unmerged "
            f"{report['speedup_baseline_int8']:.2f}x fp32 unmerged; both together "
            f"{report['speedup']:.2f}x"
        )
    text = (
        f"speedup {report['speedup']:.2f}x (baseline median / merged median); ideal from FLOPs "
        f"{f['ideal_speedup']:.2f}x ({f['merged'] / 1e9:.2f} of {f['baseline'] / 1e9:.2f} GFLOPs); "
        f"{report['speedup_vs_ideal']:.0%} of ideal"
    )
    if "speedup_vs_onnxruntime_fp32" in report:
        text += (f"; {report['speedup_vs_onnxruntime_fp32']:.2f}x the ONNX Runtime fp32 unmerged "
                 "model")  # fmt: skip
    return text


def run_facts(report: dict) -> list[tuple[str, str]]:
    """How a profile was measured: what a reader needs to trust or reproduce the numbers."""
    facts = [("merge impl", str(report.get("merge_impl", ""))),
             ("iterations", f"{report.get('iterations')} timed per model "
                            f"(warm-up {report.get('warmup')})")]  # fmt: skip
    if report.get("duration_s"):
        facts.append(("duration", f"at least {report['duration_s']:g} s of timing"))
    if report.get("timing"):
        facts.append(("timing", report["timing"]))
    threads = (report.get("environment") or {}).get("threads")
    facts.append(("threads", "runtime default" if threads is None else str(threads)))
    if report.get("inputs"):
        facts.append(("inputs", report["inputs"]))
    return facts


def environment_rows(report: dict) -> list[list[str]]:
    return [[str(k), fmt(v)] for k, v in (report.get("environment") or {}).items()]
