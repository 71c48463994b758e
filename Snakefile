# esrepro: regenerate the tables and figures of Salimans et al. 2017 (arXiv:1703.03864).
#   snakemake --cores all                                 # the default, laptop-sized grid
#   snakemake --cores all --configfile config/paper.yaml  # another grid (replaces the default)
#   snakemake --cores all --sdm conda                     # each rule in its environment of envs/
from snakemake.utils import min_version

min_version("9.0")

if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/es.smk"
include: "rules/baselines.smk"
include: "rules/scaling.smk"
include: "rules/aggregate.smk"


# Every table and figure the grid's sections call for, the claims report and a clip of each ES policy.
rule all:
    default_target: True
    input:
        rules.es_mujoco_summary.output if ES_ENVS else [],
        rules.es_mujoco_curves.output if ES_ENVS else [],
        rules.mujoco_tables.output if COMPARED_ENVS else [],
        rules.es_vs_trpo_curves.output if COMPARED_ENVS else [],
        rules.atari_table.output if ATARI_RUNS else [],
        rules.fig2_frameskip.output if FRAMESKIP_GAMES else [],
        rules.fig1_scaling.output if SCALING else [],
        rules.claims.output if ES_ENVS or ATARI_RUNS or SCALING else [],
        clips(),
