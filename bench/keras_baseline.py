"""The original Keras SpliceAI ensemble, timed: run with a Python that has tensorflow-cpu + spliceai.

Not part of the package (it needs TensorFlow). Reads the bench's inputs (an .npz of flank+body+flank
strings), runs the 5 Keras models of the `spliceai` package the whole-sequence way and/or the original
5,000-nt-block way, and prints one JSON line: {"whole": wall s, "whole_cpu": CPU s, "block": ..., ...}.

    python bench/keras_baseline.py INPUTS.npz OUT.npz [--modes whole,block]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np
import spliceai.utils as su

FLANK, BLOCK = 5000, 5000
_LUT = np.zeros((256, 4), dtype=np.float32)
for _i, _c in enumerate("ACGT"):
    _LUT[ord(_c), _i] = 1.0


def one_hot(seq: str) -> np.ndarray:
    # numpy >= 2 removed np.fromstring, which spliceai.utils.one_hot_encode uses: the shim
    return _LUT[np.frombuffer(seq.encode(), dtype=np.uint8)]


su.one_hot_encode = lambda seq: one_hot(seq.upper())  # noqa: E731


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--modes", default="whole,block")
    ap.add_argument("--block-batch", type=int, default=16)
    a = ap.parse_args()
    from importlib.resources import files

    from keras.models import load_model

    seqs = [str(s) for s in np.load(a.inputs)["seqs"]]
    models = [load_model(str(files("spliceai") / "models" / f"spliceai{i}.h5"), compile=False) for i in range(1, 6)]
    res: dict[str, object] = {}
    outs: dict[str, np.ndarray] = {}
    for mode in a.modes.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        for j, s in enumerate(seqs):
            x = su.one_hot_encode(s)
            n = len(s) - 2 * FLANK
            if mode == "whole":
                p = np.mean([m(x[None], training=False).numpy()[0] for m in models], axis=0)
            else:  # 5,000-nt blocks, each reading 10,000 nt of context (SpliceAI's training/eval layout)
                nb = -(-n // BLOCK)
                pad = np.zeros((nb * BLOCK + 2 * FLANK, 4), np.float32)
                pad[: len(x)] = x
                blocks = np.stack([pad[b * BLOCK : b * BLOCK + BLOCK + 2 * FLANK] for b in range(nb)])
                ps = []
                for m in models:
                    ps.append(np.concatenate([m(blocks[i : i + a.block_batch], training=False).numpy()
                                              for i in range(0, nb, a.block_batch)]))
                p = np.mean(ps, axis=0).reshape(-1, 3)[:n]
            outs[f"{mode}_{j}"] = p.astype(np.float32)
        res[mode] = time.perf_counter() - t0
        res[f"{mode}_cpu"] = time.process_time() - c0
    np.savez(a.out, **outs)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
