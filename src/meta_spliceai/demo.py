"""The README's main job on the built-in demo reference: predict with SpliceAI, build a dataset, train a
meta-model against the base model and apply it to every demo gene."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import Device
from .dataset.builder import BuildSummary, build

log = logging.getLogger(__name__)

#: what the built-in reference is (demo_data/PROVENANCE.md)
DEMO_REFERENCE = "GRCh37 chr22:20-21 Mb"
#: genes per batch in the demo (its 17 multi-exon genes make 3 batches)
DEMO_BATCH_SIZE = 6


@dataclass
class DemoResult:
    build: BuildSummary
    artifacts: dict[str, str] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    calls: int = 0
    #: what the demo ran on: the built-in reference (its FASTA and GTF)
    reference: str = ""


def demo(*, output_dir: str | os.PathLike[str], device: Device = "auto", progress: bool = True) -> DemoResult:
    """Build the demo dataset in ``output_dir`` (resumable like any build) and list what it made."""
    from .dataset.selection import gene_ids
    from .extras import require
    from .metamodel.models import training_modules
    from .reference.report import demo_reference

    require(training_modules("xgboost"), "demo (it trains an xgboost meta-model)")  # before any work
    out = Path(output_dir)
    fasta, gtf = demo_reference()  # named explicitly: the demo takes no --fasta/--gtf, so nothing to warn about
    # every gene of the demo reference (policy "all"), so no --n-genes note about a flag the demo does not take
    summary = build(output_dir=out, fasta=fasta, gtf=gtf, subset_policy="all", batch_size=DEMO_BATCH_SIZE,
                    run_workflow=True, device=device, progress=progress)
    genes_tsv = out / "gene_ids.tsv"
    gene_ids(eval_dir=out, out=genes_tsv)
    from .metamodel.correction import apply
    from .metamodel.training import train

    trained = train(dataset=out, out_dir=out / "model", bootstrap=200, progress=progress)
    applied = apply(model=out / "model", predictions=out / "predictions", out=out / "apply", run_workflow=True,
                    fasta=fasta, gtf=gtf, device=device, progress=progress)
    artifacts = {
        "build config and plan": out / "build.json",
        "prediction store": out / "predictions",
        "raw / trim batches": out / "batches",
        "master dataset": out / "master",
        "manifest": out / "manifest.json",
        "base-model gene performance": out / "gene_performance.tsv",
        "genes in the store": genes_tsv,
        "meta-model and card": out / "model" / "model_card.json",
        "train report": out / "model" / "report.html",
        "corrected scores (all genes)": out / "apply" / "scores",
        "corrected site calls": out / "apply" / "calls.tsv",
        "site calls, typed (Parquet)": out / "apply" / "calls.parquet",
        "site calls, BED (genome browser)": out / "apply" / "calls.bed",
    }
    return DemoResult(build=summary, artifacts={k: str(v) for k, v in artifacts.items()}, metrics=trained.metrics,
                      calls=int(applied["calls"]),  # type: ignore[call-overload]
                      reference=f"the built-in demo reference, {DEMO_REFERENCE} (FASTA {fasta}, GTF {gtf})")
