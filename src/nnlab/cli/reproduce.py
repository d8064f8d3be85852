"""`nnlab-reproduce RUN_ID`: re-run a logged run from its stored config and compare.

The run's `config.yaml` artifact is the fully resolved config it trained with; it is checked
like any config, trained again into the same experiment (tag `nnlab.reproduces=<RUN_ID>`),
and every metric's whole per-epoch history is compared with the original's. On the CPU with
the same code the numbers match exactly; any difference exits 1. A different git commit
than the logged one is warned about, since code changes can change results.

The training stack is imported inside the functions that train: an unknown run id or a
tampered config is answered before it loads.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile

from omegaconf import OmegaConf

from nnlab.config.check import check_config
from nnlab.data.splits import CSV, csv_table
from nnlab.quick_exit import run_then_exit
from nnlab.tracking.store.client import get_client, git_commit, tracking_uri
from nnlab.tracking.store.names import (
    CSV_SHA256_TAG,
    GIT_COMMIT_TAG,
    MEMBER_TAG,
    POPULATION_TAG,
    REPRODUCES_TAG,
)
from nnlab.tracking.store.queries import metric_history


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="nnlab-reproduce", description="Re-run a logged run and compare its metrics."
    )
    p.add_argument("run_id")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or mlruns/)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="allowed relative difference (default 0: exact, as on the CPU)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    uri = tracking_uri(args.uri)
    client = get_client(uri)
    try:
        original = client.get_run(args.run_id)
    except Exception:
        print(f"nnlab-reproduce: run_id={args.run_id}: no such run in {uri}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(args.run_id, "config.yaml", tmp)
        except Exception:
            print(
                f"nnlab-reproduce: run {args.run_id} has no config.yaml artifact: it was not "
                "logged by nnlab-train",
                file=sys.stderr,
            )
            return 2
        cfg = OmegaConf.load(path)
    try:
        check_config(cfg)
    except Exception as err:  # ConfigError, or keys an older nnlab wrote differently
        print(
            f"nnlab-reproduce: the stored config of {args.run_id} no longer runs: {err}",
            file=sys.stderr,
        )
        return 2
    changed = changed_data_file(cfg, original.data.tags)
    if changed:
        print(f"nnlab-reproduce: {changed}", file=sys.stderr)
        return 2
    cfg.tracking.uri = args.uri  # the store we read from, not the one recorded
    cfg.tracking.skip_finished = False

    logged = original.data.tags.get(GIT_COMMIT_TAG)
    now = git_commit()
    if logged and now and logged != now:
        print(
            f"nnlab-reproduce: warning: run {args.run_id} was logged at commit {logged[:10]}, "
            f"the code is now at {now[:10]}: results may differ",
            file=sys.stderr,
        )

    overrides = list(OmegaConf.to_container(_stored_overrides(client, args.run_id)) or [])
    result = retrain(cfg, overrides, original)
    differences = compare(client, args.run_id, result.run_id, args.tolerance)
    data_differs = compare_data(original, client.get_run(result.run_id))
    return 1 if differences or data_differs else 0


def retrain(cfg, overrides: list[str], original):
    """Train the run's config again. A member of a population (nnlab.training.population) is trained
    in its population again, since in float32 a batched matmul rounds differently from a
    plain one and training amplifies the difference; only that member gets a run."""
    # lazy: torch and Lightning load once the run is found
    from nnlab.training.run import run_training

    tags = {REPRODUCES_TAG: original.info.run_id}
    population = original.data.tags.get(POPULATION_TAG)
    if population is None:
        return run_training(cfg, overrides, tags)
    # lazy: torch and Lightning load once the run is found
    from nnlab.training.population import train_population

    k, n = int(original.data.tags[MEMBER_TAG]), int(population.split()[0])
    print(f"nnlab-reproduce: member {k + 1} of a population of {n}: training all {n} again")
    group = OmegaConf.merge(cfg, {"seed": int(cfg.seed) - k, "repeats": n})
    members, failures = train_population(group, overrides, lambda _k, _seed: tags, None, [k])
    if failures:
        raise RuntimeError(failures[0])
    return members[0]


def compare_data(original, reproduced) -> bool:
    """Whether the regenerated training, validation and test data differ from the original's
    (by the content digests both runs logged); prints the verdict."""
    # lazy: torch and Lightning load once the run is found
    from nnlab.tracking.dataset_inputs import logged_digests

    before, after = logged_digests(original), logged_digests(reproduced)
    if not before:
        print("data: the original run logged no dataset digests (an older nnlab); not compared")
        return False
    differing = sorted(k for k in before if before[k] != after.get(k))
    if differing:
        print(f"data: NOT the same: {', '.join(differing)} split(s) differ from the original's")
    else:
        print(f"data: the same ({', '.join(f'{k} {v}' for k, v in sorted(before.items()))})")
    return bool(differing)


def changed_data_file(cfg, tags: dict) -> str | None:
    """Why the run's CSV file can no longer reproduce it (its content changed), or None."""
    logged = tags.get(CSV_SHA256_TAG)
    if cfg.data.name != CSV or not logged:
        return None
    # lazy: torch and Lightning load once the run is found
    from nnlab.data.csv_table import file_sha256

    now = file_sha256(csv_table(cfg.data).path)
    if now == logged:
        return None
    return (
        f"data.path={cfg.data.path}: the file changed since the run (SHA-256 {logged[:12]}... "
        f"then, {now[:12]}... now): restore the original file to reproduce it"
    )


def _stored_overrides(client, run_id):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return OmegaConf.load(client.download_artifacts(run_id, "overrides.yaml", tmp))
        except Exception:
            return OmegaConf.create([])


def compare(client, original_id: str, new_id: str, tolerance: float) -> list[str]:
    """Print every metric's final value side by side; return the keys whose histories differ."""
    old, new = client.get_run(original_id).data.metrics, client.get_run(new_id).data.metrics
    keys = sorted(set(old) | set(new))
    differing = []
    print(f"{'metric':<16} {'original':>14} {'reproduced':>14} {'rel diff':>10}  history")
    for key in keys:
        a = [v for _, v in metric_history(client, original_id, key)]
        b = [v for _, v in metric_history(client, new_id, key)]
        same = len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
        last_a = a[-1] if a else math.nan
        last_b = b[-1] if b else math.nan
        rel = abs(last_a - last_b) / max(abs(last_a), 1e-300) if a and b else math.nan
        print(
            f"{key:<16} {last_a:>14.8g} {last_b:>14.8g} {rel:>10.2e}  "
            f"{'same' if same else f'DIFFERS ({len(a)} vs {len(b)} values)'}"
        )
        if not same:
            differing.append(key)
    verdict = (
        "reproduced exactly"
        if not differing and tolerance == 0
        else (
            "reproduced within tolerance"
            if not differing
            else f"NOT reproduced: {', '.join(differing)} differ"
        )
    )
    print(f"{verdict} (original {original_id}, new {new_id})")
    return differing


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if tolerance == 0:
        return a == b
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-300)


def entry() -> None:
    run_then_exit(main)  # nnlab.quick_exit: no interpreter teardown after the command


if __name__ == "__main__":
    entry()
