from __future__ import annotations

import sys

import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.extras import installed, require


def test_installed_and_require(monkeypatch):
    assert installed("numpy") and not installed("no_such_module_xyz")
    require(["numpy", "polars"], "anything")  # present: no error
    monkeypatch.setitem(sys.modules, "xgboost", None)  # what a core-only install sees: `import xgboost` fails
    with pytest.raises(ImportError):
        import xgboost  # noqa: F401
    assert not installed("xgboost")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(InputError) as err:
        require(["xgboost", "numpy", "sklearn"], "train --model xgboost")
    assert str(err.value) == ("train --model xgboost needs xgboost, scikit-learn, which are not installed: "
                              "pip install 'meta-spliceai[train]'")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"needs ray, which is not installed: pip install 'meta-spliceai\[ray\]'"):
        require(["ray"], "--executor ray")
