"""`nnlab-report`: the store as a table, without loading torch.

nnlab-report                               # the latest sweep's jobs
nnlab-report --sweep RUN_ID                # one sweep
nnlab-report --runs -e nnlab --sort val/loss --filter model.activation=relu
nnlab-report --csv out.csv --plots out/    # the same table as CSV, the sweep's figures
nnlab-report --group                       # runs grouped by configuration over seeds
nnlab-report --runs --compare GROUP_A GROUP_B   # is A really better than B?

Each command's imports wait inside its function: `--stale` needs neither the report tables
nor matplotlib, and answers in about a second.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
from pathlib import Path

from nnlab.quick_exit import run_then_exit
from nnlab.tracking.store.client import get_client, local_store_file, tracking_uri
from nnlab.tracking.store.names import HOST_TAG, PID_TAG, REPEATS_TAG, SWEEP_TAG, SWEEPER_TAG
from nnlab.tracking.store.runs import close_run, process_alive

STATS_NOTE = (
    "mean and 95% CI over seeds (t interval); 'not distinguishable': its CI overlaps the "
    "best's; p_beats_best: bootstrap probability that its mean beats the best's"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nnlab-report", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or mlruns/)")
    p.add_argument("-e", "--experiment", action="append", help="experiment name (repeatable)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--sweep", metavar="RUN_ID", help="a sweep's parent run id")
    what.add_argument("--runs", action="store_true", help="list runs instead of a sweep")
    what.add_argument(
        "--stale",
        action="store_true",
        help="list RUNNING runs whose process on this host is gone (SIGKILL, power loss)",
    )
    p.add_argument(
        "--mark-killed", action="store_true", help="with --stale: close those runs as KILLED"
    )
    p.add_argument("--sort", metavar="KEY", help="sort by a metric, param or 'objective'")
    p.add_argument(
        "--ascending",
        action="store_true",
        help="smallest first (default: best first for 'objective', largest first otherwise)",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="keep runs whose param has this value (repeatable)",
    )
    p.add_argument(
        "--group",
        action="store_true",
        help="one row per configuration (all but the seeds): n, mean, 95%% CI, min, max, rank",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two groups (id, id prefix or label): difference of means, P(A better)",
    )
    p.add_argument("--limit", type=int, default=None, help="show at most this many rows")
    p.add_argument("--csv", type=Path, help="also write the table here")
    p.add_argument("--plots", type=Path, help="write the comparison figures into this folder")
    args = p.parse_args(argv)
    for item in args.filter:
        if "=" not in item:
            p.error(f"--filter {item!r}: expected PARAM=VALUE, e.g. model.activation=relu")
    if args.mark_killed and not args.stale:
        p.error("--mark-killed works with --stale only")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit}: must be an integer >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    uri = tracking_uri(args.uri)
    db = local_store_file(uri)
    if db is not None and not db.exists():
        print(f"nnlab-report: no store at {uri} (train something first: make run)", file=sys.stderr)
        return 1

    # lazy: `--stale` needs neither the tables nor matplotlib
    from nnlab.report import groups as group_report
    from nnlab.report import tables as report
    from nnlab.report.dashboard import sweep_dashboard
    from nnlab.tracking.store import queries, sweep_protocol

    client = get_client(uri)
    try:
        exp_ids = queries.experiment_ids(client, args.experiment)
    except LookupError as err:
        print(f"nnlab-report: --experiment: {err}", file=sys.stderr)
        return 2

    if args.stale:
        return stale_runs(client, exp_ids, args.mark_killed)

    parent = None
    if args.sweep:
        try:
            parent = client.get_run(args.sweep)
        except Exception:
            print(f"nnlab-report: --sweep {args.sweep}: no such run in {uri}", file=sys.stderr)
            return 2
    elif not args.runs:
        parent = queries.latest_sweep(client, exp_ids)

    if parent is not None:
        runs = sweep_protocol.sweep_children(client, parent)
        title = parent.info.run_name or f"sweep {parent.info.run_id}"
    else:
        filters = " and ".join(
            f"params.`{k}` = '{v}'" for k, v in (f.split("=", 1) for f in args.filter)
        )
        runs = queries.search_all(client, exp_ids, filters, limit=None if args.sort else args.limit)
        # Sweeps and groups have parent runs holding summaries, not results of their own.
        runs = [
            r
            for r in runs
            if r.data.tags.get(SWEEP_TAG) != "true" and REPEATS_TAG not in r.data.tags
        ]
        title = f"runs in {', '.join(args.experiment or ['all experiments'])}"

    rows = [report.to_row(r) for r in runs]
    for item in args.filter:
        key, value = item.split("=", 1)
        rows = [r for r in rows if r.params.get(key) == value]
    keys = report.swept_keys(rows)
    if args.sort:
        rows = sort_rows(rows, args.sort, args.ascending)
    rows = rows[: args.limit] if args.limit else rows

    lines = report.table(rows, keys, report.summary_columns(rows))
    groups = group_report.group_rows(rows, keys)
    group_lines = group_report.group_table(groups, report.test_columns(rows))
    if args.group and args.sort and args.sort != "objective":
        group_lines = sort_group_lines(group_lines, args.sort, args.ascending)
    print(title)
    if args.compare:
        try:
            a, b = (group_report.find_group(groups, name) for name in args.compare)
        except LookupError as err:
            print(f"nnlab-report: --compare: {err}", file=sys.stderr)
            return 2
        print(group_report.compare(a, b))
    elif args.group:
        print(report.render(group_lines))
        print(STATS_NOTE)
    else:
        print(report.render(lines))
    best = report.best_row(rows)
    if best is not None and parent is not None and not (args.group or args.compare):
        print(f"best: {best.name} ({best.objective_key}={best.objective:.5g}, run {best.run_id})")
    if args.csv:
        # Both tables in one file: a `level` column says which (run or group).
        detailed = group_report.group_table(groups, report.test_columns(rows), detail=True)
        args.csv.write_text(report.to_csv(report.stack_tables({"run": lines, "group": detailed})))
        print(f"csv: {args.csv}")
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        sweeper = parent.data.tags.get(SWEEPER_TAG, "") if parent is not None else ""
        for name, fig in sweep_dashboard(client, rows, keys, title[:80], sweeper).items():
            fig.savefig(args.plots / name, dpi=90)
            print(f"figure: {args.plots / name}")
    return 0


def stale_runs(client, exp_ids, mark_killed: bool) -> int:
    """RUNNING runs started on this host by a process that no longer exists."""
    # lazy: the queries load only for the commands that search
    from nnlab.tracking.store import queries

    host = socket.gethostname()
    running = queries.search_all(client, exp_ids, "attributes.status = 'RUNNING'")
    stale = [
        r
        for r in running
        if r.data.tags.get(HOST_TAG) == host
        and r.data.tags.get(PID_TAG, "").isdigit()
        and not process_alive(int(r.data.tags[PID_TAG]))
    ]
    elsewhere = [r for r in running if r.data.tags.get(HOST_TAG) not in (host, None)]
    print(f"{len(stale)} stale run(s) (RUNNING, process gone) on {host}")
    for r in stale:
        print(f"  {r.info.run_id}  {r.info.run_name}  pid {r.data.tags[PID_TAG]}")
        if mark_killed:
            close_run(
                client,
                r.info.run_id,
                "KILLED",
                f"process {r.data.tags[PID_TAG]} on {host} ended without "
                "closing the run; marked KILLED by nnlab-report --mark-killed",
            )
    if mark_killed and stale:
        print(f"marked {len(stale)} run(s) KILLED")
    if elsewhere:
        print(f"{len(elsewhere)} RUNNING run(s) belong to other hosts; check them there")
    return 0


def sort_rows(rows, key: str, ascending: bool):
    """Sort by a metric, a param or the objective; runs without a value go last."""
    # lazy: needed only when rows are sorted
    from nnlab.nn.tasks import higher_is_better

    def value(r):
        if key == "objective":
            return r.objective
        if key in r.metrics:
            return r.metrics[key]
        try:
            return float(r.params.get(key, "nan"))
        except ValueError:
            return r.params.get(key)  # a non-numeric param sorts as text

    descending = not ascending
    if key == "objective" and not ascending:  # best first
        descending = bool(rows) and higher_is_better(rows[0].objective_key or "")
    known = [r for r in rows if not (isinstance(value(r), float) and math.isnan(value(r)))]
    unknown = [r for r in rows if r not in known]
    return (
        sorted(known, key=lambda r: (isinstance(value(r), str), value(r)), reverse=descending)
        + unknown
    )


def sort_group_lines(lines, key: str, ascending: bool):
    """Groups by the mean of metric `key` (its column reads 'mean ± half-width')."""

    def mean(line) -> float:
        text = line.get(key, "")
        try:
            return float(text.split(" ± ")[0])
        except ValueError:
            return math.nan

    known = [line for line in lines if not math.isnan(mean(line))]
    return sorted(known, key=mean, reverse=not ascending) + [
        line for line in lines if line not in known
    ]


def entry() -> None:
    run_then_exit(main)  # nnlab.quick_exit: no interpreter teardown after the command


if __name__ == "__main__":
    entry()
