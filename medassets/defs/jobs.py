"""Jobs: the stages of the pipeline, for launching from the UI, a sensor or `make run`."""

from dagster import define_asset_job

from medassets.defs import accounting, adjudication, analysis, data, evaluation, generation

prepare_data_job = define_asset_job("prepare_data", selection=[data.raw_dataset, data.split, data.prompts])
prepare_embedded_model_job = define_asset_job("prepare_embedded_model", selection=[generation.embedded_model])
observe_models_job = define_asset_job("observe_models", selection=[generation.model_weights])
# A job's assets share one partitions definition: the ensembles' rules are observed in their own.
observe_ensembles_job = define_asset_job("observe_ensembles", selection=[evaluation.ensemble_rules])
# The team instance (deploy/dagster.yaml) limits concurrent runs by this tag.
generate_job = define_asset_job("generate", selection=[generation.predictions], tags={"medassets/stage": "generate"})
evaluate_job = define_asset_job("evaluate", selection=[evaluation.parsed_labels, evaluation.metrics, accounting.reasoning_accounting])
evaluate_ensembles_job = define_asset_job("evaluate_ensembles", selection=[evaluation.ensemble_labels, evaluation.ensemble_metrics])
compare_job = define_asset_job("compare", selection=[evaluation.comparison])
analyze_errors_job = define_asset_job("analyze_errors", selection=[evaluation.error_analysis])
observe_analysis_job = define_asset_job("observe_analysis", selection=[analysis.analysis_settings])
observe_adjudications_job = define_asset_job("observe_adjudications", selection=[adjudication.adjudications])
adjudicate_job = define_asset_job("adjudicate", selection=[adjudication.adjudicated_gold])

JOBS = [
    prepare_data_job, prepare_embedded_model_job, observe_models_job, observe_ensembles_job, generate_job, evaluate_job,
    evaluate_ensembles_job, compare_job, analyze_errors_job, observe_analysis_job, observe_adjudications_job, adjudicate_job,
]

