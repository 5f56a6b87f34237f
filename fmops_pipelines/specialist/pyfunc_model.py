"""MLflow models-from-code definition of the specialist pyfunc (logged as this file, not a pickle).

Input: a DataFrame with a `text` column. Output: `label` plus one `p_<label>` column per class.
"""

from pathlib import Path

import mlflow
import pandas as pd


class SpecialistPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import torch

        from fmops_pipelines.specialist.loading import load_student

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_student(Path(context.artifacts["specialist"]), device=device)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from fmops_pipelines.specialist.packaging import predict_frame

        return predict_frame(self.model, model_input["text"].astype(str).tolist())


mlflow.models.set_model(SpecialistPyfunc())
