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
        runs=run_dirs,
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
        runs=run_dirs,
    shell:
        "{ESREPRO} curves --runs {params.runs} --out {output}"


rule mujoco_tables:
    input:
        progress=compared_runs("progress.csv"),
        run=compared_runs("run.json"),
        paper_table1=REFERENCE / "table1_mujoco_ratios.csv",
        paper_table3=REFERENCE / "table3_mujoco_detail.csv",
    output:
        [
            report(f"paper/tables/{table}.{ext}", category="ES vs TRPO", labels={"type": table, "format": ext})
            for table in ("table1", "table3")
            for ext in ("csv", "md", "tex")
        ],
    params:
        runs=run_dirs,
    shell:
        "{ESREPRO} tables --runs {params.runs} --paper-table1 {input.paper_table1}"
        " --paper-table3 {input.paper_table3} --table1 paper/tables/table1 --table3 paper/tables/table3"


rule es_vs_trpo_curves:
    input:
        progress=compared_runs("progress.csv"),
        run=compared_runs("run.json"),
    output:
        [
            report(
                f"paper/figures/es_vs_trpo.{ext}",
                caption="../report/es_vs_trpo.rst",
                category="ES vs TRPO",
                labels={"type": "figure", "format": ext},
            )
            for ext in ("png", "pdf")
        ],
    params:
        runs=run_dirs,
    shell:
        "{ESREPRO} curves --runs {params.runs} --out {output}"


rule atari_table:
    input:
        progress=atari_runs("progress.csv", frame_skips=[4]) + a2c_runs("progress.csv"),
        run=atari_runs("run.json", frame_skips=[4]) + a2c_runs("run.json"),
        es_a3c=REFERENCE / "atari_es_vs_a3c.csv",
        a2c=REFERENCE / "atari_hyperneat_a2c.csv",
    output:
        [
            report(f"paper/tables/atari.{ext}", caption="../report/atari_table.rst", category="ES on Atari",
                   labels={"type": "table 2", "format": ext})
            for ext in ("csv", "md", "tex")
        ],
    params:
        runs=run_dirs,
    shell:
        "{ESREPRO} atari-table --runs {params.runs} --reference-es-a3c {input.es_a3c}"
        " --reference-a2c {input.a2c} --out paper/tables/atari"


rule fig2_frameskip:
    input:
        progress=atari_runs("progress.csv", games=FRAMESKIP and FRAMESKIP["games"]),
        run=atari_runs("run.json", games=FRAMESKIP and FRAMESKIP["games"]),
    output:
        [
            report(f"paper/figures/fig2_frameskip.{ext}", caption="../report/fig2_frameskip.rst",
                   category="ES on Atari", labels={"type": "figure 2", "format": ext})
            for ext in ("png", "pdf")
        ],
    params:
        runs=run_dirs,
        game=FRAMESKIP and FRAMESKIP["games"][0],
    shell:
        "{ESREPRO} frameskip-figure --runs {params.runs} --game {params.game} --out {output}"


rule fig1_scaling:
    input:
        progress=scaling_runs("progress.csv") if SCALING else [],
        run=scaling_runs("run.json") if SCALING else [],
        reference=REFERENCE / "scaling_humanoid.csv",
    output:
        table=[
            report(f"paper/tables/scaling.{ext}", caption="../report/scaling_table.rst", category="Scaling",
                   labels={"type": "table", "format": ext})
            for ext in ("csv", "md")
        ],
        figure=[
            report(f"paper/figures/fig1_scaling.{ext}", caption="../report/fig1_scaling.rst", category="Scaling",
                   labels={"type": "figure 1", "format": ext})
            for ext in ("png", "pdf")
        ],
    params:
        runs=run_dirs,
    shell:
        "{ESREPRO} scaling --runs {params.runs} --reference {input.reference} --table paper/tables/scaling"
        " --figure {output.figure}"
