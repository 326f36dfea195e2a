"""How a parity result reads: the verdict, each number beside the rule that judged it.

`ParityReport` (one task's stages, its verdict) and how it reads. `ipt-ms parity` prints a table
and one summary line, and `--report` writes report.md,
report.json and error_vs_depth.png. Everything here states which runs a number compares
and which limit applies to it. The rules (`parity.compare` explains them):

* each stage alone (with a float64 run, the verdict): MindSpore's own error at the stage,
  computed from the float64 run's inputs, <= `floor_factor` x float32's rounding there
  (PyTorch float32 from the same inputs, worst of several draws);
* end to end (the output; every stage without a float64 run; ONNX Runtime): max rel err
  against PyTorch float32 <= the fixed tolerance, or no further from float64 than
  `floor_factor` x PyTorch float32 is.

One idea -- the words and figures of one result, in a terminal table, report.md and a plot --
so it stays one file of a little over 400 lines; the numbers themselves are `parity.diff`'s.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from parity.diff import DEFAULT_FLOOR_FACTOR, StageDiff

#: display names of the frameworks a report may hold
FRAMEWORK_NAMES = {"mindspore": "MindSpore", "onnx": "ONNX Runtime"}


def framework_name(key: str) -> str:
    return FRAMEWORK_NAMES.get(key, key)


@dataclass
class ParityReport:
    task: str
    input: str
    mode: str
    device: str
    stage_tol: float
    output_tol: float
    stages: list[StageDiff]
    spec: dict
    floor_factor: float = DEFAULT_FLOOR_FACTOR
    draws: int = 0
    timings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    others: dict[str, list[StageDiff]] = field(default_factory=dict)  # e.g. {"onnx": ...} vs PyTorch
    sources: dict[str, str] = field(default_factory=dict)  # what each other framework ran

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and all(s.ok for diffs in self.others.values() for s in diffs)

    @property
    def failures(self) -> list[StageDiff]:
        """MindSpore stages above tolerance, then the other frameworks' (named `framework:stage`)."""
        extra = [dataclasses.replace(s, name=f"{fw}:{s.name}") for fw, diffs in self.others.items()
                 for s in diffs if not s.ok]
        return [s for s in self.stages if not s.ok] + extra

    @property
    def has_fp64(self) -> bool:
        """Whether a float64 reference ran (so the float32-floor rule could apply)."""
        return all(s.fp32_floor is not None for s in self.stages)

    @property
    def judged_alone(self) -> bool:
        """Whether every MindSpore stage was also computed alone (the stage-alone rule decides)."""
        return all(s.is_local for s in self.stages)

    def table(self) -> str:
        """The stage table(s) and a legend, as `ipt-ms parity` prints them."""
        return full_text(self)

    def summary(self) -> str:
        """One line: verdict, the output's and the worst stage's numbers beside their tolerances."""
        return summary_line(self)

    def verdict(self) -> str:
        """A paragraph a reviewer can paste into a pull request (report.md opens with it)."""
        return verdict_paragraph(self)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["verdict"] = self.verdict()
        pairs = list(zip(data["stages"], self.stages))
        for framework, diffs in self.others.items():
            pairs += list(zip(data["others"][framework], diffs))
        for stage, diff in pairs:
            stage.update(ok=diff.ok, within_tolerance=diff.within_tolerance, within_floor=diff.within_floor,
                         within_local=diff.within_local, passed_by=diff.passed_by, floor_limit=diff.floor_limit,
                         local_limit=diff.local_limit, local_ratio=diff.local_ratio)
        return data

    def to_markdown(self) -> str:
        return markdown(self)

    def write(self, directory: str | Path) -> list[Path]:
        """Write report.json, report.md and error_vs_depth.png into `directory`."""
        from ipt_ms.fileio import atomic_output, ensure_writable_dir

        directory = ensure_writable_dir(directory, "report directory")
        written = []
        for name, text in (("report.json", json.dumps(self.to_dict(), indent=2)), ("report.md", self.to_markdown())):
            with atomic_output(directory / name) as tmp:
                tmp.write_text(text + "\n")
            written.append(directory / name)
        written.append(self.plot(directory / "error_vs_depth.png"))
        return written

    def plot(self, path: str | Path) -> Path:
        """error_vs_depth.png: each pass rule's region and the verdict (see `parity.report.plot`)."""
        return plot(self, path)


def verdict_word(stage: StageDiff) -> str:
    """'pass', 'pass (tol)', 'pass (floor)' or 'FAIL' for one stage."""
    by = stage.passed_by
    if by is None:
        return "FAIL"
    return {"local": "pass", "tolerance": "pass (tol)", "floor": "pass (floor)"}[by]


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def _ratio(stage: StageDiff) -> float:
    """A stage judged alone: how many times PyTorch float32's rounding (1 = rounds like PyTorch)."""
    return stage.local_ratio or 0.0


def explain_end_to_end(stage: StageDiff, who: str = "MindSpore") -> str:
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


def explain(stage: StageDiff, who: str = "MindSpore") -> str:
    """One clause: the stage's numbers, their limits, and which rule decided."""
    if not stage.is_local:
        return explain_end_to_end(stage, who)
    relation = "<=" if stage.within_local else ">"
    text = (f"alone, {who}'s own error {_e(stage.local_err)} and channel offset {_e(stage.local_offset)} are "
            f"{_ratio(stage):.2f}x float32's ({_e(stage.local_floor)}, {_e(stage.offset_floor)}) "
            f"{relation} {stage.floor_factor:g}x")
    if stage.end_to_end:
        text += f"; end to end, {explain_end_to_end(stage, who)}"
    return text


def rule_sentence(report: ParityReport) -> str:
    if not report.has_fp64:
        return (f"Rule: every stage passes when its max rel err <= {report.stage_tol:.0e} "
                f"(<= {report.output_tol:.0e} on the output); no float64 reference was run.")
    if not report.judged_alone:
        return (f"Rule: a stage passes when its max rel err <= {report.stage_tol:.0e} per stage and "
                f"<= {report.output_tol:.0e} on the output, or when it is no further from a float64 run of "
                f"PyTorch than {report.floor_factor:g}x PyTorch float32 is.")
    return (f"Rule: every stage is computed alone by both frameworks from a float64 run's values of its inputs "
            f"(rounded to float32); it passes when MindSpore's own error there (against float64 on the same "
            f"inputs; both the max error and the largest per-channel mean error) is at most "
            f"{report.floor_factor:g}x PyTorch float32's (worst of {report.draws + 1} runs on inputs moved by up "
            f"to one ulp; at least 2^-24). The output must also "
            f"agree end to end: max rel err <= {report.output_tol:.0e}, or no further from float64 than "
            f"{report.floor_factor:g}x PyTorch float32.")


# ------------------------------------------------------------------------------ text
def summary_line(report: ParityReport) -> str:
    """What `ipt-ms parity` prints last: the verdict line, then the output and the closest
    stage, each number beside the limit that applies to it."""
    stages, out = report.stages, report.stages[-1]
    passing = sum(1 for s in stages if s.ok)
    head = (f"parity {'PASS' if report.ok else 'FAIL'}: task {report.task}, MindSpore vs PyTorch, "
            f"{passing}/{len(stages)} stages pass")
    if report.judged_alone:
        head += f" (each stage alone: own error and offset <= {report.floor_factor:g}x float32's)"
    elif report.has_fp64:
        by_floor = sum(1 for s in stages if s.passed_by == "floor")
        head += f" ({passing - by_floor} within tolerance, {by_floor} by the float32-floor rule)"
    lines = [head, f"  output: {explain(out)} (max abs err {out.max_abs_err:.2e} on the 0-{_range(report)} "
                   "pixel scale, not judged)"]
    inner = stages[:-1]
    if inner:
        if report.judged_alone:
            worst = max(inner, key=_ratio)
            lines.append(f"  closest stage {worst.name}: {explain(worst)}")
        else:
            worst = max(inner, key=lambda s: s.max_rel_err)
            lines.append(f"  worst stage {worst.name}: {explain(worst)}")
    bad = [s for s in stages if not s.ok]
    if bad:
        lines.append(f"  first failing stage {bad[0].name}: {explain(bad[0])}")
    for fw, diffs in report.others.items():
        name = framework_name(fw)
        ok = sum(1 for d in diffs if d.ok)
        lines.append(f"  {name} vs PyTorch end to end: {ok}/{len(diffs)} stage(s) compared pass"
                     + ("" if ok == len(diffs) else " (FAIL)") + f"; output {explain(diffs[-1], name)}")
    return "\n".join(lines)


def _range(report: ParityReport) -> int:
    return int(report.spec.get("rgb_range", 255))


def _columns(who: str, alone: bool) -> list[str]:
    columns = ["stage", "shape", "max rel err", "tol", f"{who} vs fp64", "fp32 vs fp64"]
    if alone:
        columns += ["own err", "fp32 err", "own offset", "fp32 offset", "ratio"]
    else:
        columns += ["floor limit"]
    return columns + ["verdict"]


def _cells(s: StageDiff, alone: bool) -> list[str]:
    cells = ["x".join(str(d) for d in s.shape), f"{s.max_rel_err:.3e}", f"{s.tolerance:.0e}", _e(s.ms_vs_fp64),
             _e(s.fp32_floor)]
    if alone:
        cells += [_e(s.local_err), _e(s.local_floor), _e(s.local_offset), _e(s.offset_floor), f"{_ratio(s):.2f}"]
    else:
        cells += [_e(s.floor_limit)]
    return cells + [verdict_word(s)]


def text_table(stages: list[StageDiff], who: str = "ms") -> str:
    alone = all(s.is_local for s in stages)
    columns = _columns(who, alone)
    rows = [[s.name] + _cells(s, alone) for s in stages]
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i in (0, 1) else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i in (0, 1, len(r) - 1) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def legend_lines(report: ParityReport) -> list[str]:
    floor = report.floor_factor
    lines = [
        "end to end (each framework's ordinary forward pass): max rel err = max|MindSpore - PyTorch float32| / "
        "max|PyTorch float32| of the stage, tol applies to it; ms vs fp64 = MindSpore vs PyTorch float64; "
        "fp32 vs fp64 = PyTorch float32 vs float64"
        + (f", worst of {report.draws + 1} runs on inputs moved by up to one ulp" if report.draws else ""),
    ]
    if report.judged_alone:
        lines += [
            "alone (each stage from the float64 run's inputs rounded to float32): own err = MindSpore vs float64 "
            "on the same inputs (max abs err / max |float64|); own offset = the largest mean error of a channel "
            "over all positions / RMS of float64; fp32 err, fp32 offset = the same for PyTorch float32, worst of "
            f"{report.draws + 1} runs on inputs moved by up to one ulp (>= 2^-24); ratio = the larger of own / fp32",
            f"verdict: pass = ratio <= {floor:g} (the output must also pass end to end: max rel err <= tol or "
            f"ms vs fp64 <= {floor:g} x fp32 vs fp64); FAIL = not",
        ]
    else:
        lines += [f"floor limit = {floor:g} x fp32 vs fp64",
                  "verdict: pass (tol) = max rel err <= tol; pass (floor) = ms vs fp64 <= floor limit; "
                  "FAIL = neither"]
    return lines


def full_text(report: ParityReport) -> str:
    sections = [text_table(report.stages, "ms")]
    for fw, diffs in report.others.items():
        sections.append(f"\n{framework_name(fw)} ({report.sources.get(fw, '')}) vs PyTorch end to end, the stages "
                        "it exposes:\n" + text_table(diffs, fw))
    return "\n".join(sections + [""] + [f"  {line}" for line in legend_lines(report)])


# ------------------------------------------------------------------------------ markdown
def verdict_paragraph(report: ParityReport) -> str:
    """One paragraph a reviewer can paste into a pull request."""
    stages, out = report.stages, report.stages[-1]
    bad = [s for s in stages if not s.ok]
    what = (f"IPT task `{report.task}`, {report.input}, MindSpore {report.mode} mode on {report.device} against the "
            f"PyTorch twin on CPU")
    if not bad:
        opening = (f"**PASS.** On {what}, all {len(stages)} stages agree. The output differs by "
                   f"{out.max_rel_err:.2e} of its range end to end (max abs {out.max_abs_err:.2e} on the "
                   f"0-{_range(report)} pixel scale; tolerance {out.tolerance:.0e} relative).")
    else:
        where = ("Each stage was computed from the same inputs, so the discrepancy is in that stage's own "
                 "computation (its weights, its key mapping or its formula)." if report.judged_alone
                 else "Stages before it agree, so the discrepancy starts there.")
        opening = (f"**FAIL.** On {what}, {len(bad)} of {len(stages)} stages disagree; the first is "
                   f"`{bad[0].name}` ({explain(bad[0])}). {where}")
    if report.judged_alone:
        worst = max(stages, key=_ratio)
        counts = (f" Computed alone, MindSpore's own error and channel offset are at most {_ratio(worst):.2f}x "
                  f"PyTorch float32's (at `{worst.name}`; limit {report.floor_factor:g}x).")
    elif report.has_fp64:
        by_floor = [s for s in stages if s.passed_by == "floor"]
        counts = (f" {sum(1 for s in stages if s.passed_by == 'tolerance')} stage(s) are within the fixed tolerance "
                  f"and {len(by_floor)} pass by the float32-floor rule.")
    else:
        counts = " No float64 reference was run, so only the fixed tolerance applies."
    others = ""
    for fw, diffs in report.others.items():
        name = framework_name(fw)
        bad_other = [d for d in diffs if not d.ok]
        others += (f" {name} ({report.sources.get(fw, '')}) was compared with PyTorch end to end on the "
                   f"{len(diffs)} stage(s) it exposes: " + ("all pass" if not bad_other else
                                                           f"{len(bad_other)} fail, first `{bad_other[0].name}`")
                   + f", output {explain(diffs[-1], name)}.")
    return opening + counts + others + " " + rule_sentence(report)


def _markdown_rows(stages: list[StageDiff], who: str) -> list[str]:
    alone = all(s.is_local for s in stages)
    columns = _columns(who, alone)
    rows = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(columns) - 3)
                                                             + ["---"]) + "|"]
    for s in stages:
        cells = _cells(s, alone)
        if cells[-1] == "FAIL":
            cells[-1] = "**FAIL**"
        rows.append("| " + " | ".join([s.name] + cells) + " |")
    return rows


def markdown(report: ParityReport) -> str:
    rows = _markdown_rows(report.stages, "ms")
    for fw, diffs in report.others.items():
        rows += ["", f"## {framework_name(fw)} ({report.sources.get(fw, '')}) vs PyTorch", "",
                 f"The stages the exported graph exposes, end to end; `{fw} vs fp64` is "
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
    """error_vs_depth.png: end to end above, each stage alone below (when run), the pass
    region shaded, failures marked, the verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ipt_ms.fileio import save_figure

    stages = report.stages
    x = np.arange(len(stages))
    position = {s.name: i for i, s in enumerate(stages)}
    tol = np.array([s.tolerance for s in stages])
    alone = report.judged_alone
    values = [s.max_rel_err for s in stages] + [s.ms_vs_fp64 for s in stages] + [s.fp32_floor for s in stages]
    for diffs in report.others.values():
        values += [d.max_rel_err for d in diffs] + [d.ms_vs_fp64 for d in diffs]
    positive = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    lowest = min(positive + list(tol)) if positive else float(tol.min())
    exact = 10 ** (np.floor(np.log10(lowest)) - 1)  # where exact zeros are drawn, labelled "0 (exact)"

    def shown(vals):
        return [np.nan if v is None else (exact if v == 0 else v) for v in vals]

    fig, axes = plt.subplots(2 if alone else 1, 1, figsize=(max(9.0, len(stages) * 0.3), 4.2 * (2 if alone else 1)
                                                             + 0.8), sharex=True, squeeze=False)
    axes = axes[:, 0]
    failed = [i for i, s in enumerate(stages) if not s.ok]

    ax = axes[0]  # end to end
    if not alone:
        ax.fill_between(x, exact / 2, tol, step="mid", color="tab:green", alpha=0.12,
                        label="pass region: max rel err <= tolerance")
    ax.step(x, tol, where="mid", color="tab:green", lw=1.2,
            label=f"tolerance ({report.stage_tol:.0e} per stage, {report.output_tol:.0e} output)"
            + (": judges the output only" if alone else ""))
    ax.semilogy(x, shown([s.max_rel_err for s in stages]), "o-", ms=3, color="tab:blue",
                label="MindSpore vs PyTorch float32")
    if report.has_fp64:
        ax.semilogy(x, shown([s.ms_vs_fp64 for s in stages]), "-", lw=1, color="tab:cyan",
                    label="MindSpore vs PyTorch float64")
        ax.semilogy(x, shown([s.fp32_floor for s in stages]), "^:", ms=3, color="tab:gray",
                    label="PyTorch float32 vs float64" + (" (worst draw)" if report.draws else ""))
    for fw, diffs in report.others.items():
        seen = [d for d in diffs if d.name in position]
        ax.semilogy([position[d.name] for d in seen], shown([d.max_rel_err for d in seen]), "s--", ms=4, alpha=0.75,
                    color="tab:purple", label=f"{framework_name(fw)} vs PyTorch float32")
    if failed and not alone:
        ax.scatter(failed, shown([stages[i].max_rel_err for i in failed]), marker="X", s=70, color="tab:red",
                   zorder=5, label="FAIL")
    ax.set_ylabel("max rel err")
    ax.set_title("End to end: each framework's ordinary forward pass"
                 + (" (inherited rounding grows with depth; judged on the output only)" if alone else ""),
                 fontsize=9, loc="left")

    if alone:
        ax2 = axes[1]
        ax2.fill_between(x, 0, report.floor_factor, step="mid", color="tab:orange", alpha=0.12,
                         label=f"pass region: <= {report.floor_factor:g}x PyTorch float32's")
        ax2.semilogy(x, [max(s.local_err / s.local_floor, 1e-3) for s in stages], "o-", ms=4, color="tab:blue",
                     label="own error / PyTorch float32's (max error)")
        ax2.semilogy(x, [max((s.local_offset or 0) / (s.offset_floor or 1), 1e-3) for s in stages], "s--", ms=3,
                     color="tab:cyan", label="own channel offset / PyTorch float32's")
        if failed:
            ax2.scatter(failed, [_ratio(stages[i]) for i in failed], marker="X", s=70, color="tab:red", zorder=5,
                        label="FAIL")
        ax2.axhline(report.floor_factor, color="tab:orange", lw=1.2)
        ax2.set_ylabel("MindSpore / PyTorch float32\n(both vs float64)")
        ax2.set_ylim(1e-3 / 2, max([report.floor_factor * 4] + [_ratio(s) * 4 for s in stages]))
        ax2.set_title("Each stage alone, from the float64 run's inputs: the verdict", fontsize=9, loc="left")

    top = max(positive + list(tol)) if positive else float(tol.max())
    for a in axes[:1]:
        a.set_yscale("log")
        a.set_ylim(exact / 2, top * 8)
        ticks = [t for t in a.get_yticks() if exact * 1.5 < t < top * 8]
        a.set_yticks([exact] + ticks, ["0 (exact)"] + [f"$10^{{{int(round(np.log10(t)))}}}$" for t in ticks])
    for a in axes:
        a.grid(True, which="major", alpha=0.3)
        a.legend(fontsize=7, loc="upper left", framealpha=0.85)
    axes[-1].set_xticks(x, [s.name for s in stages], rotation=90, fontsize=7)
    axes[-1].set_xlim(-0.6, len(stages) - 0.4)

    extra = [framework_name(fw) for fw in report.others]
    if report.ok:
        verdict = f"PASS: all {len(stages)} stages pass"
    else:
        verdict = (f"FAIL: {len(failed)} stage(s) fail, first {stages[failed[0]].name}" if failed
                   else "FAIL: ONNX Runtime stage(s) fail")
    subtitle = (f"task {report.task}, MindSpore ({report.mode}, {report.device}) vs PyTorch"
                + (f" + {', '.join(extra)}" if extra else ""))
    fig.suptitle(f"IPT parity {verdict}\n{subtitle}", fontsize=10,
                 color="tab:green" if report.ok else "tab:red", x=0.01, ha="left")
    fig.tight_layout()
    return save_figure(fig, path)
