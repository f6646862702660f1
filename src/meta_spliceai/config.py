"""Option types and defaults, declared once.

Every default the CLI shows and every library function falls back on lives here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

BaseModelName = Literal["spliceai", "openspliceai", "cispliceai", "pangolin"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["float32", "bfloat16"]
Runtime = Literal["auto", "torch", "onnx"]
#: how ONNX Runtime members compute the wide-kernel stacks: by FFT (faster) or as direct convolutions
Convolution = Literal["fft", "direct"]
SubsetPolicy = Literal["error_total", "error_fp", "error_fn", "random", "hard", "custom", "all"]
SiteType = Literal["donor", "acceptor"]
SpliceType = Literal["donor", "acceptor", "neither"]
PredType = Literal["TP", "FP", "FN", "TN"]
Executor = Literal["local", "ray"]
#: feature families a build can select (columns in schema.py): today's per-position set, and context
#: views of the whole score tracks (partner-site peaks at several distances, the same-type neighbourhood,
#: the position's place among the gene's peaks)
FeatureSet = Literal["base", "partner", "neighbourhood", "gene_peaks"]

BASE_MODELS: tuple[str, ...] = get_args(BaseModelName)
#: base models whose weights come from an installed package (``spliceai``, ``cispliceai``): no --weights needed
PACKAGED_WEIGHTS: tuple[str, ...] = ("spliceai", "cispliceai")
#: Pangolin's tissues, in the order of its networks' heads (model 2t of its weight files is tissue t)
PANGOLIN_TISSUES: tuple[str, ...] = ("heart", "liver", "brain", "testis")
#: the float32 score columns a base model's prediction store holds, in order (what ``BaseModel.predict`` returns):
#: class probabilities for the SpliceAI-like models; per tissue P(splice site) and site usage for Pangolin,
#: which does not tell donor from acceptor
BASE_MODEL_OUTPUTS: dict[str, tuple[str, ...]] = {
    "spliceai": ("neither", "acceptor", "donor"),
    "openspliceai": ("neither", "acceptor", "donor"),
    "cispliceai": ("neither", "acceptor", "donor"),
    "pangolin": tuple(f"{t}_{v}" for t in PANGOLIN_TISSUES for v in ("p", "usage")),
}
DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
SUBSET_POLICIES: tuple[str, ...] = get_args(SubsetPolicy)
EXECUTORS: tuple[str, ...] = get_args(Executor)
FEATURE_SETS: tuple[str, ...] = get_args(FeatureSet)

#: nucleotides of real genomic context the base model reads on each side of a gene body
FLANK = 5_000
#: the raw file keeps this many times --easy-ratio easy TNs per TP/FP/FN row, so a trim can be redrawn
RAW_EASY_POOL_FACTOR = 3
#: sites of a gene come from its transcripts with at least this many exons
MIN_EXONS_FOR_SITES = 2
#: seconds between two plain progress lines when stderr is not a terminal (cluster logs)
PROGRESS_INTERVAL_S = 30.0


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a build's rows. Stored in ``build.json``; a resume must match it."""

    subset_policy: SubsetPolicy = "error_total"
    n_genes: int | None = 1000
    gene_ids: tuple[str, ...] | None = None  # resolved custom list (policy "custom")
    gene_types: tuple[str, ...] | None = None
    batch_size: int = 1000  # genes per batch
    batch_rows: int = 20_000  # rows per Parquet row group: with 6-mers ~8 KB a row, this bounds memory
    threshold: float = 0.5
    consensus_window: int = 2
    #: every TN whose top score reaches this is kept, and it is train's default floor: the meta-model can only
    #: move positions above it (0.15 capped a perfect reranking of CI-SpliceAI on chr20 at +0.015 PR-AUC;
    #: 0.001 leaves +0.06; bench/RESULTS.md, issue 30, "A lower floor")
    hard_prob: float = 0.001
    window: int = 75
    easy_ratio: float = 0.5
    kmer_sizes: tuple[int, ...] = (6,)
    kmer_window: int = 500
    feature_sets: tuple[FeatureSet, ...] = ("base", "partner")  # canonical order (FEATURE_SETS); base required
    seed: int = 42
    base_model: BaseModelName = "spliceai"  # the labelling model: its store decides TP/FP/FN and the TN strata
    #: the other base models of a stacked build, in store order (each adds its column family; empty: one model)
    stack_models: tuple[BaseModelName, ...] = ()

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        if not d["stack_models"]:  # a one-model build's build.json and card stay as they were
            del d["stack_models"]
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @property
    def base_models(self) -> tuple[str, ...]:
        """Every base model of the build, the labelling model first."""
        return (self.base_model, *self.stack_models)


DEFAULT_BUILD = BuildConfig()


@dataclass(frozen=True)
class PredictDefaults:
    """Defaults of ``meta-spliceai predict``."""

    batch_size: int = 8  # sequences per forward pass for short genes
    device: Device = "auto"
    precision: Precision = "float32"
    base_model: BaseModelName = "spliceai"
    chunk_size: int = 100_000  # output nucleotides per forward pass for long genes
    runtime: Runtime = "auto"  # CPU float32: ONNX Runtime when installed (faster), else PyTorch
    conv: Convolution = "fft"  # ONNX Runtime: the 21- and 41-tap stacks by FFT (same numbers to ~1e-7, faster)


DEFAULT_PREDICT = PredictDefaults()


@dataclass(frozen=True)
class ParallelDefaults:
    """Defaults of the scale-out flags (``--workers``, ``--executor``) of predict and build."""

    workers: int = 1  # 1: everything in this process
    executor: Executor = "local"
    max_retries: int = 2  # a unit whose worker dies is run again this many times (Ray; local: pool restarts)


DEFAULT_PARALLEL = ParallelDefaults()


SplitKind = Literal["gene", "chromosome"]


@dataclass(frozen=True)
class TrainDefaults:
    """Defaults of ``meta-spliceai train`` and ``apply``."""

    model: str = "xgboost"
    split: SplitKind = "gene"
    group_col: str = "gene_id"
    test_fraction: float = 0.2  # of the gene groups (gene split)
    valid_fraction: float = 0.15  # of the remaining groups
    corr_thr: float = 0.99
    prune_sample_rows: int = 200_000
    seed: int = 42
    #: positions with max(donor, acceptor) below the floor keep the base model's scores. None: the build's
    #: --hard-prob, above which the build kept every position (no TN sampling, so no weights needed)
    floor: float | None = None
    bootstrap: int = 1000
    #: fewer annotated sites of a type than this in the validation genes and the threshold chosen there is
    #: unreliable (F1 moves by 1/sites per site, the grid has 99 steps): train warns and the model card says so
    min_valid_sites: int = 50


DEFAULT_TRAIN = TrainDefaults()


@dataclass(frozen=True)
class VariantsDefaults:
    """``variants`` (SpliceAI 1.3.1's flags and defaults)."""

    distance: int = 50  # -D: the +-window of gained/lost sites scored around a variant
    mask: int = 0  # -M: 1 masks annotated-site gains and unannotated-site losses
    chunk_records: int = 500  # records per resumable chunk (and per unit of a parallel run)
    max_distance: int = 4999  # SpliceAI accepts -D 0..4999
    #: --precomputed: records of each file recomputed before it is trusted: min(all, max(check_records,
    #: check_fraction of them)), drawn with check_seed
    check_records: int = 30
    check_fraction: float = 0.01
    check_seed: int = 0
    cone: bool = True  # alternate alleles computed only inside their cone of influence (same numbers)


DEFAULT_VARIANTS = VariantsDefaults()
