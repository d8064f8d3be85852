"""A population's models are traced once and their graph serialised once
(nnlab.nn.export.one_export_per_shape): each member's file must still be the file a model of
its own would get, its own weights and buffers included."""

import zipfile

import numpy as np
import torch

from nnlab.nn import export
from nnlab.nn.nets import TorchMLP


def model(seed: int) -> export.StandardisedNet:
    g = torch.Generator().manual_seed(seed)
    params = [(torch.randn(2, 6, generator=g), torch.randn(6, generator=g)),
              (torch.randn(6, 1, generator=g), torch.randn(1, generator=g))]  # fmt: skip
    mean, scale = np.full(2, float(seed)), np.full(2, 1.0 + seed)
    net = TorchMLP.from_params(params, "relu", torch.float32)
    return export.StandardisedNet(net, mean, scale, torch.float32).eval()


def entries(path) -> dict[str, bytes]:
    """The archive's files, but for the id torch draws anew for every save."""
    with zipfile.ZipFile(path) as archive:
        return {
            name.split("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if not name.endswith("serialization_id")
        }


def test_a_member_saved_in_a_population_is_the_file_it_would_get_alone(tmp_path, monkeypatch):
    from torch.export.pt2_archive import _package

    graphs = []  # each serialisation of a graph torch's packager asks for
    serialise = _package.serialize
    monkeypatch.setattr(
        _package, "serialize", lambda *a, **k: graphs.append(1) or serialise(*a, **k)
    )
    example = torch.randn(5, 2)
    members = [model(seed) for seed in range(3)]
    with export.one_export_per_shape():
        for k, member in enumerate(members):
            torch.export.save(export._traced(member, example), tmp_path / f"member{k}.pt2")
    assert len(graphs) == 1  # one program, serialised once for three files
    for k, member in enumerate(members):
        # Alone: its own trace (the example is the first member's: a population's program
        # keeps the inputs it was traced with), saved without the shared graph.
        torch.export.save(export._trace(member, example), tmp_path / f"alone{k}.pt2")
        got, want = entries(tmp_path / f"member{k}.pt2"), entries(tmp_path / f"alone{k}.pt2")
        assert got.keys() == want.keys()
        assert {n for n in got if got[n] != want[n]} == set()
        loaded = torch.export.load(tmp_path / f"member{k}.pt2").module()
        x = torch.randn(7, 2)
        torch.testing.assert_close(loaded(x), member(x), rtol=0, atol=0)
    # The members differ where they should: their weights and buffers
    assert entries(tmp_path / "member0.pt2") != entries(tmp_path / "member1.pt2")


SCHEMA = {"columns": ["x1", "x2"], "categories": {}, "classes": ["0", "1"], "target": "y",
          "task": "binary", "dtype": "float32"}  # fmt: skip


def saved_folder(root, k: int, member, example) -> tuple:
    """Member k's model folder, saved by export.save_model under `root`: (folder, its MLmodel
    as a dict)."""
    import yaml
    from mlflow.models import Model

    ids = {"model_uuid": f"m-{k}", "model_id": f"m-{k}", "run_id": f"run{k}"}
    mlmodel = Model(artifact_path=f"file:///models/m-{k}/artifacts", **ids)
    tmp, folder = root / f"tmp{k}", root / f"model{k}"
    tmp.mkdir(parents=True)
    export.save_model(folder, tmp, mlmodel, member, example, SCHEMA)
    return folder, yaml.safe_load((folder / "MLmodel").read_text())


def test_a_members_model_folder_made_from_the_first_is_the_one_mlflow_makes(tmp_path):
    """In a population MLflow's pyfunc.save_model makes the first member's folder; the others
    are made from it (export._save_like). Each must be the folder MLflow would make for it:
    the same files, byte for byte but for its program's save id, and the same MLmodel but for
    where its artifacts were copied from; and it must load and predict as its network."""
    import mlflow.pyfunc
    import pandas as pd

    example = np.random.default_rng(0).normal(size=(5, 2))
    members = [model(seed) for seed in range(3)]
    with export.one_export_per_shape():
        made = [saved_folder(tmp_path / "population", k, m, example) for k, m in enumerate(members)]
    for k, member in enumerate(members):
        folder, described = made[k]
        by_mlflow, by_mlflow_described = saved_folder(tmp_path / "alone", k, member, example)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == sorted(
            p.relative_to(by_mlflow).as_posix() for p in by_mlflow.rglob("*") if p.is_file()
        )
        for name in files:
            if name == "artifacts/model.pt2":
                assert entries(folder / name) == entries(by_mlflow / name)
            elif name != "MLmodel":
                assert (folder / name).read_bytes() == (by_mlflow / name).read_bytes(), name
        for mlmodel in (described, by_mlflow_described):
            mlmodel.pop("utc_time_created")
            for artifact in mlmodel["flavors"]["python_function"]["artifacts"].values():
                artifact.pop("uri")  # the file it was copied from: each save's own tmp folder
        assert described == by_mlflow_described
        assert described["run_id"] == f"run{k}" and described["model_size_bytes"] > 0
        served = mlflow.pyfunc.load_model(str(folder))
        x = np.random.default_rng(k).normal(size=(4, 2))
        got = served.predict(
            pd.DataFrame(x, columns=["x1", "x2"]), params={"output": "probabilities"}
        )
        with torch.no_grad():
            logits = member(torch.as_tensor(x, dtype=torch.float32)).numpy().ravel()
        np.testing.assert_allclose(np.asarray(got)[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-5)
