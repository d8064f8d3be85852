"""nnlab: small neural networks, composed by Hydra, trained by Lightning, tracked in MLflow."""
