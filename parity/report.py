"""How a parity result reads: the verdict, each number beside the rule that judged it.

`ipt-ms parity` prints a table and one summary line, and `--report` writes report.md,
report.json and error_vs_depth.png. Everything here states which two runs a number
compares (MindSpore vs PyTorch float32, either of them vs PyTorch float64, ONNX Runtime
vs PyTorch) and which tolerance applies to it, so a reader never has to guess whether a
relative error sits next to an absolute tolerance. The two pass rules, in words:

* fixed tolerance: max rel err (MindSpore vs PyTorch float32) <= the stage's tolerance;
* float32 floor: MindSpore's distance from PyTorch float64 <= `floor_factor` x PyTorch
  float32's own distance from float64 (the accuracy float32 itself allows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from parity.compare import ParityReport, StageDiff

#: display names of the frameworks a report may hold
FRAMEWORK_NAMES = {"mindspore": "MindSpore", "onnx": "ONNX Runtime"}


def framework_name(key: str) -> str:
    return FRAMEWORK_NAMES.get(key, key)


def verdict_word(stage: StageDiff) -> str:
    """'pass (tol)', 'pass (floor)' or 'FAIL' for one stage."""
    if stage.within_tolerance:
        return "pass (tol)"
    return "pass (floor)" if stage.within_floor else "FAIL"


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def explain(stage: StageDiff, who: str = "MindSpore") -> str:
    """One clause: the stage's number, its tolerance, and which rule decided."""
    rel = f"max rel err {_e(stage.max_rel_err)}"
    if stage.within_tolerance:
        return f"{rel} <= tol {stage.tolerance:.0e}"
    head = f"{rel} > tol {stage.tolerance:.0e}"
    if stage.ms_vs_fp64 is None or stage.fp32_floor is None:
        return f"{head} (no float64 reference to apply the float32-floor rule)"
    relation = "<=" if stage.within_floor else ">"
    rule = (f"{who} vs float64 {_e(stage.ms_vs_fp64)} {relation} {stage.floor_factor:g} x PyTorch float32 vs "
            f"float64 {_e(stage.fp32_floor)} = {_e(stage.floor_limit)}")
    return f"{head}, {'passes by the float32-floor rule' if stage.within_floor else 'and'}: {rule}"


def rule_sentence(report: ParityReport) -> str:
    fixed = f"max rel err <= {report.stage_tol:.0e} per stage and <= {report.output_tol:.0e} on the output"
    if not report.has_fp64:
        return f"Rule: every stage passes when its {fixed} (no float64 reference was run)."
    return (f"Rule: a stage passes when its {fixed} (max rel err = max|candidate - PyTorch| / max|PyTorch|), "
            f"or when the candidate is no further from a float64 run of PyTorch than {report.floor_factor:g}x "
            "PyTorch float32 is (the float32-floor rule).")


# ------------------------------------------------------------------------------ text
def summary_line(report: ParityReport) -> str:
    """What `ipt-ms parity` prints last: the verdict line, then the output and worst stage, each
    number beside the tolerance that applies to it."""
    stages, out = report.stages, report.stages[-1]
    passing = sum(1 for s in stages if s.ok)
    by_floor = [s for s in stages if s.passed_by == "floor"]
    head = (f"parity {'PASS' if report.ok else 'FAIL'}: task {report.task}, MindSpore vs PyTorch, "
            f"{passing}/{len(stages)} stages pass")
    if report.has_fp64:
        head += f" ({passing - len(by_floor)} within tolerance, {len(by_floor)} by the float32-floor rule)"
    lines = [head, f"  output: {explain(out)} (max abs err {out.max_abs_err:.2e} on the 0-{_range(report)} "
                   "pixel scale, not judged)"]
    inner = stages[:-1]
    if inner:
        worst = max(inner, key=lambda s: s.max_rel_err)
        lines.append(f"  worst stage {worst.name}: {explain(worst)}")
    bad = [s for s in stages if not s.ok]
    if bad:
        lines.append(f"  first failing stage {bad[0].name}: {explain(bad[0])}")
    for fw, diffs in report.others.items():
        name = framework_name(fw)
        ok = sum(1 for d in diffs if d.ok)
        lines.append(f"  {name} vs PyTorch: {ok}/{len(diffs)} stage(s) compared pass"
                     + ("" if ok == len(diffs) else " (FAIL)") + f"; output {explain(diffs[-1], name)}")
    return "\n".join(lines)


def _range(report: ParityReport) -> int:
    return int(report.spec.get("rgb_range", 255))


def text_table(stages: list[StageDiff], who: str = "ms") -> str:
    width = max(len("stage"), max(len(s.name) for s in stages))
    header = (f"{'stage':<{width}}  {'shape':<14} {'max abs err':>11} {'max rel err':>11} {'tol':>6} "
              f"{'fp32 floor':>10} {who + ' vs fp64':>12} {'floor limit':>11}  verdict")
    lines = [header]
    for s in stages:
        shape = "x".join(str(d) for d in s.shape)
        lines.append(f"{s.name:<{width}}  {shape:<14} {s.max_abs_err:11.3e} {s.max_rel_err:11.3e} "
                     f"{s.tolerance:6.0e} {_e(s.fp32_floor):>10} {_e(s.ms_vs_fp64):>12} {_e(s.floor_limit):>11}  "
                     f"{verdict_word(s)}")
    return "\n".join(lines)


def legend_lines(report: ParityReport) -> list[str]:
    floor = report.floor_factor
    return [
        "max abs err / max rel err: MindSpore vs PyTorch float32 (rel = max abs err / max |PyTorch| of the stage); "
        "tol applies to max rel err",
        "fp32 floor: PyTorch float32 vs PyTorch float64; ms vs fp64: MindSpore vs PyTorch float64; "
        f"floor limit = {floor:g} x fp32 floor",
        "verdict: pass (tol) = max rel err <= tol; pass (floor) = ms vs fp64 <= floor limit; FAIL = neither",
    ]


def full_text(report: ParityReport) -> str:
    sections = [text_table(report.stages, "ms")]
    for fw, diffs in report.others.items():
        sections.append(f"\n{framework_name(fw)} ({report.sources.get(fw, '')}) vs PyTorch, the stages it exposes:\n"
                        + text_table(diffs, fw))
    return "\n".join(sections + [""] + [f"  {line}" for line in legend_lines(report)])


# ------------------------------------------------------------------------------ markdown
def verdict_paragraph(report: ParityReport) -> str:
    """One paragraph a reviewer can paste into a pull request."""
    stages, out = report.stages, report.stages[-1]
    by_tol = sum(1 for s in stages if s.passed_by == "tolerance")
    by_floor = [s for s in stages if s.passed_by == "floor"]
    bad = [s for s in stages if not s.ok]
    what = (f"IPT task `{report.task}`, {report.input}, MindSpore {report.mode} mode on {report.device} against the "
            f"PyTorch twin on CPU")
    if not bad:
        opening = (f"**PASS.** On {what}, all {len(stages)} stages agree. The output differs by "
                   f"{out.max_rel_err:.2e} of its range (max abs {out.max_abs_err:.2e} on the 0-{_range(report)} "
                   f"pixel scale; tolerance {out.tolerance:.0e} relative).")
    else:
        opening = (f"**FAIL.** On {what}, {len(bad)} of {len(stages)} stages disagree beyond both rules; the first "
                   f"is `{bad[0].name}` ({explain(bad[0])}). Stages before it agree, so the discrepancy starts "
                   "there.")
    counts = f" {by_tol} stage(s) are within the fixed tolerance"
    if report.has_fp64:
        counts += (f" and {len(by_floor)} pass by the float32-floor rule (MindSpore is no further from a float64 "
                   f"run of PyTorch than {report.floor_factor:g}x PyTorch float32 is")
        if by_floor:
            worst = max(by_floor, key=lambda s: s.ms_vs_fp64 / s.fp32_floor if s.fp32_floor else np.inf)
            counts += (f"; the highest ratio is {worst.ms_vs_fp64 / worst.fp32_floor:.2f}x at `{worst.name}`, "
                       f"against a limit of {report.floor_factor:g}x" if worst.fp32_floor else "")
        counts += ")."
    else:
        counts += " (no float64 reference was run, so only the fixed tolerance applies)."
    others = ""
    for fw, diffs in report.others.items():
        name = framework_name(fw)
        bad_other = [d for d in diffs if not d.ok]
        others += (f" {name} ({report.sources.get(fw, '')}) was compared with PyTorch on the {len(diffs)} stage(s) "
                   f"it exposes: " + ("all pass" if not bad_other else f"{len(bad_other)} fail, first "
                                      f"`{bad_other[0].name}`") + f", output {explain(diffs[-1], name)}.")
    return opening + counts + others + " " + rule_sentence(report)


def _markdown_rows(stages: list[StageDiff], who: str) -> list[str]:
    rows = [f"| stage | shape | max abs err | max rel err | tol | fp32 floor | {who} vs fp64 | floor limit | "
            "verdict |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in stages:
        word = verdict_word(s)
        rows.append(f"| {s.name} | {'x'.join(map(str, s.shape))} | {s.max_abs_err:.3e} | {s.max_rel_err:.3e} | "
                    f"{s.tolerance:.0e} | {_e(s.fp32_floor)} | {_e(s.ms_vs_fp64)} | {_e(s.floor_limit)} | "
                    f"{'**FAIL**' if word == 'FAIL' else word} |")
    return rows


def markdown(report: ParityReport) -> str:
    rows = _markdown_rows(report.stages, "ms")
    for fw, diffs in report.others.items():
        rows += ["", f"## {framework_name(fw)} ({report.sources.get(fw, '')}) vs PyTorch", "",
                 f"The stages the exported graph exposes, judged by the same rules; `{fw} vs fp64` is "
                 f"{framework_name(fw)} against PyTorch float64.", ""]
        rows += _markdown_rows(diffs, fw)
    timing = ", ".join(f"{k} {v:.3f} s" for k, v in report.timings.items())
    env = ", ".join(f"{k} {v}" for k, v in report.environment.items())
    title = (f"# IPT layer-by-layer parity: MindSpore vs PyTorch"
             f"{''.join(f' (+ {framework_name(fw)})' for fw in report.others)}: {'PASS' if report.ok else 'FAIL'}")
    return "\n".join([
        title, "", verdict_paragraph(report), "", "![error by depth](error_vs_depth.png)", "",
        "## Stages", "",
        f"- task: `{report.task}`; input: {report.input}; MindSpore mode: {report.mode} on {report.device}",
        *[f"- {line}" for line in legend_lines(report)],
        f"- timings: {timing}", f"- environment: {env}", "", *rows, "",
    ])


# ------------------------------------------------------------------------------ plot
def plot(report: ParityReport, path) -> object:
    """error_vs_depth.png: one panel per pass rule, the pass region shaded, verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ipt_ms.fileio import save_figure

    stages = report.stages
    x = np.arange(len(stages))
    position = {s.name: i for i, s in enumerate(stages)}
    tol = np.array([s.tolerance for s in stages])
    fp64 = report.has_fp64
    values = [s.max_rel_err for s in stages]
    if fp64:
        values += [s.fp32_floor for s in stages] + [s.ms_vs_fp64 for s in stages]
    for diffs in report.others.values():
        values += [d.max_rel_err for d in diffs] + [d.ms_vs_fp64 for d in diffs if d.ms_vs_fp64 is not None]
    positive = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    lowest = min(positive + list(tol)) if positive else float(tol.min())
    exact = 10 ** (np.floor(np.log10(lowest)) - 1)  # where exact zeros are drawn, labelled "0 (exact)"

    def shown(vals):
        return [exact if (v is not None and v == 0) else v for v in vals]

    def mark_zeros(ax, xs, vals, color):
        zx = [xi for xi, v in zip(xs, vals) if v == 0]
        if zx:
            ax.scatter(zx, [exact] * len(zx), marker="o", s=46, facecolors="white", edgecolors=color, zorder=4)

    rows = 2 if fp64 else 1
    fig, axes = plt.subplots(rows, 1, figsize=(max(9.0, len(stages) * 0.3), 4.2 * rows + 0.8), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]

    # panel 1: the fixed-tolerance rule
    ax = axes[0]
    ax.fill_between(x, exact / 2, tol, step="mid", color="tab:green", alpha=0.12,
                    label="pass region: max rel err <= tolerance")
    ax.step(x, tol, where="mid", color="tab:green", lw=1.2,
            label=f"tolerance ({report.stage_tol:.0e} per stage, {report.output_tol:.0e} output)")
    rel = [s.max_rel_err for s in stages]
    ax.semilogy(x, shown(rel), "-", color="tab:blue", lw=1.2, label="MindSpore vs PyTorch float32")
    mark_zeros(ax, x, rel, "tab:blue")
    for word, marker, color in (("pass (tol)", "o", "tab:blue"), ("pass (floor)", "D", "tab:orange"),
                                ("FAIL", "X", "tab:red")):
        idx = [i for i, s in enumerate(stages) if verdict_word(s) == word and s.max_rel_err > 0]
        if idx:
            label = {"pass (tol)": None, "pass (floor)": "above tolerance, passes by the float32-floor rule "
                     "(lower panel)", "FAIL": "FAIL: outside both pass regions"}[word]
            ax.scatter(idx, [rel[i] for i in idx], marker=marker, s=36 if word != "FAIL" else 70, color=color,
                       zorder=5, label=label)
    for fw, diffs in report.others.items():
        seen = [d for d in diffs if d.name in position]
        xs = [position[d.name] for d in seen]
        ax.semilogy(xs, shown([d.max_rel_err for d in seen]), "s--", ms=4, alpha=0.75, color="tab:purple",
                    label=f"{framework_name(fw)} vs PyTorch float32")
        mark_zeros(ax, xs, [d.max_rel_err for d in seen], "tab:purple")
    ax.set_ylabel("max rel err")
    ax.set_title("Rule 1: difference from PyTorch float32 within the fixed tolerance", fontsize=9, loc="left")

    # panel 2: the float32-floor rule
    if fp64:
        ax2 = axes[1]
        floor = np.array([s.fp32_floor for s in stages])
        limit = np.array([s.floor_limit for s in stages])
        ax2.fill_between(x, exact / 2, np.maximum(limit, exact), step="mid", color="tab:orange", alpha=0.12,
                         label=f"pass region: <= {report.floor_factor:g}x the float32 floor")
        ax2.step(x, np.maximum(limit, exact), where="mid", color="tab:orange", lw=1.2,
                 label=f"{report.floor_factor:g}x float32 floor (limit)")
        ax2.semilogy(x, shown(list(floor)), "^:", ms=4, color="tab:gray",
                     label="float32 floor: PyTorch float32 vs PyTorch float64")
        mark_zeros(ax2, x, list(floor), "tab:gray")
        ms64 = [s.ms_vs_fp64 for s in stages]
        ax2.semilogy(x, shown(ms64), "o-", ms=4, color="tab:blue", label="MindSpore vs PyTorch float64")
        mark_zeros(ax2, x, ms64, "tab:blue")
        for word, marker, color, label in (("pass (floor)", "D", "tab:orange", "passes by this rule"),
                                           ("FAIL", "X", "tab:red", "FAIL: above the limit here too")):
            idx = [i for i, s in enumerate(stages) if verdict_word(s) == word and ms64[i] > 0]
            if idx:
                ax2.scatter(idx, [ms64[i] for i in idx], marker=marker, s=36 if word != "FAIL" else 70, color=color,
                            zorder=5, label=label)
        for fw, diffs in report.others.items():
            seen = [d for d in diffs if d.name in position and d.ms_vs_fp64 is not None]
            xs = [position[d.name] for d in seen]
            ax2.semilogy(xs, shown([d.ms_vs_fp64 for d in seen]), "s--", ms=4, alpha=0.75, color="tab:purple",
                         label=f"{framework_name(fw)} vs PyTorch float64")
        ax2.set_ylabel("max rel err vs float64")
        ax2.set_title("Rule 2 (for stages outside rule 1): no further from float64 than float32 allows",
                      fontsize=9, loc="left")

    top = max(positive + list(tol)) if positive else float(tol.max())
    for a in axes:
        a.set_yscale("log")
        a.set_ylim(exact / 2, top * 8)
        ticks = [t for t in a.get_yticks() if exact * 1.5 < t < top * 8]
        a.set_yticks([exact] + ticks, ["0 (exact)"] + [f"$10^{{{int(round(np.log10(t)))}}}$" for t in ticks])
        a.grid(True, which="major", alpha=0.3)
        a.legend(fontsize=7, loc="upper left", framealpha=0.85)
    axes[-1].set_xticks(x, [s.name for s in stages], rotation=90, fontsize=7)
    axes[-1].set_xlim(-0.6, len(stages) - 0.4)

    by_floor = sum(1 for s in stages if s.passed_by == "floor")
    bad = sum(1 for s in stages if not s.ok)
    extra = [framework_name(fw) for fw in report.others]
    if report.ok:
        verdict = (f"PASS: all {len(stages)} stages pass ({len(stages) - by_floor} within tolerance"
                   + (f", {by_floor} by the float32-floor rule)" if fp64 else ")"))
    else:
        verdict = f"FAIL: {bad} stage(s) outside both pass regions" if bad else "FAIL: ONNX Runtime stage(s) fail"
    subtitle = (f"task {report.task}, MindSpore ({report.mode}, {report.device}) vs PyTorch"
                + (f" + {', '.join(extra)}" if extra else ""))
    if fp64:
        subtitle += ". A stage passes if it lies in either shaded region."
    fig.suptitle(f"IPT parity {verdict}\n{subtitle}", fontsize=10,
                 color="tab:green" if report.ok else "tab:red", x=0.01, ha="left")
    fig.tight_layout()
    return save_figure(fig, path)
