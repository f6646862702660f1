"""ONNX graphs built straight from the weights: valid, and the same numbers as the PyTorch member."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from meta_spliceai.basemodel.ensemble import random_weights
from meta_spliceai.basemodel.onnx_graph import build_onnx, save_onnx
from meta_spliceai.basemodel.weights import CONTEXT


@pytest.mark.parametrize("leaky", [0.0, 0.1])
def test_graph_equals_torch_member(tmp_path, leaky):
    pytest.importorskip("torch")
    import torch

    from meta_spliceai.basemodel.ensemble import (
        torch_net,  # the reference implementation
    )

    w = random_weights(1, seed=5)[0]
    w.leaky = leaky
    path = save_onnx(w, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, n in ((1, 1), (2, 300), (1, 2_000)):
        x = np.zeros((batch, 4, n + CONTEXT), dtype=np.float32)
        idx = rng.integers(0, 5, size=(batch, n + CONTEXT))
        for b in range(batch):
            ok = idx[b] < 4
            x[b, idx[b][ok], np.flatnonzero(ok)] = 1.0
        got = sess.run(None, {"x": x})[0]
        with torch.inference_mode():
            want = torch_net(w)(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 3, n)
        assert np.abs(got - want).max() <= 1e-5


def test_graph_has_dynamic_batch_and_length_and_no_torch_ops():
    g = build_onnx(random_weights(1, seed=6)[0]).graph
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 4, "length"]
    assert {n.op_type for n in g.node} <= {"Conv", "Mul", "Add", "Relu", "LeakyRelu", "Slice", "Softmax",
                                           "Unsqueeze", "Squeeze"}
    assert "Slice" not in {n.op_type for n in g.node}  # crops are depthwise convs: the graph stays in NCHWc
    # every conv is a (1, k) 2-D conv (ONNX Runtime's blocked NCHWc kernels), between one Unsqueeze and one Squeeze
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert convs and all(len(next(a.ints for a in n.attribute if a.name == "kernel_shape")) == 2 for n in convs)
    assert [n.op_type for n in g.node].count("Unsqueeze") == 1 and g.node[0].op_type == "Unsqueeze"
    assert [n.op_type for n in g.node].count("Squeeze") == 1 and g.node[-1].op_type == "Squeeze"
