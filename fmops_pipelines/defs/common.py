"""Shared conventions for every task asset: key prefix, group, kinds, owners, code_version."""

from __future__ import annotations

import base64
import math

import dagster as dg
import pandas as pd

from fmops_pipelines.spec import TaskSpec

# Bump when asset logic changes, so Dagster marks materializations from older code as stale.
CODE_VERSION = "1"


def asset_kwargs(spec: TaskSpec, group: str, kinds: set[str], description: str) -> dict:
    return {"key_prefix": [spec.name], "group_name": group, "kinds": kinds, "owners": spec.owners,
            "code_version": f"{CODE_VERSION}-{spec.fingerprint()}", "description": description}


def key(spec: TaskSpec, name: str) -> dg.AssetKey:
    return dg.AssetKey([spec.name, name])


def table_md(df: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """A small DataFrame as Markdown for the asset page."""
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False, floatfmt=".3f"))


def table_value(df: pd.DataFrame) -> dg.MetadataValue:
    """A DataFrame as a typed Dagster table (sortable in the UI); NaN becomes empty."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), kinds.get(df[c].dtype.kind, "string")) for c in df.columns])
    records = [dg.TableRecord({str(k): (None if isinstance(v, float) and math.isnan(v) else
                                        v.item() if hasattr(v, "item") else v if isinstance(v, (int, float, bool))
                                        else str(v)) for k, v in row.items()})
               for row in df.to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def png_md(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline on the asset page."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def latest_metadata(context: dg.AssetExecutionContext, asset_key: dg.AssetKey) -> dict:
    """Metadata of the latest materialization of an upstream asset (e.g. its FM call counts)."""
    event = context.instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def ins(spec: TaskSpec, *names: str) -> dict[str, dg.AssetIn]:
    """Upstream assets of the same task, by name (explicit, so keys never resolve across tasks)."""
    return {name: dg.AssetIn(key=key(spec, name)) for name in names}
