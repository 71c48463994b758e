# Aggregation: read only progress.csv and run.json of the runs, write this grid's tables and
# figures under PAPER/tables and PAPER/figures (paper_dir in the config).


rule es_mujoco_summary:
    input:
        progress=es_runs("progress.csv"),
        run=es_runs("run.json"),
        reference=REFERENCE / "table3_mujoco_detail.csv",
    output:
        table=paper_files(
            "tables",
            "es_mujoco_summary",
            ["csv", "md"],
            "ES on MuJoCo",
            "../report/es_mujoco_summary.rst",
            type="table",
        ),
    log:
        f"{LOGS}/es_mujoco_summary.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
    shell:
        "python -m esrepro summary --runs {params.runs} --reference {input.reference} --out {output.table}"
        " > {log} 2>&1"


rule es_mujoco_curves:
    input:
        progress=es_runs("progress.csv"),
        run=es_runs("run.json"),
    output:
        figure=paper_files(
            "figures", "es_mujoco_curves", ["png"], "ES on MuJoCo", "../report/es_mujoco_curves.rst", type="figure"
        ),
    log:
        f"{LOGS}/es_mujoco_curves.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
    shell:
        "python -m esrepro curves --runs {params.runs} --out {output.figure} > {log} 2>&1"


rule mujoco_tables:
    input:
        progress=es_runs("progress.csv", COMPARED_ENVS) + trpo_runs("progress.csv", COMPARED_ENVS),
        run=es_runs("run.json", COMPARED_ENVS) + trpo_runs("run.json", COMPARED_ENVS),
        paper_table1=REFERENCE / "table1_mujoco_ratios.csv",
        paper_table3=REFERENCE / "table3_mujoco_detail.csv",
    output:
        table1=paper_files(
            "tables", "table1", ["csv", "md", "tex"], "ES vs TRPO", "../report/mujoco_tables.rst", type="table 1"
        ),
        table3=paper_files(
            "tables", "table3", ["csv", "md", "tex"], "ES vs TRPO", "../report/mujoco_tables.rst", type="table 3"
        ),
    log:
        f"{LOGS}/mujoco_tables.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
        presets=TRPO_PRESETS,
    shell:
        "python -m esrepro tables --runs {params.runs} --paper-table1 {input.paper_table1}"
        " --paper-table3 {input.paper_table3} --table1 {output.table1} --table3 {output.table3} > {log} 2>&1"


rule es_vs_trpo_curves:
    input:
        progress=rules.mujoco_tables.input.progress,
        run=rules.mujoco_tables.input.run,
    output:
        figure=paper_files(
            "figures", "es_vs_trpo", ["png", "pdf"], "ES vs TRPO", "../report/es_vs_trpo.rst", type="figure"
        ),
    log:
        f"{LOGS}/es_vs_trpo_curves.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
        presets=TRPO_PRESETS,
    shell:
        "python -m esrepro curves --runs {params.runs} --out {output.figure} > {log} 2>&1"


rule atari_table:
    input:
        progress=atari_runs("progress.csv", frame_skips=[4]) + a2c_runs("progress.csv"),
        run=atari_runs("run.json", frame_skips=[4]) + a2c_runs("run.json"),
        es_a3c=REFERENCE / "atari_es_vs_a3c.csv",
        a2c=REFERENCE / "atari_hyperneat_a2c.csv",
    output:
        table=paper_files(
            "tables", "atari", ["csv", "md", "tex"], "ES on Atari", "../report/atari_table.rst", type="table 2"
        ),
    log:
        f"{LOGS}/atari_table.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
    shell:
        "python -m esrepro atari-table --runs {params.runs} --reference-es-a3c {input.es_a3c}"
        " --reference-a2c {input.a2c} --out {output.table} > {log} 2>&1"


rule fig2_frameskip:
    input:
        progress=atari_runs("progress.csv", games=FRAMESKIP_GAMES),
        run=atari_runs("run.json", games=FRAMESKIP_GAMES),
    output:
        figure=paper_files(
            "figures", "fig2_frameskip", ["png", "pdf"], "ES on Atari", "../report/fig2_frameskip.rst", type="figure 2"
        ),
    log:
        f"{LOGS}/fig2_frameskip.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
        game=FRAMESKIP_GAMES[:1],
    shell:
        "python -m esrepro frameskip-figure --runs {params.runs} --game {params.game} --out {output.figure} > {log} 2>&1"


rule fig1_scaling:
    input:
        progress=scaling_runs("progress.csv"),
        run=scaling_runs("run.json"),
        reference=REFERENCE / "scaling_humanoid.csv",
        simulation=[SCALE_SIMULATION] if SCALE_SIMULATION.is_file() else [],
    output:
        table=paper_files("tables", "scaling", ["csv", "md"], "Scaling", "../report/scaling_table.rst", type="table"),
        figure=paper_files(
            "figures", "fig1_scaling", ["png", "pdf"], "Scaling", "../report/fig1_scaling.rst", type="figure 1"
        ),
    log:
        f"{LOGS}/fig1_scaling.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
        simulation=lambda wildcards, input: f"--simulation {input.simulation}" if input.simulation else "",
    shell:
        "python -m esrepro scaling --runs {params.runs} --reference {input.reference} {params.simulation}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


# The claims report: a learning line per ES env and game, then each claim of the paper, this grid's
# number and budget and a verdict, from the runs and the tables above.
rule claims:
    input:
        run=es_runs("run.json") + trpo_runs("run.json") + atari_runs("run.json") + scaling_runs("run.json"),
        progress=es_runs("progress.csv") + atari_runs("progress.csv"),
        table1=rules.mujoco_tables.output.table1[0] if COMPARED_ENVS else [],
        table3=rules.mujoco_tables.output.table3[0] if COMPARED_ENVS else [],
        atari=rules.atari_table.output.table[0] if ATARI_RUNS else [],
        scaling=rules.fig1_scaling.output.table[0] if SCALING else [],
    output:
        claims=[
            report(f"{PAPER}/claims.{ext}", caption="../report/claims.rst", category="Claims", labels={"format": ext})
            for ext in ("md", "csv")
        ],
    log:
        f"{LOGS}/claims.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        runs=run_dirs,
        tables=claims_tables,
        presets=TRPO_PRESETS,
    shell:
        "python -m esrepro claims --runs {params.runs} {params.tables} --out {output.claims} > {log} 2>&1"


# One clip of the final policy of the first seed of every ES env (MuJoCo) and game (Atari, frame-skip
# 4), `clip_frames` frames; MuJoCo renders headless through EGL.
rule clip_mujoco:
    input:
        run=f"{RESULTS}/es/{{env}}/seed{ES_SEEDS[0] if ES_SEEDS else 0}/run.json",
        policy=f"{RESULTS}/es/{{env}}/seed{ES_SEEDS[0] if ES_SEEDS else 0}/policy.npz",
    output:
        clip=report(
            f"{PAPER}/clips/mujoco/{{env}}.gif",
            caption="../report/clip.rst",
            category="Policies",
            labels={"env": "{env}"},
        ),
    log:
        f"{LOGS}/clip_mujoco/{{env}}.log",
    conda:
        "../envs/es.yaml"
    params:
        run=lambda wildcards, input: str(Path(input.run).parent),
        frames=config["clip_frames"],
    shell:
        "python -m esrepro play {params.run} --out {output.clip} --frames {params.frames} > {log} 2>&1"


rule clip_atari:
    input:
        run=f"{RESULTS}/es/{{game}}/frameskip4/seed{ATARI_SEEDS[0] if ATARI_SEEDS else 0}/run.json",
        policy=f"{RESULTS}/es/{{game}}/frameskip4/seed{ATARI_SEEDS[0] if ATARI_SEEDS else 0}/policy.npz",
    output:
        clip=report(
            f"{PAPER}/clips/atari/{{game}}.gif",
            caption="../report/clip.rst",
            category="Policies",
            labels={"env": "{game}"},
        ),
    log:
        f"{LOGS}/clip_atari/{{game}}.log",
    conda:
        "../envs/es.yaml"
    params:
        run=lambda wildcards, input: str(Path(input.run).parent),
        frames=config["clip_frames"],
    shell:
        "python -m esrepro play {params.run} --out {output.clip} --frames {params.frames} > {log} 2>&1"
