"""Make the ``predict --sequences`` fixtures: FASTA records cut from the shared bundles, scored by the ORIGINAL
Keras SpliceAI ensemble exactly as SpliceAI's README scores a sequence (5,000 N on each side, the mean of the five
models' outputs).

Run by hand (never in CI), with a throw-away venv holding ``tensorflow-cpu spliceai setuptools`` and the numpy-2
shim of ../shared/tools as its ``sitecustomize.py``:

    python tests/data/sequences/make_fixtures.py --keras-python /tmp/kvenv/bin/python

Writes ``seqs.fa`` (``short``: 300 nt around a chr22 exon; ``long``: 12,000 nt over chr2 exons, long enough to be
cut into pieces; ``nruns``: 3,000 nt of chr22 with two runs of N and soft-masked (lower-case) bases, wrapped at
60) and ``keras.npz`` (per record, its ``(L, 3)`` float32 outputs ``[neither, acceptor, donor]``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3] / "shared" / "data"

KERAS = r"""
import sys
import numpy as np
from importlib.resources import files
from keras.models import load_model
from spliceai.utils import one_hot_encode

fasta, out = sys.argv[1], sys.argv[2]
records, name = {}, None
for line in open(fasta):
    line = line.strip()
    if line.startswith(">"):
        name = line[1:].split()[0]
        records[name] = []
    elif line:
        records[name].append(line)
models = [load_model(str(files("spliceai") / "models" / f"spliceai{i}.h5"), compile=False) for i in range(1, 6)]
result = {}
for name, parts in records.items():
    seq = "".join(parts)
    x = one_hot_encode("N" * 5000 + seq + "N" * 5000)[None, :]  # as SpliceAI's README
    y = np.mean([m.predict(x, verbose=0) for m in models], axis=0)
    result[name] = y[0].astype(np.float32)
    print(name, len(seq), result[name].shape, file=sys.stderr)
np.savez_compressed(out, **result)
"""


def sequences() -> dict[str, str]:
    import pysam

    c22 = pysam.FastaFile(str(SHARED / "grch37_chr22_20-21Mb" / "genome.fa.gz"))
    c2 = pysam.FastaFile(str(SHARED / "grch37_chr2_160-162Mb" / "genome.fa.gz"))
    short = c22.fetch("22", 20024283 - 150, 20024283 + 150).upper()  # TANGO2 exon 2's acceptor in the middle
    long = c2.fetch("chr2", 160_600_000, 160_612_000).upper()  # MARCH7 exons
    n = list(c22.fetch("22", 20_039_000, 20_042_000).upper())
    n[400:650] = "N" * 250
    n[1900:1960] = "N" * 60
    for i in range(1000, 1400):
        n[i] = n[i].lower()  # soft-masked bases score as upper-case ones
    return {"short": short, "long": long, "nruns": "".join(n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keras-python", required=True, help="python of the throw-away venv holding tensorflow and spliceai")
    a = ap.parse_args()
    fa = HERE / "seqs.fa"
    with open(fa, "w") as fh:
        for name, seq in sequences().items():
            fh.write(f">{name} cut from the shared bundles\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60)))
    subprocess.run([a.keras_python, "-c", KERAS, str(fa), str(HERE / "keras.npz")], check=True, stdout=sys.stderr)


if __name__ == "__main__":
    main()
