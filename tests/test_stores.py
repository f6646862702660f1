"""``dataset.stores``: which weights folder goes to which base model (``--weights`` forms)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta_spliceai.dataset.stores import weights_map
from meta_spliceai.errors import InputError


def test_weights_forms():
    assert weights_map(None, ["spliceai"]) == {}
    assert weights_map("/w", ["openspliceai"]) == {"openspliceai": Path("/w")}
    assert weights_map({"pangolin": "/p"}, ["spliceai", "pangolin"]) == {"pangolin": Path("/p")}
    assert weights_map(["openspliceai=/o", "pangolin=/p"], ["cispliceai", "openspliceai", "pangolin"]) == {
        "openspliceai": Path("/o"), "pangolin": Path("/p")}


def test_a_plain_folder_goes_to_the_one_model_without_packaged_weights():
    # SpliceAI's and CI-SpliceAI's weights come from their packages: a plain DIR is OpenSpliceAI's
    assert weights_map(["/o"], ["cispliceai", "spliceai", "openspliceai"]) == {"openspliceai": Path("/o")}
    with pytest.raises(InputError, match="which model's\\? this build has cispliceai, openspliceai, pangolin"):
        weights_map(["/o"], ["cispliceai", "openspliceai", "pangolin"])
    with pytest.raises(InputError, match="--weights for pangolin, which is not one of the base models"):
        weights_map(["pangolin=/p"], ["spliceai", "openspliceai"])
