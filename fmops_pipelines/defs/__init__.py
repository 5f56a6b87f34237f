"""The Dagster layer only: thin assets over the core modules, checks, jobs, schedules, resources."""
