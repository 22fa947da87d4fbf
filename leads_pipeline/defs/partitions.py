"""The ``distributors`` dynamic partitions: one partition per row of the ``distributors`` table, by its key.

Kept in step with the table by ``distributor_partitions_sensor``. Keys are immutable slugs, never reused: Dagster
keeps a removed partition's history.
"""

import dagster as dg

distributors_partitions = dg.DynamicPartitionsDefinition(name="distributors")
