# The scaling experiment (paper section 4.3, Figure 1): the same ES run (one seed per repeat) with
# each number of single-threaded Dask workers, timed to the target score. A run's learning is the
# same at every worker count (determinism contract); only its wall-clock time differs. Each job
# takes as many threads as it has workers, so Snakemake never gives it fewer cores than workers;
# other jobs may still share the machine (run `snakemake fig1_scaling` alone for clean timings).


rule scaling_run:
    output:
        progress=f"{RESULTS}/scaling/{{env}}/workers{{workers}}/seed{{seed}}/progress.csv",
        run=f"{RESULTS}/scaling/{{env}}/workers{{workers}}/seed{{seed}}/run.json",
    log:
        f"{RESULTS}/scaling/{{env}}/workers{{workers}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/scaling_run/{{env}}_workers{{workers}}_seed{{seed}}.tsv"
    conda:
        "../envs/es.yaml"
    threads: lambda wildcards: int(wildcards.workers)
    params:
        run=params_json("scaling"),
        out=run_dir,
    shell:
        "python -m esrepro train --env {wildcards.env} --seed {wildcards.seed} --params {params.run:q}"
        " --workers {wildcards.workers} --out {params.out} 2>&1 | tee {log}"
