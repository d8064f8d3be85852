"""The MLflow Model a run logs, as other programs call it (MLflow "models from code": MLflow
saves this file and runs it on load; nothing is unpickled). Self-contained on purpose: a
server that loads the model needs MLflow, torch and pandas, not nnlab.

Input: a table with the feature columns by name (the CSV's names, or x1...xn), numbers as
numbers, a one-hot encoded text column as its text. Output, by the `output` param:
- `label` (default): the class label (the CSV's own text, or the class index), or the
  prediction in the target's units for regression;
- `probabilities`: one column per class, named by its label;
- `raw`: the network's outputs (logits for classification).

    model = mlflow.pyfunc.load_model(uri)
    model.predict(pd.DataFrame({"x1": [0.5], "x2": [-0.2]}), params={"output": "probabilities"})
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

MISSING_CATEGORY = "(missing)"  # as nnlab.data.csv_features encodes a missing text cell
OUTPUTS = ("label", "probabilities", "raw")


class NnlabModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.program = torch.export.load(context.artifacts["program"]).module()
        self.schema = json.loads(Path(context.artifacts["schema"]).read_text())
        self.dtype = torch.float64 if self.schema["dtype"] == "float64" else torch.float32

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        output = (params or {}).get("output", "label")
        if output not in OUTPUTS:
            raise ValueError(f"params.output={output}: allowed: {', '.join(OUTPUTS)}")
        x = inputs(model_input, self.schema)
        with torch.no_grad():
            raw = self.program(torch.as_tensor(x, dtype=self.dtype)).double().numpy()
        classes, target = self.schema["classes"], self.schema["target"]
        if output == "raw":
            return raw
        if not classes:  # regression: the target is not scaled, outputs are in its units
            return pd.DataFrame({target: raw[:, 0]})
        if raw.shape[1] == 1:  # binary: one logit for the second class
            second = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            probabilities = np.stack([1.0 - second, second], axis=1)
        else:
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        if output == "probabilities":
            return pd.DataFrame(probabilities, columns=classes)
        return pd.DataFrame({target: np.asarray(classes, dtype=object)[probabilities.argmax(1)]})


def inputs(model_input, schema: dict) -> np.ndarray:
    """The named columns as the network's inputs, in training order: numbers as they are,
    text columns one-hot over their training categories."""
    columns, categories = schema["columns"], schema["categories"]
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(np.asarray(model_input), columns=columns)
    missing = [c for c in columns if c not in model_input.columns]
    if missing:
        raise ValueError(f"missing input column(s) {', '.join(missing)}; expected {columns}")
    blocks = []
    for name in columns:
        column = model_input[name]
        if name not in categories:
            blocks.append(column.to_numpy(dtype=np.float64).reshape(-1, 1))
            continue
        text = column.astype(object).where(column.notna(), MISSING_CATEGORY).to_numpy()
        blocks.append(np.stack([text == c for c in categories[name]], axis=1).astype(np.float64))
    return np.concatenate(blocks, axis=1)


mlflow.models.set_model(NnlabModel())
