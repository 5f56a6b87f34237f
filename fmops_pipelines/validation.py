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


def validate_dataset(df: pd.DataFrame, label_names: list[str]) -> tuple[bool, list[dict]]:
    """Run the dataset suite; returns overall success and one row per expectation."""
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("fmops")
             .add_dataframe_asset("dataset")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": df[["id", "text", "label"]].astype(object)}))
    suite = gx.ExpectationSuite(name="dataset")
    for expectation in _expectations(label_names):
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    rows = []
    for r in result.results:
        cfg = r.expectation_config
        rows.append({"expectation": cfg.type, "column": cfg.kwargs.get("column", ""), "success": bool(r.success),
                     "unexpected": int(r.result.get("unexpected_count", 0) or 0)})
    return bool(result.success), rows
