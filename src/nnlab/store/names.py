"""The names nnlab writes to the store, defined once. Import-light: no MLflow here.

nnlab's own tags start with TAG_PREFIX; the `mlflow.*` ones are MLflow's vocabulary, which
its UI reads (nesting, description, source)."""

TAG_PREFIX = "nnlab."
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
DESCRIPTION_TAG = "mlflow.note.content"  # the run page's description (Markdown)
SOURCE_NAME_TAG = "mlflow.source.name"  # the UI's Source column
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
CSV_SHA256_TAG = f"{TAG_PREFIX}data.sha256"  # the user's CSV file, as the run read it
