"""Everything about the MLflow store. `names` holds every tag nnlab writes, once (no MLflow
import, so the light entry points can use it)."""
