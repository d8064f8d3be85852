"""Every name nnlab writes to the store, defined once. Import-light: no MLflow here.

Three kinds of tag:
- MLflow's own vocabulary (`mlflow.*`), which its UI reads: nesting, description, source.
- nnlab's visible tags (`nnlab.*`): few, and each worth reading on a run's page.
- bookkeeping that only nnlab's code reads (process, host, hashes, timings, job numbers):
  under `mlflow.nnlab.*`, because MLflow's UI hides tags whose names start with `mlflow.`
  from the run page and the column picker, while searches still find them.
"""

# MLflow's vocabulary.
PARENT_TAG = "mlflow.parentRunId"  # MLflow nests a run under the run this tag names
DESCRIPTION_TAG = "mlflow.note.content"  # the run page's description (Markdown)
SOURCE_NAME_TAG = "mlflow.source.name"  # the UI's Source column
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# On the experiment: the chart view nnlab's printed "charts" link opens
# (nnlab.tracking.store.chart_view).
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # + a view's key (the URL's viewStateShareKey)
CHART_VIEW_KEY = "nnlab-charts"
CHART_VIEW_TAG = VIEW_TAG_PREFIX + CHART_VIEW_KEY

# Visible on a run's page.
TAG_PREFIX = "nnlab."
TASK_TAG = "nnlab.task"  # regression | binary | multiclass
LOSS_TAG = "nnlab.loss"  # the loss actually used (model.loss=auto resolved)
OBJECTIVE_TAG = "nnlab.objective"  # which metric is the run's (and a sweep's) objective
ERROR_TAG = "nnlab.error"  # why a run or sweep FAILED or was KILLED
SWEEP_TAG = "nnlab.sweep"  # "true" on a sweep's parent run
JOBS_TAG = "nnlab.jobs"  # on a parent: how many jobs, how many failed
JOBS_FAILED_TAG = "nnlab.jobs_failed"
BEST_RUN_ID_TAG = "nnlab.best_run_id"  # on a parent: the best job
BEST_RUN_NAME_TAG = "nnlab.best_run_name"
BEST_GROUP_TAG = "nnlab.best_group"  # on a parent with repeats: the best configuration by mean
REPRODUCES_TAG = "nnlab.reproduces"  # on a run made by nnlab-reproduce: the original
REPRODUCTION_TAG = "nnlab.reproduction"  # on a seed script's summary run
QUICK_TAG = "nnlab.quick"
GROUP_TAG = "nnlab.group"  # the config without its seeds (nnlab.config.seeds.group_id): every run
POPULATION_TAG = (
    "nnlab.training.population"  # on a repeat trained in a population: "N members trained together"
)
REPEATS_TAG = "nnlab.training.repeats"  # on a group's own parent run (repeats outside a sweep): N
CSV_SHA256_TAG = "nnlab.data.splits.sha256"  # the user's CSV file, as the run read it
CSV_PATH_TAG = "nnlab.data.splits.path"
CSV_ROWS_TAG = "nnlab.data.splits.rows"
CSV_COLUMNS_TAG = "nnlab.data.splits.columns"

# Bookkeeping, hidden from the UI's run page.
HIDDEN_PREFIX = "mlflow.nnlab."
PID_TAG = HIDDEN_PREFIX + "pid"  # for finding runs whose process died (--stale)
HOST_TAG = HIDDEN_PREFIX + "host"
CONFIG_HASH_TAG = HIDDEN_PREFIX + "config_hash"  # what the run computes (skip_finished)
OVERRIDES_TAG = HIDDEN_PREFIX + "overrides"  # the command line's overrides, one per line
JOB_NUM_TAG = HIDDEN_PREFIX + "job_num"  # a sweep job's number
SCHEDULER_JOB_TAG = (
    HIDDEN_PREFIX + "scheduler_job"
)  # SLURM/submitit job id (nnlab.sweeps.scheduler)
# A repeat's run name is its configuration's name, then this and its seed.
SEED_SUFFIX = " · seed "
MEMBER_TAG = HIDDEN_PREFIX + "member"  # a repeat's index in its group: 0 .. repeats-1
# On each member of a population: every member's run id, in the population's order, so that
# resume=<any member's run id> continues the whole population.
POPULATION_RUNS_TAG = HIDDEN_PREFIX + "population_runs"
SWEEPER_TAG = HIDDEN_PREFIX + "sweeper"
LAUNCHER_TAG = HIDDEN_PREFIX + "launcher"
SKIPPED_JOB_TAG = HIDDEN_PREFIX + "skipped_job."  # + job number: the run standing in for it
FIT_SECONDS_TAG = HIDDEN_PREFIX + "fit_seconds"  # timings describe the machine, not the model
OVERHEAD_SECONDS_TAG = HIDDEN_PREFIX + "overhead_seconds"

# nnlab's Optuna sweeper: the study behind a sweep (on its parent run), and a pruned trial's
# run (which ends KILLED: MLflow has no PRUNED status).
STUDY_TAG = "nnlab.optuna.study"
STUDY_STORAGE_TAG = "nnlab.optuna.storage"
TRIAL_TAG = "nnlab.optuna.trial"
PRUNED_TAG = "nnlab.pruned"
# Early stopping: why and when a run stopped, and the epoch whose weights it kept.
STOPPED_EARLY_TAG = "nnlab.stopped_early"
BEST_EPOCH_TAG = "nnlab.best_epoch"
