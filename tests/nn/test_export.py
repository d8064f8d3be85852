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
