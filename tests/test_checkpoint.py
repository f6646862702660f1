"""PyTorch state dicts read without PyTorch: the same arrays as torch.load, and nothing but a state dict."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from meta_spliceai.basemodel.checkpoint import read_state_dict

OPENSPLICEAI = Path(__file__).resolve().parents[2] / "shared" / "models" / "openspliceai-mane-10000nt"


def test_same_arrays_as_torch_load():
    torch = pytest.importorskip("torch")
    path = sorted(OPENSPLICEAI.glob("*.pt"))[0]
    got = read_state_dict(path)
    want = torch.load(path, map_location="cpu", weights_only=True)
    want = want.get("state_dict", want)
    tensors = {k: v for k, v in want.items() if isinstance(v, torch.Tensor)}
    assert set(got) == set(tensors)
    for k, t in tensors.items():
        assert got[k].shape == tuple(t.shape) and np.array_equal(got[k], t.numpy()), k


def test_non_contiguous_and_saved_views(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"t": base.t(), "view": base[1:3, 2:], "i": torch.tensor([3, 1], dtype=torch.int64), "scalar": torch.tensor(2.5)}
    torch.save(sd, tmp_path / "x.pt")
    got = read_state_dict(tmp_path / "x.pt")
    for k, v in sd.items():
        assert np.array_equal(got[k], v.numpy()), k


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_state_dict(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        read_state_dict(tmp_path / "x.pt")
