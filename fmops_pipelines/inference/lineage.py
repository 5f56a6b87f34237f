"""Per-row lineage: which model, label model and labelers produced a prediction, in which partition and run.

The labelers fingerprint hashes what taught the model (the selected prompts with their verbalizers and
calibration, the labeling-function rules, the FM), so two predictions with the same fingerprint came
from the same weak supervision; the registered model version lists the prompt ids behind it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

    from fmops_pipelines.spec import TaskSpec

PREFIX = "fmops_"


def gold_fingerprint(splits: pd.DataFrame) -> str:
    """'<count>:<hash>' of the gold rows a model learned from and was chosen on (ids and labels, order-free): a
    relabelled or added gold row is a different model's lineage."""
    gold = splits.loc[splits["split"] == "dev", ["id", "label"]].astype(str).sort_values("id")
    digest = hashlib.sha256("\n".join(gold["id"] + "\t" + gold["label"]).encode()).hexdigest()[:16]
    return f"{len(gold)}:{digest}"


def labelers_fingerprint(prompt_scores: pd.DataFrame, spec: TaskSpec, splits: pd.DataFrame | None = None) -> str:
    """Hash of the selected prompts, the task.yaml rules, the task folder's Python labeling functions, the FM,
    when on, the settings the FM-mined rules come from (their phrases follow from those, the prompts and the data)
    and, given the splits, the gold labels (gold_fingerprint)."""
    prompts = prompt_scores.loc[prompt_scores["selected"], ["prompt_id", "template", "verbalizers", "temperature",
                                                            "threshold"]]
    payload = {"prompts": json.loads(prompts.to_json(orient="records")),
               "rules": [lf.model_dump() for lf in spec.labeling_functions],
               "python": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(spec.root.glob("*.py"))},
               "fm": spec.fm.model_dump(),
               **({"fm_rules": spec.fm_rules.model_dump()} if spec.fm_rules.enabled else {}),
               **({"gold": gold_fingerprint(splits)} if splits is not None else {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lineage:
    model: str
    model_version: str
    label_model: str
    labelers_fingerprint: str
    partition: str
    run_id: str

    def columns(self, n: int) -> dict[str, pa.Array]:
        """Constant columns for n rows, dictionary-encoded: one copy of each value whatever n."""
        zeros = pa.array(np.zeros(n, dtype=np.int32))
        return {f"{PREFIX}{name}": pa.DictionaryArray.from_arrays(zeros, pa.array([value], pa.string()))
                for name, value in asdict(self).items()}

    def footer(self) -> dict[str, str]:
        return {f"fmops.{name}": value for name, value in asdict(self).items()}
