"""The declarative-automation evaluator, declared explicitly and running by default (marts refresh by themselves)."""

import dagster as dg

leads_automation_sensor = dg.AutomationConditionSensorDefinition(
    "leads_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the marts' automation conditions: refresh when leads change and every 15 minutes.",
)
