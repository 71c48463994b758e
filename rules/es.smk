# One ES run per (env, seed) of the grid, spread over a local Dask cluster with one
# single-threaded worker per thread Snakemake gives the job. Set ESREPRO_SCHEDULER to a scheduler
# address or scheduler file to use an existing Dask cluster instead. A killed run resumes from
# its checkpoint (results/es/<env>/seed<k>/checkpoint/) when the workflow is started again.


rule es_train:
    output:
        progress=f"{RESULTS}/es/{{env}}/seed{{seed}}/progress.csv",
        run=f"{RESULTS}/es/{{env}}/seed{{seed}}/run.json",
        policy=f"{RESULTS}/es/{{env}}/seed{{seed}}/policy.npz",
    log:
        f"{RESULTS}/es/{{env}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/es_train/{{env}}_seed{{seed}}.tsv"
    conda:
        "../envs/es.yaml"
    threads: 2
    params:
        run=params_json("es"),
        out=run_dir,
    shell:
        "python -m esrepro train --env {wildcards.env} --seed {wildcards.seed} --params {params.run:q}"
        " --workers {threads} --out {params.out} 2>&1 | tee {log}"


# ES on Atari: one run per (game, frame_skip, seed) of the config's `atari` grid.
rule es_atari:
    output:
        progress=f"{RESULTS}/es/{{game}}/frameskip{{frame_skip}}/seed{{seed}}/progress.csv",
        run=f"{RESULTS}/es/{{game}}/frameskip{{frame_skip}}/seed{{seed}}/run.json",
        policy=f"{RESULTS}/es/{{game}}/frameskip{{frame_skip}}/seed{{seed}}/policy.npz",
    log:
        f"{RESULTS}/es/{{game}}/frameskip{{frame_skip}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/es_atari/{{game}}_frameskip{{frame_skip}}_seed{{seed}}.tsv"
    conda:
        "../envs/es.yaml"
    threads: 2
    params:
        run=params_json("atari"),
        env=lambda wildcards: env_id("atari", wildcards.game),
        out=run_dir,
    shell:
        "python -m esrepro train --env {params.env} --seed {wildcards.seed} --params {params.run:q}"
        " --workers {threads} --out {params.out} 2>&1 | tee {log}"
