# lorabench: every adapter method on every task family, evaluated with lm-eval, rolled into
# tables, plots and a report. `snakemake --cores all` runs the tiny profile (config/config.yaml);
# `--configfile config/paper/<paper>.yaml` runs a paper's setting. Stages, left to right:
#   data -> base_model -> train -> evaluate -> aggregate -> report     (workflow/rules/*.smk)
from snakemake.utils import min_version, validate

from workflow.profile import resolve_profile

min_version("9.0")

# Profiles stand on their own: config/config.yaml (tiny) only when no --configfile is given; a
# profile building on another names it with `extends:` (workflow/profile.py).
resolve_profile(config, workflow.overwrite_configfiles)
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
