"""The defs folder Dagster loads (`dg list defs`, the UI): resources, and the task-spec component."""
