"""Evaluation on the held-out test split: metrics, gates, and the summary JSON contract."""
