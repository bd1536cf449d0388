"""The automation condition of the generation and evaluation assets."""

from dagster import AssetSelection, AutomationCondition


def reevaluate_when_changed(
    not_updates: AssetSelection | None = None, may_be_missing: AssetSelection | None = None
) -> AutomationCondition:
    """Like eager: run when an upstream asset was updated (a new model revision observed,
    new prompts, new predictions) or the asset's own code version changed, once nothing
    upstream is missing or in progress. Unlike eager, partitions never materialized are
    not filled in: a new model is started by the registry sensor, a new ensemble by the
    observation of its rules (once its members' labels exist).

    `not_updates`: deps whose updates don't count; `may_be_missing`: deps that may be missing.
    """
    updated = AutomationCondition.any_deps_updated()
    missing = AutomationCondition.any_deps_missing()
    if not_updates is not None:
        updated = updated.ignore(not_updates)
    if may_be_missing is not None:
        missing = missing.ignore(may_be_missing)
    trigger = updated | AutomationCondition.code_version_changed()
    return (
        trigger.since_last_handled()
        & ~missing
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("re-evaluate when an input or the code changes")
