# esrepro: regenerate the tables and figures of Salimans et al. 2017 (arXiv:1703.03864).
#   snakemake --cores all                                 # the default, laptop-sized grid
#   snakemake --cores all --configfile config/paper.yaml  # another grid (replaces the default)
from snakemake.utils import min_version

min_version("9.0")

if not workflow.overwrite_configfiles:
    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/es.smk"
include: "rules/baselines.smk"
include: "rules/scaling.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        all_targets(),
