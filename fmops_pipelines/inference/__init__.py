"""Batch inference with the champion: streamed reading, tuned scoring, atomic outputs with lineage, cost
against the FM and drift against the champion's reference. Free of Dagster; the stage and the CLI call
`batch.predict_file`."""
