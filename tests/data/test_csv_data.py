"""`data=csv`: the user's own table. Real tables are the data sets scikit-learn ships, written
out as CSV; bad files are written by the tests, one per way a file can be wrong."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from nnlab.data.csv_table import read_csv_table
from nnlab.data.datasets import DataError
from tests.commands import run_cli, spawn_cli

TINY = ["trainer.max_epochs=3", "trainer.progress=none", "tracking.log_model=false"]


def write_sklearn_csv(folder, name):
    """wine (3 integer classes), breast cancer (2 text labels), diabetes (a float target)."""
    from sklearn import datasets

    loader = {
        "wine": datasets.load_wine,
        "cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }[name]
    frame = loader(as_frame=True).frame
    if name == "cancer":
        frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def write(folder, text, name="table.csv"):
    path = folder / name
    path.write_text(text)
    return path


def only_run(uri):
    client = MlflowClient(uri)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return run


# -- end to end through nnlab-train, in process (tests/commands.py) ------------------------------
@pytest.mark.parametrize(
    "name, task, metric, n_features",
    [
        ("cancer", "binary", "test/auroc", 30),
        ("wine", "multiclass", "test/f1_macro", 13),
        ("diabetes", "regression", "test/r2", 10),
    ],
)
def test_sklearn_tables_train_end_to_end(store, tmp_path, name, task, metric, n_features):
    path = write_sklearn_csv(tmp_path, name)
    proc = run_cli(
        "nnlab-train", "data=csv", f"data.path={path}", "data.target=target", *TINY, check=True
    )
    run = only_run(store)
    assert run.info.status == "FINISHED" and run.info.run_name.startswith(f"{name} {n_features}-")
    assert run.data.tags["nnlab.task"] == task
    assert metric in run.data.metrics and metric.split("/")[1] in proc.stdout
    sha = run.data.tags["nnlab.data.splits.sha256"]
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    local = MlflowClient(store).download_artifacts(run.info.run_id, "data/csv.json", str(tmp_path))
    record = json.loads(Path(local).read_text())
    assert record["path"] == str(path) and record["rows"] == len(path.read_text().splitlines()) - 1
    assert record["columns"] == n_features + 1 and len(record["features"]) == n_features
    if name == "cancer":  # text labels, mapped in sorted order and recorded
        assert record["classes"] == {"0": "benign", "1": "malignant"}
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id, "plots")}
    assert "plots/decision_boundary.png" not in artifacts  # more than 2 features


def test_two_feature_csv_gets_a_decision_boundary(store, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    rows = "\n".join(f"{a:.5f},{b:.5f},{'yes' if a + b > 0 else 'no'}" for a, b in x)
    path = write(tmp_path, "x1,x2,label\n" + rows + "\n")
    run_cli("nnlab-train", "data=csv", f"data.path={path}", "data.target=label", *TINY, check=True)
    run = only_run(store)
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id, "plots")}
    assert "plots/decision_boundary.png" in artifacts


def test_reproduce_refuses_a_run_whose_file_changed(store, tmp_path):
    path = write_sklearn_csv(tmp_path, "wine")
    run_cli("nnlab-train", "data=csv", f"data.path={path}", "data.target=target", *TINY, check=True)
    run_id = only_run(store).info.run_id
    same = run_cli("nnlab-reproduce", run_id)
    assert same.returncode == 0 and "reproduced exactly" in same.stdout, same.stderr
    path.write_text(path.read_text().replace("14.23", "14.24", 1))  # one cell edited
    changed = run_cli("nnlab-reproduce", run_id)
    lines = [ln for ln in changed.stderr.splitlines() if ln.strip()]
    assert changed.returncode == 2 and len(lines) == 1, changed.stderr
    assert "data.path=" in lines[0] and "changed" in lines[0]


# -- bad files: one line, exit 2, no run --------------------------------------------------------
BAD_FILES = {
    "missing": (None, "cannot read it"),
    "a folder": ("<folder>", "not a file"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a UTF-8 text file"),
    "empty": ("", "the file is empty"),
    "header only": ("a,b,y\n", "no data rows"),
    "ragged": ("a,b,y\n1,2,0\n3,4\n", "line 3 has 2 fields"),
    "no such target": ("a,b,label\n1,2,0\n3,4,1\n", "no such column"),
    "text features": ("a,city,y\n1,Paris,0\n2,Rome,1\n", "not numeric: city (e.g. 'Paris')"),
    "nan in features": ("a,b,y\n1,nan,0\n2,,1\n3,4,1\n5,6,0\n", "b (2)"),
    "inf in target": ("a,b,y\n1,2,0.5\n2,3,inf\n3,4,1.5\n", "y (1)"),
    "single class": ("a,b,y\n1,2,cat\n2,3,cat\n3,4,cat\n", "single value (cat)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gets_one_line_and_exit_2_before_a_run(store, tmp_path, case):
    content, must_say = BAD_FILES[case]
    path = tmp_path / "table.csv"
    if content == "<folder>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    proc = run_cli("nnlab-train", "data=csv", f"data.path={path}", "data.target=y", *TINY)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert must_say in lines[0], lines[0]
    assert lines[0].startswith("nnlab-train: bad data: data.")  # names the key
    assert MlflowClient(store).search_experiments(filter_string="name = 'nnlab'") == []


@pytest.mark.slow
def test_missing_path_is_named(store):  # the real executable: exit 2 and the key on stderr
    proc = spawn_cli("nnlab-train", "data=csv", "data.target=y", *TINY)
    assert proc.returncode == 2 and "data.path=null" in proc.stderr


# -- reading rules, in process -----------------------------------------------------------------
def test_dropna_drops_the_rows_instead(tmp_path):
    path = write(tmp_path, "a,b,y\n1,nan,0\n2,,1\n3,4,1\n5,6,0\n7,8,1\n")
    with pytest.raises(DataError, match="data.dropna=true"):
        read_csv_table(str(path), "y")
    table = read_csv_table(str(path), "y", dropna=True)
    assert table.rows_in_file == 5 and table.rows_dropped == 2 and len(table.y) == 3
    assert table.x.tolist() == [[3, 4], [5, 6], [7, 8]]


def test_the_target_decides_the_task_and_data_task_overrides(tmp_path):
    ints = write(tmp_path, "a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)), "ints.csv")
    assert read_csv_table(str(ints), "y").task == "multiclass"
    assert read_csv_table(str(ints), "y", task="regression").task == "regression"
    with pytest.raises(DataError, match="data.task=binary"):
        read_csv_table(str(ints), "y", task="binary")
    text = write(tmp_path, "a,y\n1,no\n2,yes\n3,no\n", "text.csv")
    table = read_csv_table(str(text), "y")
    assert table.task == "binary" and table.classes == ("no", "yes")
    assert table.y.tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="not numeric"):
        read_csv_table(str(text), "y", task="regression")


def test_float_target_that_looks_like_labels_is_warned_about(tmp_path, capsys):
    path = write(tmp_path, "a,y\n" + "".join(f"{i},{i % 2}.0\n" for i in range(20)), "f.csv")
    assert read_csv_table(str(path), "y").task == "regression"
    err = capsys.readouterr().err
    assert "look like labels" in err and "data.task=binary" in err
    assert len(err.strip().splitlines()) == 1
    read_csv_table(str(path), "y", task="regression")  # chosen explicitly: silent
    assert capsys.readouterr().err == ""


def test_features_can_be_chosen_by_name(tmp_path):
    path = write(tmp_path, "id,a,b,y\nx1,1,2,0\nx2,3,4,1\n")
    with pytest.raises(DataError, match="not numeric: id"):
        read_csv_table(str(path), "y")
    table = read_csv_table(str(path), "y", features=["b", "a"])
    assert table.features == ("b", "a") and table.x.tolist() == [[2, 1], [4, 3]]
    with pytest.raises(DataError, match="data.features"):
        read_csv_table(str(path), "y", features=["nope"])


def test_a_changed_file_is_read_again(tmp_path):
    path = write(tmp_path, "a,y\n1,0\n2,1\n")
    first = read_csv_table(str(path), "y")
    path.write_text("a,y\n1,0\n2,1\n3,1\n")
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert len(read_csv_table(str(path), "y").y) == 3 and len(first.y) == 2
