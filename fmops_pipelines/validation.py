"""Great Expectations suites (GX 1.x, called directly: dagster-ge needs GX < 1).

Importing GX costs seconds, so it happens inside the functions, never at module import.
"""

from __future__ import annotations

import pandas as pd


def _expectations(label_names: list[str]):
    import great_expectations as gx

    E = gx.expectations
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToNotBeNull(column="id"),
        E.ExpectColumnValuesToBeUnique(column="id"),
        E.ExpectColumnValuesToNotBeNull(column="text"),
        E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=label_names),  # nulls (unlabelled) pass
    ]


def _run(name: str, df: pd.DataFrame, expectations: list) -> tuple[bool, list[dict]]:
    """Validate a DataFrame against expectations in an ephemeral GX context; one row per expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("fmops")
             .add_dataframe_asset(name)
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": df}))
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    rows = []
    for r in result.results:
        cfg = r.expectation_config
        rows.append({"expectation": cfg.type, "column": cfg.kwargs.get("column", ""), "success": bool(r.success),
                     "unexpected": int(r.result.get("unexpected_count", 0) or 0),
                     "observed": str(r.result.get("observed_value", ""))})
    return bool(result.success), rows


def validate_dataset(df: pd.DataFrame, label_names: list[str]) -> tuple[bool, list[dict]]:
    """Unique non-null ids, non-empty text, labels in the declared set."""
    return _run("dataset", df[["id", "text", "label"]].astype(object), _expectations(label_names))


def validate_label_matrix(matrix: pd.DataFrame, labelers: list[str], k: int, min_coverage: float
                          ) -> tuple[bool, list[dict]]:
    """Every vote is -1 (abstain) or a label index; train coverage at least the spec's minimum."""
    import great_expectations as gx

    E = gx.expectations
    train = matrix[matrix["split"] == "train"]
    frame = train[labelers].copy()
    frame["covered"] = (train[labelers] != -1).any(axis=1).astype(float)
    checks = [E.ExpectColumnValuesToBeInSet(column=c, value_set=list(range(-1, k))) for c in labelers]
    checks.append(E.ExpectColumnMeanToBeBetween(column="covered", min_value=min_coverage, max_value=1.0))
    return _run("weak_label_matrix", frame, checks)


def validate_training_labels(df: pd.DataFrame, prob_columns: list[str]) -> tuple[bool, list[dict]]:
    """Probabilities in [0, 1] that sum to 1 on every row."""
    import great_expectations as gx

    E = gx.expectations
    frame = df[prob_columns].astype(float).copy()
    frame["row_sum"] = frame.sum(axis=1)
    checks = [E.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=1.0) for c in prob_columns]
    checks.append(E.ExpectColumnValuesToBeBetween(column="row_sum", min_value=1 - 1e-4, max_value=1 + 1e-4))
    return _run("training_labels", frame, checks)
