"""The values nnlab accepts that more than one module needs: precisions, optimizers and their
kernels, and the limits of seeds, repeats and names. One home for each, so the checks
(nnlab.config.rules), the engine and the run's description read the same table."""

from __future__ import annotations

PRECISIONS = (32, 64)
PROGRESS_MODES = ("auto", "bar", "lines", "none")
OPTIMIZER_KERNELS = ("fused", "foreach")
# Every optimizer nnlab trains with: `optimizer._target_` -> its short name. The first seven
# have a file in conf/optimizer/; the others are set with optimizer._target_=torch.optim.<Name>.
OPTIMIZERS = {
    "torch.optim.SGD": "sgd",
    "torch.optim.Adam": "adam",
    "torch.optim.AdamW": "adamw",
    "torch.optim.RMSprop": "rmsprop",
    "torch.optim.Adagrad": "adagrad",
    "torch.optim.Adadelta": "adadelta",
    "torch.optim.ASGD": "asgd",
    "torch.optim.Adamax": "adamax",
    "torch.optim.NAdam": "nadam",
    "torch.optim.RAdam": "radam",
    "torch.optim.Adafactor": "adafactor",
}
# Those whose step acts on each element of a parameter alone (with scalars shared by every
# element: lr, betas, the step count), so that on stacked members (nnlab.training.engine) they
# are N independent optimizers; each is tested against plain runs
# (tests/training/test_population.py). Any other steps each member of a population alone, over
# its own layer shapes (nnlab.training.member_optimizer).
ELEMENTWISE_OPTIMIZERS = tuple(list(OPTIMIZERS)[:7])
# Those torch gives a fused step (one kernel for every tensor; trainer.optimizer_kernel).
FUSED_OPTIMIZERS = (
    "torch.optim.SGD",
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.Adagrad",
)


INT64_MAX = 2**63 - 1
MAX_REPEATS = 1000
SEED_MAX = 2**32 - 1  # NumPy's legacy seeding and Lightning's seed_everything take 0..2**32-1
MAX_EXPERIMENT_NAME = 500  # MLflow's limit
MAX_RUN_NAME = 250
