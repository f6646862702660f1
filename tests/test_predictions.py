"""The prediction store and the predict stage, on the real chr22 bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import KERAS_IDENTITY, make_foreign, write_store

from meta_spliceai.basemodel.ensemble import CONTEXT, random_model
from meta_spliceai.basemodel.predict import predict, predict_genes
from meta_spliceai.basemodel.store import COLUMNS, PredictionStore, gene_file_name
from meta_spliceai.errors import ConfigMismatchError, InputError
from meta_spliceai.reference.annotation import load_annotation
from meta_spliceai.reference.genelists import requested_genes as select_genes
from meta_spliceai.reference.genome import Genome, reverse_complement

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHR22 = SHARED / "data" / "grch37_chr22_20-21Mb"
OPENSPLICEAI = SHARED / "models" / "openspliceai-mane-10000nt"
SMALL = ["GGTLC3", "CCDC188", "TMEM191B"]  # three short genes




@pytest.fixture(scope="module")
def genome() -> Genome:
    return Genome(CHR22 / "genome.fa.gz")


@pytest.fixture(scope="module")
def ann():  # noqa: ANN201
    return load_annotation(CHR22 / "annotation.gtf")


@pytest.fixture(scope="module")
def tiny():  # noqa: ANN201
    # plumbing tests compare inputs cut differently to 1e-6: direct convolutions (random weights amplify the
    # FFT's rounding, which moves with the cuts; the real model's FFT path is checked against Keras)
    return random_model(1, seed=5, conv="direct")


def _gene_input(genome: Genome, row: dict) -> str:
    s = genome.fetch(row["chrom"], row["start"] - 1 - 5000, row["end"] + 5000)  # 1-based closed -> 0-based
    return reverse_complement(s) if row["strand"] == "-" else s


def test_store_round_trip(tmp_path: Path) -> None:
    ident = {"base_model": "spliceai", "version": "x", "digest": "d1", "precision": "float32"}
    store = PredictionStore(tmp_path / "store", ident)
    rng = np.random.default_rng(0)
    probs = {g: rng.random((n, 3), dtype=np.float32) for g, n in (("G1", 5), ("ENSG0000.3", 17), ("odd/id name", 2))}
    for g, p in probs.items():
        store.write(g, p)
    assert store.finished_genes() == set(probs)
    for g, p in probs.items():
        assert np.array_equal(store.read(g), p)
    # only finished Parquet files inside the store; temp files live beside it
    assert all(f.suffix == ".parquet" and not f.name.startswith(".") for f in (tmp_path / "store").iterdir())
    df = pl.scan_parquet(tmp_path / "store").collect()
    assert df.schema == pl.Schema(
        {"gene_id": pl.String, "position": pl.Int64, "neither": pl.Float32, "acceptor": pl.Float32, "donor": pl.Float32}
    )
    assert df.height == 24
    g1 = df.filter(pl.col("gene_id") == "ENSG0000.3").sort("position")
    assert g1["position"].to_list() == list(range(17))
    assert np.array_equal(g1.select(COLUMNS).to_numpy(), probs["ENSG0000.3"])
    assert gene_file_name("odd/id name") != gene_file_name("odd_id_name")
    # another model (or version, or precision) is refused
    for key in ("base_model", "version", "digest", "precision"):
        with pytest.raises(ConfigMismatchError, match="another base model"):
            PredictionStore(tmp_path / "store", {**ident, key: "other"})
    with pytest.raises(InputError, match="not in prediction store"):
        store.read("nope")


def test_resume_skips_finished_genes(tmp_path: Path, genome: Genome, ann, tiny) -> None:  # noqa: ANN001
    genes = select_genes(ann.genes, gene_list=SMALL)
    store = PredictionStore(tmp_path / "store", tiny)
    first = predict_genes(genome, genes.head(2), tiny, store)
    assert first["genes_predicted"] == 2 and first["genes_skipped"] == 0
    before = {g: store.read(g) for g in store.finished_genes()}
    # a crash leaves at most a temp file beside the store, never inside it
    (tmp_path / ".store.tmp").mkdir(exist_ok=True)
    (tmp_path / ".store.tmp" / "TMEM191B.parquet.123").write_bytes(b"partial")
    second = predict_genes(genome, genes, tiny, store)
    assert second["genes_predicted"] == 1 and second["genes_skipped"] == 2
    assert store.finished_genes() == set(SMALL)
    for g, p in before.items():
        assert np.array_equal(store.read(g), p)
    assert pl.scan_parquet(tmp_path / "store").select(pl.len()).collect().item() == genes["length"].sum()


@pytest.mark.slow
def test_overlapping_genes_and_order(tmp_path: Path, genome: Genome, tiny) -> None:  # noqa: ANN001
    """Same-strand overlapping/nearby genes are scored once, with each gene's own-input result."""
    genes = pl.DataFrame(
        {
            "gene_id": ["A", "B", "C", "D"],
            "chrom": ["22"] * 4,
            "strand": ["+", "+", "-", "-"],
            "start": [20_100_001, 20_101_501, 20_100_501, 20_103_001],
            "end": [20_102_000, 20_102_300, 20_101_200, 20_103_400],
        }
    ).with_columns(length=pl.col("end") - pl.col("start") + 1)
    s1 = PredictionStore(tmp_path / "s1", tiny)
    summary = predict_genes(genome, genes, tiny, s1)
    # one input per strand: A+B (overlap) and C..D (closer than 10 kb), gaps included
    assert summary["nt"] == 2000 + 800 + 700 + 400 and summary["nt_scored"] == 2300 + 2900
    s2 = PredictionStore(tmp_path / "s2", tiny)
    predict_genes(genome, genes.reverse(), tiny, s2, batch_size=1)
    own = tiny.predict([_gene_input(genome, r) for r in genes.iter_rows(named=True)], batch_size=1)
    for gid, p in zip(genes["gene_id"], own):
        assert np.abs(s1.read(gid) - p).max() <= 1e-6, gid
        assert np.abs(s2.read(gid) - p).max() <= 1e-6, gid


@pytest.mark.slow
def test_spliceai_store_matches_keras(tmp_path: Path) -> None:
    """Full stage (annotation -> store) on overlapping '-' genes and a '+' gene, against the original."""
    summary = predict(
        fasta=CHR22 / "genome.fa.gz", gtf=CHR22 / "annotation.gtf", out=tmp_path / "preds",
        genes=["SCARF2", "XXbac-B562F10.12", "GGTLC3"], device="cpu", progress=False,
    )
    assert summary["genes_predicted"] == 3
    ref = np.load(CHR22 / "reference" / "keras_spliceai_outputs.npz")
    store = PredictionStore(tmp_path / "preds")
    for g in ("SCARF2", "XXbac-B562F10.12", "GGTLC3"):
        assert np.abs(store.read(g) - ref[g]).max() <= 1e-4, g
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"]
    # a second model into the same store is refused
    with pytest.raises(ConfigMismatchError):
        predict(fasta=CHR22 / "genome.fa.gz", gtf=CHR22 / "annotation.gtf", out=tmp_path / "preds", genes=["GGTLC3"],
                device="cpu", base_model="openspliceai", weights=OPENSPLICEAI, progress=False)


def _topk(store: PredictionStore, ann) -> float:  # noqa: ANN001
    hits = total = 0
    for (gid, site), sites in ann.splice_sites.group_by("gene_id", "site_type"):
        p = store.read(gid)[:, COLUMNS.index(site)]
        k = sites.height
        top = np.argpartition(-p, k - 1)[:k]
        hits += len(set(top.tolist()) & set(sites["position"].to_list()))
        total += k
    return hits / total


@pytest.mark.slow
def test_openspliceai_topk_accuracy(tmp_path: Path, ann) -> None:  # noqa: ANN001
    summary = predict(
        fasta=CHR22 / "genome.fa.gz", gtf=CHR22 / "annotation.gtf", out=tmp_path / "osai",
        device="cpu", base_model="openspliceai", weights=OPENSPLICEAI, progress=False,
    )
    assert summary["genes_predicted"] == 18
    acc = _topk(PredictionStore(tmp_path / "osai"), ann)
    assert acc >= 0.85, acc


def test_bad_gene_selection(ann, genome: Genome, tiny, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="NOPE1"):
        select_genes(ann.genes, gene_list=["GGTLC3", "NOPE1", "NOPE2"])
    with pytest.raises(InputError, match="n-genes"):
        select_genes(ann.genes, n_genes=0)
    assert select_genes(ann.genes, n_genes=2)["gene_id"].to_list() == ["TANGO2", "DGCR8"]
    lst = tmp_path / "genes.tsv"
    lst.write_text("gene_id\tx\nCCDC188\t1\n")
    assert select_genes(ann.genes, gene_ids_file=lst)["gene_id"].to_list() == ["CCDC188"]
    odd = pl.DataFrame({"gene_id": ["Z"], "chrom": ["chrUn"], "strand": ["+"], "start": [1], "end": [100]})
    with pytest.raises(InputError, match="chrUn"):
        predict_genes(genome, odd, tiny, PredictionStore(tmp_path / "s", tiny), contig_map={"22": "22"})


def test_short_gene_near_contig_start(tmp_path: Path, genome: Genome, tiny) -> None:  # noqa: ANN001
    """Flank past the contig start is N-padded, as in the original."""
    genes = pl.DataFrame({"gene_id": ["E"], "chrom": ["22"], "strand": ["-"], "start": [10], "end": [60]})
    store = PredictionStore(tmp_path / "s", tiny)
    predict_genes(genome, genes, tiny, store)
    seq = reverse_complement("N" * 4991 + genome.fetch("22", 0, 5060))  # [10-1-5000, 60+5000)
    assert len(seq) == 51 + CONTEXT
    assert np.abs(store.read("E") - tiny.predict([seq])[0]).max() <= 1e-6


def test_overwrite_and_stale_lengths(tmp_path: Path, genome: Genome, ann, tiny) -> None:  # noqa: ANN001
    """A stored gene whose length no longer matches is an error naming --overwrite; overwrite recomputes."""
    genes = select_genes(ann.genes, gene_list=SMALL[:2])
    store = PredictionStore(tmp_path / "store", tiny)
    predict_genes(genome, genes, tiny, store)
    good = store.read(SMALL[0])
    stale = SMALL[1]
    store.write(stale, np.zeros((store.length_of(stale) - 7, 3), np.float32))  # made for another annotation
    with pytest.raises(InputError, match=rf"no longer match .*{stale} .*--overwrite"):
        predict_genes(genome, genes, tiny, store)
    again = predict_genes(genome, genes, tiny, store, overwrite=True)
    assert again["genes_predicted"] == 2 and again["genes_skipped"] == 0
    n = int(genes.filter(pl.col("gene_id") == stale)["length"][0])
    assert store.length_of(stale) == n and np.array_equal(store.read(SMALL[0]), good)
    assert not (tmp_path / ".store.tmp").exists()


@pytest.mark.parametrize(("identity", "first"), [({"base_model": "openspliceai"}, False),
                                                 ({"digest": "other-weights"}, False),
                                                 ({"base_model": "openspliceai"}, True)])
def test_a_file_of_another_model_is_named_as_it_is_read(tmp_path: Path, keras_store: Path, identity, first) -> None:
    """One file of a real (Keras SpliceAI) store rewritten as another model's: every read of the store names it."""
    genes = ["GGTLC3", "TANGO2", "ZNF74"]  # the foreign file sorts first or last (stored_identity samples both)
    src = PredictionStore(keras_store)
    write_store(tmp_path / "s", {g: src.read(g) for g in genes})
    odd = genes[0] if first else genes[1]
    foreign = make_foreign(tmp_path / "s", odd, **identity)
    store = PredictionStore(tmp_path / "s")
    assert store.stored_identity() == {"schema_version": "1", **KERAS_IDENTITY}
    for g in genes:  # the good files read as before; the foreign one is named
        if g != odd:
            assert np.array_equal(store.read(g), src.read(g))
    with pytest.raises(ConfigMismatchError, match=rf"{foreign.name} was written by another base model .*"
                                                  rf"{next(iter(identity))} '.*delete that file") as err:
        store.read(odd)
    assert "\n" not in str(err.value) and str(foreign) in str(err.value)
    # opened with its model, the store refuses the foreign file on read too
    with pytest.raises(ConfigMismatchError, match=foreign.name):
        PredictionStore(tmp_path / "s", KERAS_IDENTITY).read(odd)
    # a file copied in under another gene's name is named too
    shutil.copy(src.file_of("TANGO2"), tmp_path / "s" / "ZNF74.parquet")
    with pytest.raises(InputError, match=r"ZNF74\.parquet holds the predictions of gene 'TANGO2', not 'ZNF74'"):
        store.read("ZNF74")


def test_damaged_store_file_is_named_with_the_fix(tmp_path: Path) -> None:
    ident = {"base_model": "spliceai", "version": "x", "digest": "d1", "precision": "float32"}
    store = PredictionStore(tmp_path / "store", ident)
    store.write("G1", np.full((50, 3), 0.3, np.float32))
    f = store.file_of("G1")
    f.write_bytes(f.read_bytes()[:100])
    for call in (lambda: store.read("G1"), store.finished_genes, lambda: store.length_of("G1")):
        with pytest.raises(InputError, match=r"unreadable file in prediction store: .*G1\.parquet.*delete it") as err:
            call()
        assert "\n" not in str(err.value)


def test_predict_progress_moves_within_a_gene(tmp_path: Path, genome: Genome, ann, monkeypatch, caplog) -> None:
    """The nucleotide bar advances per chunk of the model's input while a gene is scored, before the gene is
    written (a 30-gene predict no longer sits at 0 nt until it is done); -vv gets a debug line per gene."""
    import logging

    from meta_spliceai.basemodel import predict as stage
    from meta_spliceai.progress import PlainProgress

    updates: list[tuple[float, str | None]] = []

    class Bar(PlainProgress):  # the display of a redirected stderr, recording what the stage tells it
        def update(self, task_id: int, **kw: object) -> None:
            super().update(task_id, **kw)  # type: ignore[arg-type]
            updates.append((self.tasks[task_id].completed, kw.get("genes")))  # type: ignore[arg-type]

    monkeypatch.setattr(stage, "nucleotide_progress", lambda enabled=True: Bar())
    genes = select_genes(ann.genes, gene_list=["TANGO2"])
    length = int(genes["length"][0])
    model = random_model(1, seed=5, chunk_size=8_000)
    caplog.set_level(logging.DEBUG, logger="meta_spliceai")
    predict_genes(genome, genes, model, PredictionStore(tmp_path / "s", model), progress=True)
    records = caplog.messages
    moving = [done for done, g in updates if g is None]
    assert len(moving) == -(-length // 8_000) and moving == sorted(moving) and moving[0] < length
    assert moving[-1] == length and updates[-1] == (length, "1/1 genes")
    assert any(m.startswith("predict: gene TANGO2 ") and "written (1/1)" in m for m in records), records


def test_store_and_master_join_in_pyarrow_and_old_int32_stores_read(tmp_path: Path, keras_store: Path, chr22_dataset: Path) -> None:
    """Shared columns have one Arrow type in every table (``position`` int64, ``gene_id`` large_string): pyarrow joins
    a store and ``master/`` on (gene_id, position) as they are; a store written with int32 positions still scans."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    master = pads.dataset(sorted((chr22_dataset / "master").glob("*.parquet"))).to_table(
        columns=["gene_id", "position", "donor_score", "acceptor_score"])
    store = pads.dataset(keras_store).to_table()
    assert store.schema.field("position").type == master.schema.field("position").type == pa.int64()
    assert store.schema.field("gene_id").type == master.schema.field("gene_id").type == pa.large_string()
    joined = master.join(store, keys=["gene_id", "position"])
    assert joined.num_rows == master.num_rows > 0
    np.testing.assert_array_equal(joined["donor_score"].to_numpy(), joined["donor"].to_numpy())
    # a store of both kinds of files (int32 from before, int64 now) reads as one Int64 table
    old = shutil.copytree(keras_store, tmp_path / "old")
    first = sorted(old.glob("*.parquet"))[0]
    t = pq.read_table(first)
    t = t.set_column(t.schema.get_field_index("position"), "position", t["position"].cast(pa.int32()))
    pq.write_table(t, first)
    df = PredictionStore(old).scan().collect()
    assert df.schema["position"] == pl.Int64 and df.height == pads.dataset(keras_store).count_rows()
