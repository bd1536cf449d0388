"""medassets' definitions with each run's steps executed in the run's own process (Dagster's
`in_process_executor`), for the daemon test: there automation starts about fifty runs of
two or three steps, and a process per step (the default, as the UI runs them, tested in
the PHI canary and the browser test) would start three times as many Python processes on
2 cores. Which runs are requested, and what they materialize, is the same either way.
(No test_ prefix: pytest does not collect it.)"""

from dagster import Definitions, in_process_executor

from medassets.definitions import defs as medassets_defs

defs = Definitions.merge(medassets_defs, Definitions(executor=in_process_executor))
