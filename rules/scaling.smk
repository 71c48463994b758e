# The scaling experiment (paper section 4.3, Figure 1): the same ES run (one seed per repeat) with
# each number of single-threaded Dask workers, timed to the target score. A run's learning is the
# same at every worker count (determinism contract); only its wall-clock time differs.
#
# Where a run's workers are follows the scaling section's `cluster` key (docs/cluster.md, "The
# scaling grid on Slurm"):
# - absent: a local cluster of as many workers as the count; the job takes every core Snakemake
#   has, so no other job shares the machine while it is timed (the 1-worker run leaves cores idle:
#   its time is the experiment, as on the paper's dedicated cores);
# - a cluster file of kind slurm or pbs: a template; every run submits batch jobs of exactly its
#   worker count (`train --cluster-workers N`: N / cores jobs, or one job of N cores below cores),
#   the job itself (ES master and Dask scheduler) takes one core;
# - kind slurm-runner: every run is one job of N + 2 tasks (`srun -n N+2`: scheduler, ES master, N
#   workers), asked of Snakemake's slurm executor with the resources mpi and tasks.


include: "scaling_cluster.smk"


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
    threads: scaling_threads
    resources:
        **SCALING_RESOURCES,
    params:
        run=params_json("scaling"),
        out=run_dir,
        launch=scaling_command,
        workers=scaling_workers,
    shell:
        "{params.launch}python -m esrepro train --env {wildcards.env} --seed {wildcards.seed} --params {params.run:q}"
        " {params.workers} --out {params.out} 2>&1 | tee {log}"
