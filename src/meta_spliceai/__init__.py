"""meta-spliceai: training datasets for splice-site meta-models on top of SpliceAI, and the models.

The public API, one call per command of the ``meta-spliceai`` CLI (each with the CLI's options as
keyword arguments)::

    import meta_spliceai as ms
    ms.build(output_dir="out/build", fasta="genome.fa", gtf="genes.gtf", n_genes=100, run_workflow=True)
    ms.train(dataset="out/build", out_dir="out/model")

Names are imported on first use, so ``import meta_spliceai`` stays light (optional extras such as
xgboost are needed only by the calls that use them).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meta-spliceai")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

#: public name -> module that defines it (relative to this package)
_API: dict[str, str] = {
    # reference
    "reference": "reference.report",
    "load_annotation": "reference.annotation",
    "Genome": "reference.genome",
    # base model
    "predict": "basemodel.predict",
    "predict_sequences": "basemodel.sequences",
    "load_base_model": "basemodel.ensemble",
    "PredictionStore": "basemodel.store",
    "scores_in_genome": "basemodel.genomic",
    "tracks": "basemodel.tracks",
    # dataset
    "build": "dataset.builder",
    "gene_ids": "dataset.selection",
    "open_dataset": "dataset.folder",
    # maintenance
    "patch": "maintenance.patching",
    "dedup": "maintenance.dedup",
    "validate": "maintenance.validation",
    "summary": "maintenance.summary",
    "write_report": "maintenance.summary_report",
    "merge": "maintenance.merging",
    # meta-model
    "train": "metamodel.training",
    "apply": "metamodel.correction",
    "load_card": "metamodel.card",
    # variants
    "variants": "variants.vcf",
    # the main job on the demo reference
    "demo": "demo",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'meta_spliceai' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

