"""``variants --model``: the alternate track's features from the alternate sequence, the stores checked
against the card, and the MetaSpliceAI key written beside SpliceAI's (chr22 bundle, Keras store)."""

from __future__ import annotations

import numpy as np
import pysam
import pytest

from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.cli.main import main
from meta_spliceai.dataset.rows import position_features
from meta_spliceai.errors import ConfigMismatchError
from meta_spliceai.metamodel.card import TO_STORE
from meta_spliceai.metamodel.trainset import frame_matrix
from meta_spliceai.reference.genome import Genome, reverse_complement
from meta_spliceai.variants.corrected import MetaScorer
from meta_spliceai.variants.deltas import Record
from meta_spliceai.variants.transcripts import load_transcripts
from meta_spliceai.variants.vcf import variants

D = 50


@pytest.fixture(scope="module")
def scorer(chr22, chr22_model, keras_store):
    gtf = chr22 / "annotation.gtf"
    genome, table = Genome(chr22 / "genome.fa.gz"), load_transcripts(str(gtf))
    return MetaScorer.open(chr22_model[0], keras_store, genome, table, gtf), genome, table


def _site(scorer, strand: str):
    """A gene of ``strand`` and the genome position of its best-scored donor (a position the meta-model corrects)."""
    meta, _, table = scorer
    for g, gid in enumerate(table.gene_ids):
        gene = meta.genes[str(gid)]
        if gene["strand"] != strand or not meta.stores[0].has(str(gid)):
            continue
        track = meta.stores[0].read(str(gid))
        p = int(np.argmax(track[:, 2]))
        if track[p, 2] > 0.5 and 2 * D < p < track.shape[0] - 2 * D:
            q = int(gene["start"]) + p if strand == "+" else int(gene["end"]) - p
            return g, gene, track, q
    raise AssertionError(f"no {strand} gene with a confident donor")


@pytest.mark.parametrize("strand", ["+", "-"])
def test_alternate_features_read_the_alternate_sequence(scorer, strand):
    """An SNV 2 nt from a corrected donor changes the k-mer counts there: with the scores held equal, the
    alternate window's corrections differ from the reference's, and equal those of the alternate gene sequence."""
    meta, genome, table = scorer
    g, gene, track, site = _site(scorer, strand)
    pos = site + 2
    ref = genome.fetch("22", pos - 1, pos)
    alt = "A" if ref != "A" else "C"
    q = np.arange(pos - D, pos + D + 1)
    idx = int(gene["end"]) - q if strand == "-" else q - int(gene["start"])
    y = track[idx].copy()  # the store's scores as both windows: only the sequence differs
    (got,) = meta.correct_jobs(table, [(g, pos, ref, alt, [(y, y)])], D)
    ref_c, alt_c = got
    np.testing.assert_allclose(ref_c, _long_way(meta, genome, gene, track, pos, ref, ref), atol=1e-6)
    np.testing.assert_allclose(alt_c, _long_way(meta, genome, gene, track, pos, ref, alt), atol=1e-6)
    # the donor's features: the alternate's k-mer counts are those of the alternate sequence, not the reference's
    g_data = meta._gene(str(table.gene_ids[g]))
    p = np.array([int(np.argmax(track[:, 2]))])
    a = int(gene["end"]) - pos if strand == "-" else pos - int(gene["start"])
    allele = reverse_complement(alt) if strand == "-" else alt
    f_ref = meta._features(gene, g_data, p, 0, a, ref, allele)[0][0]
    f_alt = meta._features(gene, g_data, p, 1, a, ref, allele)[0][0]
    names = meta.loaded.model.features
    kmers = [i for i, c in enumerate(names) if "mer_" in c]
    changed = [i for i in kmers if f_ref[i] != f_alt[i]]
    assert changed and all(abs(f_ref[i] - f_alt[i]) <= 3 for i in changed)  # an SNV changes <= 3 3-mers
    cfg = meta.corrector.cfg
    flank = cfg.kmer_window // 2 + max(cfg.kmer_sizes)
    start, end = int(gene["start"]), int(gene["end"])
    fwd = genome.fetch("22", start - 1 - flank, pos - 1) + alt + genome.fetch("22", pos, end + flank)
    want = position_features(gene, track, p, reverse_complement(fwd) if strand == "-" else fwd, flank, cfg)
    np.testing.assert_array_equal(f_alt, frame_matrix(want, names, meta.loaded.model.categories)[0])


@pytest.mark.parametrize("strand,kind", [("+", "insertion"), ("+", "deletion"), ("-", "insertion"), ("-", "deletion")])
def test_indel_alternate_sequence_is_shifted_right_of_the_allele(scorer, strand, kind):
    """Right of an indel (transcription orientation) a position reads the alternate sequence at its shifted place."""
    meta, genome, table = scorer
    g, gene, track, site = _site(scorer, strand)
    pos = site - 20 if strand == "+" else site + 20  # upstream of the donor in transcription orientation
    ref = genome.fetch("22", pos - 1, pos + (3 if kind == "deletion" else 0))
    alt = ref[0] + "GATTACA" if kind == "insertion" else ref[0]
    q = np.arange(pos - D, pos + D + 1)
    idx = int(gene["end"]) - q if strand == "-" else q - int(gene["start"])
    y = track[idx].copy()
    (got,) = meta.correct_jobs(table, [(g, pos, ref, alt, [(y, y)])], D)
    np.testing.assert_allclose(got[1], _long_way(meta, genome, gene, track, pos, ref, alt), atol=1e-6)


def test_a_position_crossing_the_floor_is_corrected_in_both_alleles(scorer):
    """Where only the alternate reaches the floor, the reference is corrected there too (one function for both
    alleles): its value is the meta-model's on the reference features, not the base score it had below the floor."""
    meta, genome, table = scorer
    g, gene, track, site = _site(scorer, "+")
    pos = site + 2
    ref = genome.fetch("22", pos - 1, pos)
    alt = "A" if ref != "A" else "C"
    q = np.arange(pos - D, pos + D + 1)
    idx = q - int(gene["start"])
    y = track[idx].copy()
    floor = meta.corrector.floor
    low = [j for j in range(2 * D + 1) if j != D and max(y[j, 1], y[j, 2]) < floor / 10]
    assert low, "no position of the window below the floor"
    j = low[len(low) // 2]
    y_alt = y.copy()
    y_alt[j] = (0.6, 0.0, 0.4)  # only the alternate fires at j
    (same,) = meta.correct_jobs(table, [(g, pos, ref, alt, [(y, y)])], D)
    (got,) = meta.correct_jobs(table, [(g, pos, ref, alt, [(y, y_alt)])], D)
    np.testing.assert_array_equal(same[0][j], y[j])  # below the floor in both alleles: the base score
    others = np.arange(2 * D + 1) != j
    np.testing.assert_array_equal(got[0][others], same[0][others])  # the reference's other corrections unchanged
    g_data = meta._gene(str(table.gene_ids[g]))
    X = meta._features(gene, g_data, np.array([idx[j]]), 0, int(idx[D]), ref, alt)[0]
    np.testing.assert_allclose(got[0][j], meta.loaded.model.predict(X)[0, TO_STORE], atol=1e-6)
    assert not np.allclose(got[0][j], y[j])


def _long_way(meta: MetaScorer, genome: Genome, gene, track, pos: int, ref: str, alt: str) -> np.ndarray:
    """The corrected window (scores unchanged) the long way: the whole transcription-oriented alternate gene sequence, each position read at its own
    place in it (upstream of the allele unshifted, downstream shifted by len(ALT) - len(REF))."""
    cfg = meta.corrector.cfg
    flank = cfg.kmer_window // 2 + max(cfg.kmer_sizes)
    start, end, minus = int(gene["start"]), int(gene["end"]), gene["strand"] == "-"
    oriented = genome.fetch("22", start - 1 - flank, end + flank)
    oriented = reverse_complement(oriented) if minus else oriented
    a = end - (pos + len(ref) - 1) if minus else pos - start  # allele's first gene position
    allele = reverse_complement(alt) if minus else alt
    assert oriented[flank + a: flank + a + len(ref)] == (reverse_complement(ref) if minus else ref)
    seq = oriented[: flank + a] + allele + oriented[flank + a + len(ref):]
    q = np.arange(pos - D, pos + D + 1)
    idx = end - q if minus else q - start
    keep = np.flatnonzero(np.maximum(track[idx, 1], track[idx, 2]) >= meta.corrector.floor)
    window = track[idx].copy()
    for down in (False, True):
        sel = keep[(idx[keep] >= a + len(ref)) == down]
        if not sel.size:
            continue
        sel = sel[np.argsort(idx[sel])]
        off = flank + (len(alt) - len(ref) if down else 0)
        feats = position_features(gene, track, idx[sel], seq, off, cfg)
        X = frame_matrix(feats, meta.loaded.model.features, meta.loaded.model.categories)
        window[sel] = meta.loaded.model.predict(X)[:, TO_STORE]
    return window


def test_store_count_and_identity_refused(tmp_path, chr22, chr22_model, keras_store, scorer, capsys):
    _, genome, table = scorer
    gtf = chr22 / "annotation.gtf"
    with pytest.raises(ConfigMismatchError, match=r"trained on 1 base model\(s\) \(spliceai\) but 2 prediction store"):
        MetaScorer.open(chr22_model[0], [keras_store, keras_store], genome, table, gtf)
    other = PredictionStore(tmp_path / "other", {"base_model": "openspliceai", "version": "x", "digest": "y",
                                                  "precision": "float32"})
    other.write("TANGO2", np.full((10, 3), 1 / 3, dtype=np.float32))
    with pytest.raises(ConfigMismatchError, match=r"store .*other was made by another base model"):
        MetaScorer.open(chr22_model[0], [other.path], genome, table, gtf)
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=22>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    rc = main(["variants", "-I", str(vcf), "-O", str(tmp_path / "o.vcf"), "-R", str(chr22 / "genome.fa.gz"), "-A",
               str(gtf), "--model", str(chr22_model[0]), "--predictions", str(keras_store), str(keras_store)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "but 2 prediction store(s) are given" in err


def test_variants_writes_both_keys(tmp_path, chr22, chr22_model, keras_store, scorer):
    """Three records at a confident donor: both keys, the SpliceAI one as without --model."""
    meta, genome, _ = scorer
    _, gene, _, site = _site(scorer, "+")
    recs = []
    for p in (site - 1, site + 1, site + 2):
        r = genome.fetch("22", p - 1, p)
        recs.append(f"22\t{p}\t.\t{r}\t{'A' if r != 'A' else 'G'}\t.\t.\t.")
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=22>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "\n".join(recs) + "\n")
    gtf = str(chr22 / "annotation.gtf")
    kw = dict(input=vcf, reference=chr22 / "genome.fa.gz", annotation=gtf, progress=False)
    variants(output=tmp_path / "plain.vcf", **kw)
    variants(output=tmp_path / "meta.vcf", model=chr22_model[0], predictions=[keras_store], **kw)
    plain = [dict(r.info) for r in pysam.VariantFile(str(tmp_path / "plain.vcf"))]
    both = [dict(r.info) for r in pysam.VariantFile(str(tmp_path / "meta.vcf"))]
    assert [b["SpliceAI"] for b in both] == [p["SpliceAI"] for p in plain]
    assert all(len(b["MetaSpliceAI"]) == len(b["SpliceAI"]) for b in both)
    assert [[e.split("|")[:2] for e in b["MetaSpliceAI"]] for b in both] == [[e.split("|")[:2] for e in b["SpliceAI"]]
                                                                           for b in both]
    assert any(b["MetaSpliceAI"] != b["SpliceAI"] for b in both)  # the corrected tracks are not the base model's


@pytest.fixture(scope="module")
def stacked_scorer(tmp_path_factory, chr22, keras_store):
    """A stacked card (Keras SpliceAI + a perturbed store stamped openspliceai, as tests/test_stacking.py makes)
    and its scorer, whose second model is a tiny random SpliceAI-shaped network (plumbing: its windows are
    computed here, as OpenSpliceAI's would be)."""
    from conftest import TINY_XGB
    from test_stacking import OTHER_IDENTITY, _build, _perturbed

    from meta_spliceai.basemodel.ensemble import random_model
    from meta_spliceai.metamodel.training import train

    root = tmp_path_factory.mktemp("stacked-variants")
    src = PredictionStore(keras_store)
    other = PredictionStore(root / "other", OTHER_IDENTITY)
    rng = np.random.default_rng(3)
    for gid in sorted(src.finished_genes()):
        other.write(gid, _perturbed(src.read(gid), rng))
    _build(root / "build", chr22, [keras_store, other.path], kmer_sizes=(3,))
    train(dataset=root / "build", out_dir=root / "model", model=TINY_XGB, bootstrap=0, progress=False)
    gtf = chr22 / "annotation.gtf"
    genome, table = Genome(chr22 / "genome.fa.gz"), load_transcripts(str(gtf))
    meta = MetaScorer.open(root / "model", [keras_store, other.path], genome, table, gtf)
    meta._models[1] = random_model(1, seed=5)
    return meta, genome, table, random_model(1, seed=1)


def test_stacked_variants_use_every_models_windows(stacked_scorer):
    """Each card model's windows are computed (the cone engine of the second, SpliceAI's tracks reused for the
    first), spliced into its own store's track, and the stacked correction equals the long way."""
    from meta_spliceai.variants.deltas import (align_alt, compute_tracks, cone_engine, cone_tracks, plan_records,
                                               score_records)

    meta, genome, table, base = stacked_scorer
    g = next(i for i, gid in enumerate(table.gene_ids) if meta.genes[str(gid)]["strand"] == "+"
             and meta.stores[0].has(str(gid)))
    gene = meta.genes[str(table.gene_ids[g])]
    track = meta.stores[0].read(str(table.gene_ids[g]))
    site = int(gene["start"]) + int(np.argmax(track[:, 2]))
    recs = [Record("22", p, genome.fetch("22", p - 1, p), ("T" if genome.fetch("22", p - 1, p) != "T" else "G",))
            for p in (site + 3,)]
    entries, corrected, _ = score_records(recs, table, genome, base, distance=D, mask=0, cone=cone_engine(base, "onnx"),
                                          correct=meta)
    assert [len(c) for c in corrected] == [len(e) for e in entries] and all(corrected)
    plan, windows = plan_records(recs, table, genome, D)
    cone_tracks(plan, recs, table, genome, cone_engine(base, "onnx"), distance=D)
    per_job = meta.model_tracks(plan, recs, windows, table, genome, base.metadata(), distance=D, cone=True,
                                share_reference=True)
    other = plan_records(recs, table, genome, D)[0]
    compute_tracks(other, recs, windows, table, genome, meta._models[1], distance=D, share_reference=False)
    for job, tracks, o in zip(plan.jobs, per_job, other.jobs):
        np.testing.assert_allclose(tracks[1][1], o.alt_track, atol=2e-6)  # cone engine == full windows
    # the long way for the first job: both stores' tracks with their windows, the alternate gene sequence
    job, (t_first, t_second) = plan.jobs[0], per_job[0]
    rec = recs[job.record]
    idx = np.arange(rec.pos - D, rec.pos + D + 1) - int(gene["start"])
    full = [s.read(str(table.gene_ids[g])) for s in meta.stores]
    for t, w in zip(full, (t_first[1], align_alt(t_second[1], 2 * D + 1, 1, 1))):
        t[idx] = w
    positions = np.sort(idx[meta.corrector.scored([t[idx] for t in full])])
    seq, off = meta.corrector.sequence(gene)
    a = rec.pos - int(gene["start"])
    seq = seq[: off + a] + rec.alts[0] + seq[off + a + 1:]
    feats = meta.corrector.features(gene, full, positions, sequence=(seq, off))
    want = full[0][idx].copy()
    X = frame_matrix(feats, meta.loaded.model.features, meta.loaded.model.categories)
    want[np.searchsorted(idx, positions)] = meta.loaded.model.predict(X)[:, TO_STORE]
    todo = [(job.gene, rec.pos, rec.ref, rec.alts[0], [(y, align_alt(z, 2 * D + 1, 1, 1)) for y, z in per_job[0]])]
    np.testing.assert_allclose(meta.correct_jobs(table, todo, D)[0][1], want, atol=1e-6)


def test_cone_engine_of_openspliceai_equals_its_windows(chr22):
    """A card's OpenSpliceAI is scored by its own cone engine: the same tracks as its full windows (one member)."""
    from pathlib import Path

    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.variants.deltas import compute_tracks, cone_engine, cone_tracks, plan_records

    weights = Path(__file__).resolve().parents[2] / "shared" / "models" / "openspliceai-mane-10000nt"
    model = load_base_model("openspliceai", weights=weights / "model_10000nt_rs10.pt", device="cpu", runtime="onnx")
    genome, table = Genome(chr22 / "genome.fa.gz"), load_transcripts(str(chr22 / "annotation.gtf"))
    g = next(i for i, s in enumerate(table.strands) if s == "-")
    pos = int(table.boundaries[g][1])
    ref = genome.fetch("22", pos - 1, pos)
    recs = [Record("22", pos, ref, ("C" if ref != "C" else "T", ref + "GT"))]
    a, windows = plan_records(recs, table, genome, D)
    b = plan_records(recs, table, genome, D)[0]
    cone_tracks(a, recs, table, genome, cone_engine(model, "onnx"), distance=D)
    compute_tracks(b, recs, windows, table, genome, model, distance=D, share_reference=False)
    assert len(a.jobs) == len(b.jobs) >= 2
    for x, y in zip(a.jobs, b.jobs):
        np.testing.assert_allclose(x.ref_track, y.ref_track, atol=2e-6)
        np.testing.assert_allclose(x.alt_track, y.alt_track, atol=2e-6)


@pytest.fixture(scope="module")
def pangolin_scorer(tmp_path_factory, chr22, keras_store):
    """A stacked card on Keras SpliceAI + a Pangolin store (plumbing: tissue columns made from the Keras tracks,
    stamped with the real Pangolin's identity, so its windows are computed here by the real networks)."""
    from pathlib import Path

    from conftest import TINY_XGB
    from test_stacking import _build

    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.metamodel.training import train

    weights = Path(__file__).resolve().parents[2] / "shared" / "models" / "pangolin-v2"
    pangolin = load_base_model("pangolin", weights=weights, device="cpu")
    root = tmp_path_factory.mktemp("pangolin-variants")
    src = PredictionStore(keras_store)
    store = PredictionStore(root / "pangolin", pangolin.metadata())
    rng = np.random.default_rng(7)
    for gid in sorted(src.finished_genes()):
        p = src.read(gid)
        site = np.maximum(p[:, 1], p[:, 2])
        cols = []
        for _ in range(4):  # heart, liver, brain, testis: P(splice) and usage
            cols += [np.clip(site * rng.uniform(0.6, 1.2, len(p)), 0, 1), rng.uniform(0, 1, len(p)) * (site > 0.1)]
        store.write(gid, np.column_stack(cols).astype(np.float32))
    _build(root / "build", chr22, [keras_store, store.path], kmer_sizes=(3,))
    train(dataset=root / "build", out_dir=root / "model", model=TINY_XGB, bootstrap=0, progress=False)
    gtf = chr22 / "annotation.gtf"
    genome, table = Genome(chr22 / "genome.fa.gz"), load_transcripts(str(gtf))
    meta = MetaScorer.open(root / "model", [keras_store, store.path], genome, table, gtf, weights={"pangolin": weights})
    return meta, genome, table, pangolin


@pytest.mark.slow
def test_stacked_variants_with_pangolin_score_its_windows(pangolin_scorer):
    """A card with Pangolin (per-tissue columns): its cone engine's reference and alternate windows equal the real
    networks' full passes over SpliceAI's masked windows (8 columns, combined per tissue; a deletion aligned with
    zero rows), and the stacked correction of an SNV and a deletion beside a donor is written."""
    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.variants.deltas import cone_engine, masked_window, plan_records, score_records

    meta, genome, table, pangolin = pangolin_scorer
    assert meta.names == ["spliceai", "pangolin"]
    g = next(i for i, gid in enumerate(table.gene_ids) if meta.genes[str(gid)]["strand"] == "+"
             and meta.stores[0].has(str(gid)))
    gene = meta.genes[str(table.gene_ids[g])]
    site = int(gene["start"]) + int(np.argmax(meta.stores[0].read(str(table.gene_ids[g]))[:, 2]))
    p = site + 4
    ref1, ref3 = genome.fetch("22", p - 1, p), genome.fetch("22", p - 1, p + 2)
    recs = [Record("22", p, ref1, ("T" if ref1 != "T" else "G",)), Record("22", p, ref3, (ref3[0],))]
    base = load_base_model("spliceai", device="cpu")
    entries, corrected, _ = score_records(recs, table, genome, base, distance=D, mask=0, cone=cone_engine(base, "onnx"),
                                          correct=meta)
    assert all(corrected) and [len(c) for c in corrected] == [len(e) for e in entries]
    plan, windows = plan_records(recs, table, genome, D)
    per_job = meta.model_tracks(plan, recs, windows, table, genome, base.metadata(), distance=D, cone=True,
                                share_reference=False)
    for job, (_, (y_ref, y_alt)) in zip(plan.jobs, per_job):
        rec = recs[job.record]
        x_ref = masked_window(windows[job.record], rec.pos, table, job.gene)
        x_alt = x_ref[: len(x_ref) // 2] + rec.alts[0] + x_ref[len(x_ref) // 2 + len(rec.ref):]
        want_ref, want_alt = pangolin.predict([x_ref, x_alt])
        assert y_ref.shape == (2 * D + 1, 8)
        np.testing.assert_allclose(y_ref, want_ref, atol=2e-6)  # cone engine == full windows
        np.testing.assert_allclose(y_alt, want_alt, atol=2e-6)
    from meta_spliceai.variants.deltas import align_alt

    aligned = align_alt(per_job[1][1][1], 2 * D + 1, 3, 1)
    assert aligned.shape == (2 * D + 1, 8) and not aligned[D + 1: D + 3].any()  # the deleted bases: zero rows
    assert corrected[1] != entries[1] or corrected[0] != entries[0]  # the corrected deltas are the meta-model's
