"""The trained network as an MLflow Model: what the UI's Models column links, and what
`mlflow.pyfunc.load_model(uri).predict(x)` runs.

Every backend exports the same thing: an nn.Module that standardises raw features with the
training split's statistics and applies the MLP (a NumPy or einsum network is copied, weight
for weight, into its nn.Linear equivalent). It is traced by `torch.export` (a graph, loaded
without unpickling code) and served by nnlab.nn.served_model, an MLflow "model from code":
named input columns, class labels or per-class probabilities out (`params={"output": ...}`).
This module makes the model's folder; nnlab.tracking.logged_model logs it as its run's.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.utils import requirements_utils
from torch import nn

from nnlab.nn.nets import TorchMLP

MODEL_NAME = "model"
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")  # saved with the model
EXAMPLE_ROWS = 5
# Naming the requirement skips MLflow's inference of the environment (~9 s a run here).
PIP_REQUIREMENTS = [
    f"torch=={torch.__version__.split('+')[0]}",
    f"pandas=={importlib.metadata.version('pandas')}",
]


class StandardisedNet(nn.Module):
    """Raw features in, the trained network's outputs out."""

    def __init__(self, net: nn.Module, mean: np.ndarray, scale: np.ndarray, dtype):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=dtype))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale)


def as_torch_mlp(net: nn.Module, activation: str, dtype) -> TorchMLP:
    """Any backend's trained MLP as the equivalent nn.Linear network, same weights."""
    weights = [w.detach() for w in net.weight_matrices()]  # (fan_in, fan_out)
    biases = [m.bias.detach() for m in net.modules() if isinstance(m, nn.Linear)] or [
        b.detach() for b in net.biases
    ]
    return TorchMLP.from_params(list(zip(weights, biases, strict=True)), activation, dtype)


def exportable_model(net: nn.Module, activation: str, splits, dtype) -> StandardisedNet:
    return StandardisedNet(as_torch_mlp(net, activation, dtype), splits.mean, splits.scale, dtype)


def model_schema(setup, dtype) -> dict:
    """What the served model needs besides the network (nnlab.nn.served_model): the input
    columns by name, the categories of one-hot encoded columns, the class labels."""
    table = setup.table
    if table is not None:
        columns, categories = list(table.columns or table.features), dict(table.categories)
        classes, target = list(table.classes), table.target
    else:
        columns = [f"x{i + 1}" for i in range(setup.splits.n_features)]
        categories, target = {}, "y"
        classes = (
            []
            if setup.task.name == "regression"
            else [str(k) for k in range(max(2, setup.splits.n_outputs))]
        )
    return {
        "columns": columns,
        "categories": {k: list(v) for k, v in categories.items()},
        "classes": classes,
        "target": target,
        "task": setup.task.name,
        "dtype": "float64" if dtype == torch.float64 else "float32",
    }


def model_signature(schema: dict):
    """Named input columns, the default output, and the `output` param."""
    inputs = Schema(
        [ColSpec("string" if c in schema["categories"] else "double", c) for c in schema["columns"]]
    )
    label = "string" if schema["classes"] else "double"
    outputs = Schema([ColSpec(label, schema["target"])])
    params = ParamSchema([ParamSpec("output", "string", "label")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def save_model(path: Path, tmp: Path, mlmodel: Model, model, x_example, schema: dict) -> None:
    """`model` traced by torch.export (a graph, no pickle) and saved with its schema as the
    pyfunc model of nnlab.nn.served_model, in folder `path` (`tmp`: a folder for the files
    it is made from). `mlmodel`: the MLmodel it describes itself with (its ids)."""
    example = np.asarray(x_example[:EXAMPLE_ROWS], dtype=model.mean.numpy().dtype)
    _skip_the_installed_packages_scan()
    program = _traced(model.eval(), torch.as_tensor(example))
    torch.export.save(program, tmp / "model.pt2")  # saved at once: this member's weights
    schema_text = json.dumps(schema, indent=2)
    (tmp / "schema.json").write_text(schema_text)
    artifacts = {"program": str(tmp / "model.pt2"), "schema": str(tmp / "schema.json")}
    if _folders is not None and schema_text in _folders:
        _save_like(_folders[schema_text], path, mlmodel, artifacts)
        return
    with warnings.catch_warnings():
        # MLflow asks for an input example; the signature names the columns already, and an
        # example would make MLflow load the model to run it.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        mlflow.pyfunc.save_model(
            str(path),
            mlflow_model=mlmodel,
            python_model=str(SERVED_MODEL_CODE),
            artifacts=artifacts,
            signature=model_signature(schema),
            pip_requirements=PIP_REQUIREMENTS,
        )
    for cache in list(path.rglob("__pycache__")):  # left by MLflow loading the code, if it did
        shutil.rmtree(cache, ignore_errors=True)
    if _folders is not None and mlmodel.model_size_bytes is not None:  # None: MLflow could not
        _folders[schema_text] = _ModelFolder.of(path, mlmodel)  # size it; it makes every one


@dataclass
class _ModelFolder:
    """A model folder as `mlflow.pyfunc.save_model` made it, to make the next of its kind
    from: what is not the model's own (environment files, the serving code) as bytes, its
    MLmodel, where its artifacts go, and what MLflow counted in its size besides them."""

    files: dict[str, bytes]
    mlmodel: Model
    artifact_paths: dict[str, str]
    size: int

    @classmethod
    def of(cls, path: Path, mlmodel: Model) -> _ModelFolder:
        own = mlmodel.flavors["python_function"]["artifacts"]
        artifact_paths = {name: entry["path"] for name, entry in own.items()}
        theirs = {"MLmodel", *artifact_paths.values()}
        files = {
            f.relative_to(path).as_posix(): f.read_bytes() for f in path.rglob("*") if f.is_file()
        }
        files = {name: data for name, data in files.items() if name not in theirs}
        # What MLflow counts as the model's size besides the artifacts (the serving code)
        rest = mlmodel.model_size_bytes - sum(
            (path / p).stat().st_size for p in artifact_paths.values()
        )
        return cls(files, copy.deepcopy(mlmodel), artifact_paths, rest)


def _save_like(like: _ModelFolder, path: Path, mlmodel: Model, artifacts: dict[str, str]) -> None:
    """The folder `mlflow.pyfunc.save_model` would make for `artifacts` described by `mlmodel`,
    made from one it made for a model of the same signature: ~40 ms of a member's ~80 ms model
    export went to MLflow writing the same environment files, reading installed packages'
    metadata and loading the serving code, all alike for every member of a population.
    tests/nn/test_export.py holds the two folders equal, file for file."""
    for name, data in like.files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    described = copy.deepcopy(like.mlmodel)
    for field in ("artifact_path", "model_uuid", "model_id", "run_id", "utc_time_created"):
        setattr(described, field, getattr(mlmodel, field))
    own = described.flavors["python_function"]["artifacts"]
    for name, source in artifacts.items():
        (path / like.artifact_paths[name]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path / like.artifact_paths[name])
        own[name]["uri"] = source
    described.model_size_bytes = like.size + sum(Path(a).stat().st_size for a in artifacts.values())
    described.save(str(path / "MLmodel"))


def _skip_the_installed_packages_scan() -> None:
    """Before logging a model MLflow checks that its requirements are installed, through a map
    of every installed package's modules, built once per process by reading every package's
    file list: 0.7-1 s here (TensorFlow's and JAX's lists are long), the largest piece of a
    short run's model export. The requirements nnlab names are mlflow (added by MLflow) and
    torch, both imported by now, so the map needs those two entries; MLflow keeps its own
    map if it has built one. (`_MODULES_TO_PACKAGES` is private: mlflow is pinned in
    constraints.txt, and tests/nn/test_logged_model.py checks the logged requirements.)"""
    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", None) is None:
        requirements_utils._MODULES_TO_PACKAGES = {"mlflow": ["mlflow"], "torch": ["torch"]}


# shape -> its traced program, and schema -> a model folder MLflow made (_ModelFolder), while
# one_export_per_shape is active
_programs: dict | None = None
_folders: dict | None = None


@contextmanager
def one_export_per_shape() -> Iterator[None]:
    """While active, each model shape is traced once; a model of a shape already traced gets
    that program with its own weights and buffers copied in. The members of a population
    share their graph and differ only in weights (and, with their own data seeds, in the
    standardisation buffers); tracing is 0.14 s of a member's 0.27 s model export. Each
    member's program is saved before the next is copied in, so each saved file holds its own
    weights (tests/nn/test_logged_model.py checks every member). The program's graph is
    serialised once too (`_graph_serialised_once`), and each kind of model folder is made by
    MLflow once (`_save_like`)."""
    global _programs, _folders
    outer, _programs, outer_folders, _folders = _programs, {}, _folders, {}
    try:
        with _graph_serialised_once():
            yield
    finally:
        _programs, _folders = outer, outer_folders


@contextmanager
def _graph_serialised_once() -> Iterator[None]:
    """torch.export.save writes a program's weights and then its graph, serialised anew every
    time: ~90% of a save (~15 ms a member here), the same bytes for every member of a
    population, which share one program (`_traced`) and differ only in the weights copied into
    it. While active, the graph of each program is serialised once. It patches the one call
    in torch's packager (torch is pinned in constraints.txt); tests/nn/test_export.py holds a
    member's file equal to one saved without it, entry for entry."""
    from torch.export.pt2_archive import _package

    serialise = _package.serialize
    done: dict[tuple, tuple] = {}  # (program id, options) -> (program, its serialised graph)

    def serialised_once(program, *args, **kwargs):
        if kwargs.get("serialize_state_dict", True) or kwargs.get("serialize_constants", True):
            return serialise(program, *args, **kwargs)  # weights inside: not the same bytes
        key = (id(program), args, tuple(sorted(kwargs.items())))
        if key not in done:  # the program is held with it: its id stays its own
            done[key] = (program, serialise(program, *args, **kwargs))
        return done[key][1]

    _package.serialize = serialised_once
    try:
        yield
    finally:
        _package.serialize = serialise


def _traced(model: nn.Module, example: torch.Tensor):
    """`model` traced by torch.export for any number of rows of `example`'s kind."""
    if _programs is None:
        return _trace(model, example)
    state = model.state_dict()
    shape = (
        repr(model),
        tuple((k, tuple(v.shape), v.dtype) for k, v in state.items()),
        (tuple(example.shape), example.dtype),
    )
    program = _programs.get(shape)
    if program is None:
        # The program holds the model's own tensors: tracing a private copy keeps them apart
        # from the member whose weights the next one copies in.
        program = _programs[shape] = _trace(copy.deepcopy(model), example)
        return program
    with torch.no_grad():
        for name, tensor in program.state_dict.items():
            tensor.copy_(state[name])
    return program


def _trace(model: nn.Module, example: torch.Tensor):
    return torch.export.export(
        model,
        (example,),
        dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),  # any number of rows
    )
