"""Benchmark evaluation: protocols, metrics and reports for `ipt-ms eval` and `ipt-ms parity-bench`.

* `ipt_ms.eval.sets`     locate benchmark sets and check every file before any work;
* `ipt_ms.eval.engine`   runners (one framework + weights + task), the resumable per-image loop;
* `ipt_ms.eval.report`   paper-style tables, Markdown/CSV/JSON files, image strips;
* `ipt_ms.eval.parity_bench`  the same evaluation in two frameworks, compared per image;
* `ipt_ms.eval.run`      one function per command (`run_eval`, `run_parity_bench`);
* `ipt_ms.eval.reference`     published IPT numbers, shown as a reference row.

Metrics live in `ipt_ms.metrics`, tiling protocols in `ipt_ms.tiling`.
"""
