"""Datasets: registry (pinned URL + sha256), readers, splits. No Dagster here."""
