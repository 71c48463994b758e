# Baselines: TRPO (sb3-contrib, the same 64-64 tanh MLP as ES) on the envs and seeds of the
# config's `trpo` section, once per preset (trpo.presets, or the preset of its params). torch uses the
# threads Snakemake gives the job.


rule trpo_train:
    output:
        progress=f"{RESULTS}/trpo/{{preset}}/{{env}}/seed{{seed}}/progress.csv",
        run=f"{RESULTS}/trpo/{{preset}}/{{env}}/seed{{seed}}/run.json",
        policy=f"{RESULTS}/trpo/{{preset}}/{{env}}/seed{{seed}}/policy.zip",
    log:
        f"{RESULTS}/trpo/{{preset}}/{{env}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/trpo_train/{{preset}}_{{env}}_seed{{seed}}.tsv"
    conda:
        "../envs/baselines.yaml"
    threads: 1
    params:
        run=params_json("trpo"),
        out=run_dir,
    shell:
        "python -m esrepro trpo --env {wildcards.env} --seed {wildcards.seed} --params {params.run:q}"
        " --threads {threads} --out {params.out} 2>&1 | tee {log}"


# A2C (SB3, the synchronous A3C) on the games and seeds of the config's `a2c` section.
rule a2c_train:
    output:
        progress=f"{RESULTS}/a2c/{{game}}/seed{{seed}}/progress.csv",
        run=f"{RESULTS}/a2c/{{game}}/seed{{seed}}/run.json",
    log:
        f"{RESULTS}/a2c/{{game}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/a2c_train/{{game}}_seed{{seed}}.tsv"
    conda:
        "../envs/baselines.yaml"
    threads: 1
    params:
        run=params_json("a2c"),
        env=lambda wildcards: env_id("a2c", wildcards.game),
        out=run_dir,
    shell:
        "python -m esrepro a2c --env {params.env} --seed {wildcards.seed} --params {params.run:q}"
        " --threads {threads} --out {params.out} 2>&1 | tee {log}"
