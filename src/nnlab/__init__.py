"""nnlab: small neural networks, composed by Hydra, trained by Lightning, tracked in MLflow."""

from nnlab.env import apply_telemetry_default

# Before any nnlab module imports MLflow: `import mlflow` starts its telemetry client.
apply_telemetry_default()
