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
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text file"),
    "empty": ("", "the file is empty"),
    "header only": ("a,b,y\n", "no data rows"),
    # pandas reads a short line's last cells as missing: named with the line
    "ragged": ("a,b,y\n1,2,0\n3,4\n", "y (1), the first at line 3"),
    "long line": ("a,b,y\n1,2,0\n3,4,5,6\n", "line 3 has 4 fields, the header has 3"),
    "no such target": ("a,b,label\n1,2,0\n3,4,1\n", "no such column"),
    "text features": ("a,city,y\n1,Paris,0\n2,Rome,1\n", "not numeric: city (e.g. 'Paris'"),
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


# -- what spreadsheets write -----------------------------------------------------------------
def table_values(table):
    return table.x.tolist(), table.y.tolist()


@pytest.mark.parametrize(
    "name, raw",
    [
        ("plain", b"a,b,y\n1.5,2,0\n-3.25,4,1\n5,6,0\n"),
        ("semicolon, decimal comma", b"a;b;y\n1,5;2;0\n-3,25;4;1\n5;6;0\n"),
        ("tab, decimal comma", b"a\tb\ty\n1,5\t2\t0\n-3,25\t4\t1\n5\t6\t0\n"),
        ("utf-8 BOM and CRLF", b"\xef\xbb\xbfa,b,y\r\n1.5,2,0\r\n-3.25,4,1\r\n5,6,0\r\n"),
        ("quoted fields", b'"a","b","y"\n"1.5","2","0"\n"-3.25","4","1"\n"5","6","0"\n'),
        ("pipes", b"a|b|y\n1.5|2|0\n-3.25|4|1\n5|6|0\n"),
    ],
)
def test_spreadsheet_formats_read_to_the_same_table(tmp_path, name, raw):
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    table = read_csv_table(str(path), "y")
    assert table.features == ("a", "b")
    assert table_values(table) == ([[1.5, 2], [-3.25, 4], [5, 6]], [0, 1, 0])
    assert table.sha256 == hashlib.sha256(raw).hexdigest()


def test_thousands_separators_in_quoted_numbers(tmp_path):
    comma = write(tmp_path, 'a,y\n"1,234.5",0\n"-2,000",1\n"7",0\n', "dot.csv")
    assert read_csv_table(str(comma), "y").x.ravel().tolist() == [1234.5, -2000, 7]
    european = write(tmp_path, 'a;y\n"1.234,5";0\n"-2.000";1\n"7";0\n', "comma.csv")
    table = read_csv_table(str(european), "y")
    assert table.x.ravel().tolist() == [1234.5, -2000, 7] and table.format["decimal"] == ","


def test_a_latin_1_file_is_read_and_its_labels_kept(tmp_path):
    path = tmp_path / "latin.csv"
    rows = "".join(f"{i};{['Málaga', 'Zürich'][i % 2]}\n" for i in range(6))
    path.write_bytes(("a;city\n" + rows).encode("latin-1"))
    table = read_csv_table(str(path), "city")
    assert table.classes == ("Málaga", "Zürich") and table.format["encoding"] == "latin-1"
    with pytest.raises(DataError, match="data.encoding=utf-8: .* not valid UTF-8"):
        read_csv_table(str(path), "city", encoding="utf-8")


def test_a_delimiter_set_wrong_is_named_with_the_one_seen(tmp_path):
    path = write(tmp_path, "a;b;y\n1;2;0\n3;4;1\n")
    with pytest.raises(DataError) as err:
        read_csv_table(str(path), "y", delimiter=",")
    assert "no such column" in str(err.value)
    assert "the header holds ';' 2 times: set data.delimiter=';'" in str(err.value)
    assert read_csv_table(str(path), "y", delimiter=";").features == ("a", "b")


def penguins(folder, rows=60, missing_sex=False):
    """Palmer-penguins-like: species from two measurements, an island and a sex."""
    rng = np.random.default_rng(0)
    lines = ["species,bill_length_mm,flipper_length_mm,island,sex"]
    for i in range(rows):
        species, island = [("Adelie", "Torgersen"), ("Gentoo", "Biscoe"), ("Chinstrap", "Dream")][
            i % 3
        ]
        sex = "" if missing_sex and i % 10 == 0 else ["male", "female"][i % 2]
        length = 39 + 8 * (i % 3) + rng.normal()
        lines.append(
            f"{species},{length:.1f},{190 + 15 * (i % 3) + rng.normal():.0f},{island},{sex}"
        )
    return write(folder, "\n".join(lines) + "\n", "penguins.csv")


def test_text_feature_columns_are_one_hot_encoded(tmp_path):
    table = read_csv_table(str(penguins(tmp_path)), "species")
    assert table.task == "multiclass" and table.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert table.features == (
        "bill_length_mm", "flipper_length_mm",
        "island=Biscoe", "island=Dream", "island=Torgersen", "sex=female", "sex=male",
    )  # fmt: skip
    assert table.categories == {
        "island": ("Biscoe", "Dream", "Torgersen"),
        "sex": ("female", "male"),
    }
    # One 1 per encoded column, where the row's category is.
    assert table.x[0, 2:].tolist() == [0, 0, 1, 0, 1]  # Torgersen, male
    assert table.x[1, 2:].tolist() == [1, 0, 0, 1, 0]  # Biscoe, female
    assert table.record()["one_hot"]["island"] == ["Biscoe", "Dream", "Torgersen"]
    with pytest.raises(DataError, match="not numeric: island .*data.categorical=auto"):
        read_csv_table(str(penguins(tmp_path)), "species", categorical="false")


def test_a_missing_category_is_a_category_unless_dropna(tmp_path):
    path = penguins(tmp_path, missing_sex=True)
    kept = read_csv_table(str(path), "species")
    assert kept.categories["sex"] == ("female", "male", "(missing)")
    assert kept.x[0, -1] == 1 and len(kept.y) == 60
    dropped = read_csv_table(str(path), "species", dropna=True)
    assert dropped.categories["sex"] == ("female", "male") and len(dropped.y) == 54


def test_a_typo_in_a_numeric_column_is_named_not_encoded(tmp_path):
    rows = "".join(f"{i}.5,{i % 2}\n" for i in range(20))
    path = write(tmp_path, "a,y\n" + rows + "1O.5,1\n")  # a letter O for a zero
    with pytest.raises(
        DataError, match=r"column a is numbers but for '1O.5' \(1 row\), the first at line 22"
    ):
        read_csv_table(str(path), "y")


def test_a_stray_label_is_named_with_its_row_count(tmp_path):
    rows = "".join(f"{i},{['cat', 'dog'][i % 2]}\n" for i in range(40))
    path = write(tmp_path, "a,y\n" + rows + "40,dgo\n41,3\n")
    with pytest.raises(DataError) as err:
        read_csv_table(str(path), "y")
    message = str(err.value)
    assert "label(s) '3' (1 row), 'dgo' (1 row) appear in fewer than 3 rows" in message
    assert "cat (20), dog (20)" in message


@pytest.mark.slow
def test_a_penguins_like_table_trains_as_it_is(store, tmp_path):
    path = penguins(tmp_path, rows=90, missing_sex=True)
    proc = run_cli("nnlab-train", "data=csv", f"data.path={path}", "data.target=species", *TINY)
    assert proc.returncode == 0, proc.stderr
    run = only_run(store)
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    record = json.loads(
        Path(MlflowClient(store).download_artifacts(run.info.run_id, "data/csv.json")).read_text()
    )
    assert record["one_hot"] == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male", "(missing)"],
    }
