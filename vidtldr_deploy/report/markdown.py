"""Markdown renderings of reports: what the console shows, for files and pull requests. Every
table comes from the same cells as the console's (report/cells.py)."""

from __future__ import annotations

from vidtldr_deploy.report.cells import (
    SCHEDULE_HEADERS,
    comparison_grid,
    comparison_notes,
    environment_rows,
    fmt,
    latency_grid,
    layer_grid,
    parts_grid,
    run_facts,
    schedule_rows,
    summary_text,
    tolerance_text,
)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(map(_cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_comparison(rows: list[dict], verdict: bool) -> str:
    notes = [f"- {n}" for n in comparison_notes(rows)] if verdict else []
    table = _md_table(*comparison_grid(rows, verdict, rich=False))
    return table + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _facts(report: dict) -> list[str]:
    parts = []
    for key in ("target", "runtime", "device", "arch", "source", "precision", "inputs"):
        if report.get(key) and not isinstance(report[key], dict):  # tune's target: in words below
            parts.append(f"- **{key}**: {report[key]}")
    if "passed" in report:
        parts.append(f"- **result**: {'PASS' if report['passed'] else 'FAIL'}")
    if "tolerances" in report:
        parts.append(f"- **tolerances**: {tolerance_text(report['tolerances'])}")
    return parts


def _profile_sections(report: dict) -> list[str]:
    parts = [f"- **{k}**: {v}" for k, v in run_facts(report) if k != "inputs"]
    parts += [
        f"- **summary**: {summary_text(report)}",
        "",
        "## Latency\n",
        _md_table(*latency_grid(report)),
    ]
    if report["merged"].get("breakdown") and report["baseline"].get("breakdown"):
        if report["merged"]["breakdown"].get("layers"):
            parts += ["## Per layer (ms per batch)\n", _md_table(*layer_grid(report))]
        parts += [
            "## Where the time goes (separate instrumented pass)\n",
            _md_table(*parts_grid(report)),
        ]
    return parts


def _warnings(report: dict) -> list[str]:
    if not report.get("warnings"):
        return []
    return ["## Warnings\n", *[f"- {w}" for w in report["warnings"]], ""]


def _evaluate_sections(report: dict) -> list[str]:
    heads = ["schedule", "FLOPs ratio", "cosine mean", "cosine min", "rel L2"]
    keys = ["cosine_mean", "cosine_min", "rel_l2_mean"]
    extra = [
        "top1_agreement",
        "top5_agreement",
        "kl_mean",
        "accuracy",
        "baseline_accuracy",
        "recall_at_1",
        "recall_at_5",
    ]
    present = [
        k for k in extra if any(r["metrics"].get(k) is not None for r in report["schedules"])
    ]
    rows = [[r["schedule"], fmt(r["flops"]["ratio"]), *[fmt(r["metrics"][k]) for k in keys],
             *[fmt(r["metrics"].get(k, "")) for k in present]] for r in report["schedules"]]  # fmt: skip
    return [f"- **clips**: {report['clips']['count']}", "",
            "## Against the unmerged model\n", _md_table(heads + present, rows)]  # fmt: skip


def _tune_sections(report: dict) -> list[str]:
    from vidtldr_deploy.tune.budget import Budget

    f = report["flops"]
    latency = report["target"]["kind"] == "latency_ms"
    parts = [
        f"- **schedule**: `{report['schedule']}` (FLOPs ratio {fmt(f['ratio'])}, drift {fmt(report['drift'])}, "
        f"{'meets' if report['meets_budget'] else 'does not meet'} the budget)",
        f"- **target**: {Budget(**report['target']).describe()}",
        f"- **candidates evaluated**: {report['candidates_evaluated']}"
        + (" (interrupted: best so far)" if report.get("interrupted") else ""),
        "",
        "## Pareto front\n",
    ]
    cost = "latency_ms" if latency else "flops_ratio"
    parts.append(
        _md_table(
            ["schedule", cost, "drift"],
            [[r["schedule"], fmt(r.get(cost, "")), fmt(r["drift"])] for r in report["pareto"]],
        )
    )
    if report.get("presets"):
        parts += ["## Presets\n", _md_table(["preset", "flops_ratio", "drift", "meets budget"],
                  [[r.get("name", r["schedule"]), fmt(r["flops_ratio"]), fmt(r["drift"]), str(r["meets_budget"])]
                   for r in report["presets"]])]  # fmt: skip
    return parts


def to_markdown(report: dict) -> str:
    """Render any report this toolkit writes (validation, profile, schedule, ...) as Markdown."""
    kind = report.get("kind", "report")
    parts = [f"# vidtldr {kind} report\n", *_facts(report)]
    if kind in ("evaluate", "tune"):
        parts += _evaluate_sections(report) if kind == "evaluate" else _tune_sections(report)
        return "\n".join([*parts, "", *_warnings(report)]) + "\n"
    is_profile = "baseline" in report and "latency_ms" in report.get("baseline", {})
    if is_profile:
        parts += _profile_sections(report)
    elif "speedup" in report:
        parts.append(f"- **speedup** (merged vs unmerged, median): {report['speedup']:.3f}x")
    parts.append("")
    parts += _warnings(report)
    if "outputs" in report:
        parts += [
            "## Outputs against PyTorch (same schedule)\n",
            _md_comparison(report["outputs"], True),
        ]
    if report.get("merge_cost"):
        parts += ["## Cost of merging (unmerged against merged PyTorch; not an error)\n",
                  _md_comparison(report["merge_cost"], False)]  # fmt: skip
    if "flops" in report:
        f = report["flops"]
        parts += ["## FLOPs (multiply-adds, fvcore convention)\n",
                  _md_table(["model", "GFLOPs"], [["baseline", fmt(f["baseline"] / 1e9)],
                                                  ["merged", fmt(f["merged"] / 1e9)]]),
                  f"Ideal speedup from FLOPs: {f['ideal_speedup']:.2f}x\n"]  # fmt: skip
    if "schedule" in report:
        parts += [f"## Merge schedule `{report['schedule']['spec']}`\n",
                  _md_table(SCHEDULE_HEADERS, schedule_rows(report["schedule"]))]  # fmt: skip
        parts += [f"- note: {note}" for note in report["schedule"].get("notes", [])]
    if "rows" in report and "headers" in report:  # generic tables (archs)
        parts += [_md_table(report["headers"], report["rows"])]
    if report.get("environment"):
        parts += ["## Environment\n", _md_table(["", "value"], environment_rows(report))]
    return "\n".join(parts) + "\n"
