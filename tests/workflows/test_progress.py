"""Snakemake's output becomes a progress bar with the important lines in a terminal, and stays plain elsewhere."""

from __future__ import annotations

import io

from serialoct.workflows.progress import follow

SNAKEMAKE = """Building DAG of jobs...
Select jobs to execute...
Execute 1 jobs...
[Wed Dec  2 02:17:11 2026]
Finished jobid: 54 (Rule: auto_exclude_slices)
57 of 60 steps (95%) done
Error in rule stack:
    jobid: 49
Finished jobid: 49 (Rule: stack)
60 of 60 steps (100%) done
Complete log(s): /out/.snakemake/log/x.snakemake.log
""".splitlines(keepends=True)


def test_elsewhere_every_line_passes_through():
    out = io.StringIO()
    follow(SNAKEMAKE, out, bar=False)
    assert out.getvalue() == "".join(SNAKEMAKE)


def test_in_a_terminal_a_bar_counts_the_jobs_and_only_what_matters_is_printed():
    out = io.StringIO()
    follow(SNAKEMAKE, out, bar=True)
    text = out.getvalue()
    assert "60/60" in text and "Error in rule stack:" in text and "Complete log(s)" in text
    assert "Select jobs to execute" not in text and "Execute 1 jobs" not in text
