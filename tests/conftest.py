"""Shared fixtures: the real reference bundles in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
CHR22 = DATA / "grch37_chr22_20-21Mb"
CHR2 = DATA / "grch37_chr2_160-162Mb"


@pytest.fixture(scope="session")
def chr22() -> Path:
    if not CHR22.is_dir():
        pytest.fail(f"shared data bundle missing: {CHR22}")
    return CHR22


@pytest.fixture(scope="session")
def chr2() -> Path:
    if not CHR2.is_dir():
        pytest.fail(f"shared data bundle missing: {CHR2}")
    return CHR2


KERAS_IDENTITY = {"base_model": "spliceai", "version": "keras-1.3.1-reference", "digest": "keras-npz",
                  "precision": "float32"}


def write_store(path: Path, arrays: dict) -> Path:
    """A prediction store holding the given (L, 3) [neither, acceptor, donor] arrays."""
    from meta_spliceai.basemodel.store import PredictionStore

    store = PredictionStore(path, KERAS_IDENTITY)
    for gene_id, probs in arrays.items():
        store.write(gene_id, probs)
    return path


def make_foreign(store_dir: Path, gene_id: str, **identity: str) -> Path:
    """Rewrite one gene's file of a store so that its own Parquet metadata names another identity."""
    import json

    import pyarrow.parquet as pq

    from meta_spliceai.basemodel.store import META_KEY, PredictionStore

    f = PredictionStore(store_dir).file_of(gene_id)
    t = pq.read_table(f)
    meta = {**json.loads(t.schema.metadata[META_KEY]), **identity}
    pq.write_table(t.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)}), f)
    return f


@pytest.fixture(scope="session")
def keras_store(tmp_path_factory, chr22) -> Path:
    """The original Keras SpliceAI's outputs for the chr22 genes, as a prediction store."""
    import numpy as np

    z = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    return write_store(tmp_path_factory.mktemp("keras") / "store", {g: z[g] for g in z.files})


@pytest.fixture(scope="session")
def chr2_random_store(tmp_path_factory, chr2) -> Path:
    """Seeded random scores (with a few confident peaks) for every chr2 gene: labels must not depend on them."""
    import numpy as np

    from meta_spliceai.reference.annotation import parse_annotation

    genes = parse_annotation(chr2 / "annotation.gtf").genes
    rng = np.random.default_rng(7)
    arrays = {}
    for gid, length in genes.select("gene_id", "length").iter_rows():
        p = rng.dirichlet([20.0, 0.5, 0.5], size=length).astype(np.float32)
        peaks = rng.choice(length, size=max(1, length // 5000), replace=False)
        p[peaks] = np.array([0.05, 0.9, 0.05], dtype=np.float32)
        arrays[gid] = p
    return write_store(tmp_path_factory.mktemp("chr2") / "store", arrays)


@pytest.fixture(scope="session", autouse=True)
def _runtime_cache(tmp_path_factory):
    """Exported runtimes (ONNX) go to a temp folder, not the user's cache (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("META_SPLICEAI_CACHE", str(tmp_path_factory.mktemp("onnx-cache")))
        yield


#: a small, fast XGBoost spec for tests (the defaults train longer)
FAST_XGB = '{"model": "xgboost", "params": {"n_estimators": 40, "max_depth": 4, "nthread": 2}}'


@pytest.fixture(scope="session")
def chr22_build(tmp_path_factory, chr22, keras_store) -> Path:
    """Every chr22 gene built from the Keras store, with 3-mers (exercises the sequence features)."""
    from meta_spliceai.dataset.builder import build

    out = tmp_path_factory.mktemp("train") / "build"
    build(output_dir=out, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", subset_policy="all",
          kmer_sizes=(3,), predictions=keras_store, progress=False)
    return out


# --------------------------------------------------------------------------- small builds (dataset commands)

SMALL_BUILD = {"subset_policy": "all", "batch_size": 5, "kmer_sizes": (2,), "progress": False}


def copy_dataset(src: Path, dst: Path) -> Path:
    """A private copy of a dataset folder (tests that change it; the copy's master/ is not linked to src)."""
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("predictions", ".lock"))
    return dst


@pytest.fixture(scope="session")
def chr22_dataset(tmp_path_factory, chr22, keras_store) -> Path:
    """All 17 chr22 genes (3 overlap on the - strand), 4 batches, 2-mers, Keras scores. Do not modify."""
    from meta_spliceai.dataset.builder import build

    out = tmp_path_factory.mktemp("ds") / "chr22"
    build(output_dir=out, predictions=keras_store, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf",
          **SMALL_BUILD)
    return out


@pytest.fixture(scope="session")
def chr22_model(tmp_path_factory, chr22_build):
    """A meta-model trained on chr22_build (gene split, seed 42), with its TrainResult."""
    from meta_spliceai.metamodel.training import train

    out = tmp_path_factory.mktemp("train") / "model"
    res = train(dataset=chr22_build, out_dir=out, model=FAST_XGB, bootstrap=30, progress=False)
    return out, res


TINY_XGB = '{"model": "xgboost", "params": {"n_estimators": 15, "max_depth": 3, "nthread": 2}}'


@pytest.fixture(scope="session")
def context_model(tmp_path_factory, chr22, keras_store):
    """chr22 built with every feature family (no k-mers), and ``train --feature-ablation`` on it: (root, result)."""
    from meta_spliceai.config import FEATURE_SETS
    from meta_spliceai.dataset.builder import build
    from meta_spliceai.metamodel.training import train

    root = tmp_path_factory.mktemp("context")
    build(output_dir=root / "build", fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", subset_policy="all",
          kmer_sizes=(), feature_sets=FEATURE_SETS, predictions=keras_store, progress=False)
    res = train(dataset=root / "build", out_dir=root / "model", model=TINY_XGB, bootstrap=20, feature_ablation=True,
                progress=False)
    return root, res


@pytest.fixture(scope="session")
def chr22_halves(tmp_path_factory, chr22, keras_store, chr22_dataset) -> tuple[Path, Path]:
    """Two builds over the first 9 and the last 9 of the same genes (one gene in both). Do not modify."""
    import json

    from meta_spliceai.dataset.builder import build

    ids = [g for b in json.loads((chr22_dataset / "build.json").read_text())["plan"]["batches"] for g in b]
    root = tmp_path_factory.mktemp("halves")
    outs = []
    for i, half in enumerate((ids[:9], ids[8:])):
        genes = root / f"h{i}.txt"
        genes.write_text("\n".join(half) + "\n")
        out = root / f"half{i}"
        build(output_dir=out, predictions=keras_store, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf",
              gene_ids_file=genes, batch_size=3, kmer_sizes=(2,), progress=False)
        outs.append(out)
    return outs[0], outs[1]


def basemodel_gpu_present() -> bool:
    """A CUDA GPU visible to PyTorch (False without PyTorch)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
