"""MLflow: the store, the logger that writes each member's run, descriptions."""
