# Aggregation: read only progress.csv and run.json of the runs, write paper/tables and
# paper/figures.


rule es_mujoco_summary:
    input:
        progress=es_runs("progress.csv"),
        run=es_runs("run.json"),
        reference=REFERENCE / "table3_mujoco_detail.csv",
    output:
        csv=report("paper/tables/es_mujoco_summary.csv", category="ES on MuJoCo", labels={"type": "table", "format": "csv"}),
        md=report("paper/tables/es_mujoco_summary.md", category="ES on MuJoCo", labels={"type": "table", "format": "markdown"}),
    params:
        runs=lambda wildcards, input: sorted({str(Path(p).parent) for p in input.run}),
    shell:
        "{ESREPRO} summary --runs {params.runs} --reference {input.reference}"
        " --csv {output.csv} --md {output.md}"


rule es_mujoco_curves:
    input:
        progress=es_runs("progress.csv"),
        run=es_runs("run.json"),
    output:
        report(
            "paper/figures/es_mujoco_curves.png",
            caption="../report/es_mujoco_curves.rst",
            category="ES on MuJoCo",
            labels={"type": "figure"},
        ),
    params:
        runs=lambda wildcards, input: sorted({str(Path(p).parent) for p in input.run}),
    shell:
        "{ESREPRO} curves --runs {params.runs} --out {output}"
