"""Runs grouped by configuration: the table and the comparison nnlab-report prints."""

from nnlab.report import groups as group_report
from nnlab.report.tables import RunRow


def row(run_id, group, lr, seed, value, status="FINISHED"):
    return RunRow(
        run_id=run_id,
        name=f"lr={lr} · moons 2-10-5-1 · seed {seed}",
        status=status,
        overrides={"optimizer.lr": lr, "seed": str(seed)},
        objective_key="val/acc",
        metrics={"val/acc": value, "test/acc": value - 0.01} if status == "FINISHED" else {},
        params={"optimizer.lr": lr},
        tags={"nnlab.group": group},
    )


ROWS = [
    row("a1", "aaaa", "0.1", 1, 0.90),
    row("a2", "aaaa", "0.1", 2, 0.92),
    row("a3", "aaaa", "0.1", 3, 0.91),
    row("b1", "bbbb", "0.01", 1, 0.80),
    row("b2", "bbbb", "0.01", 2, 0.84),
    row("b3", "bbbb", "0.01", 3, 0.0, status="FAILED"),
]
KEYS = ["optimizer.lr", "seed"]


def test_groups_are_ranked_with_their_interval_and_failures():
    groups = group_report.group_rows(ROWS, KEYS)
    assert [(g.label, len(g.rows), g.failed) for g in groups] == [
        ("lr=0.1", 3, 0),
        ("lr=0.01", 3, 1),
    ]
    lines = group_report.group_table(groups, ["test/acc"])
    top, second = lines
    assert (top["label"], top["rank"], top["n"], top["vs_best"]) == ("lr=0.1", "1", "3", "best")
    assert top["mean"] == "0.91" and top["test/acc"].startswith("0.9 ± ")
    assert (second["n"], second["failed"], second["mean"]) == ("2", "1", "0.82")
    assert float(second["p_beats_best"]) < 0.05  # accuracy: higher is better
    detailed = group_report.group_table(groups, ["test/acc"], detail=True)[0]
    assert (detailed["test/acc min"], detailed["test/acc max"]) == ("0.89", "0.91")
    assert float(detailed["test/acc ci_low"]) < 0.9 < float(detailed["test/acc ci_high"])


def test_compare_two_groups():
    groups = group_report.group_rows(ROWS, KEYS)
    a = group_report.find_group(groups, "aa")  # an id prefix
    b = group_report.find_group(groups, "lr=0.01")  # a label
    text = group_report.compare(a, b)
    # B has 2 finished seeds: Welch's interval is wide, and the bootstrap's certainty is
    # flagged as overconfident rather than trusted.
    assert "A - B = 0.09" in text and "not distinguishable at 95%" in text
    assert "= 1.000 (bootstrap; overconfident with n < 5)" in text
    c = group_report.Group(
        "cccc", "lr=1", [row(f"c{i}", "cccc", "1", i, 0.5 + i / 100) for i in range(5)]
    )
    a.rows += [row("a4", "aaaa", "0.1", 4, 0.9), row("a5", "aaaa", "0.1", 5, 0.91)]
    text = group_report.compare(a, c)
    assert "A is better at 95%" in text and "= 1.000 (bootstrap)" in text
