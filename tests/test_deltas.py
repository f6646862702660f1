"""Delta scores: SpliceAI's window padding, indel alignment, argmax and masking rules on made-up tracks."""

from __future__ import annotations

import numpy as np

from meta_spliceai.variants.deltas import (
    align_alt,
    delta_fields,
    masked_window,
    symbolic,
)
from meta_spliceai.variants.transcripts import TranscriptTable


def _table(start: int, end: int) -> TranscriptTable:
    return TranscriptTable(names=np.array(["G"], dtype=object), chroms=np.array(["1"], dtype=object),
                           strands=np.array(["+"], dtype=object), tx_starts=np.array([start]), tx_ends=np.array([end]),
                           boundaries=[np.array([start, end])])


def test_masked_window_pads_outside_the_transcript():
    seq = "ACGT" * 5 + "A"  # 21 nt centred on pos 1000 (positions 990..1010)
    assert masked_window(seq, 1000, _table(995, 1005), 0) == "N" * 5 + seq[5:16] + "N" * 5
    assert masked_window(seq, 1000, _table(1, 5000), 0) == seq


def test_indel_alignment():
    cov = 5
    y = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)  # deletion of 1 nt: cov - 1 outputs
    out = align_alt(y, cov, ref_len=2, alt_len=1)
    assert out.shape == (5, 3) and np.array_equal(out[3], [0, 0, 0]) and np.array_equal(out[:3], y[:3])
    y = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)  # insertion of 2 nt: cov + 2 outputs
    out = align_alt(y, cov, ref_len=1, alt_len=3)
    assert out.shape == (5, 3) and np.array_equal(out[2], y[2:5].max(axis=0)) and np.array_equal(out[3:], y[5:])


def test_gain_loss_positions_and_mask():
    cov = 5
    ref = np.zeros((cov, 3), dtype=np.float32)
    alt = ref.copy()
    alt[4, 1] = 0.8  # acceptor gain 2 nt downstream
    ref[1, 2] = 0.6  # donor loss 1 nt upstream
    assert delta_fields(ref, alt, cov, boundary=7, mask=False) == "0.80|0.00|0.00|0.60|2|-2|-2|-1"  # ties (all zero): the first position
    # -M 1: a gain at an annotated boundary and a loss away from one are masked
    assert delta_fields(ref, alt, cov, boundary=2, mask=True) == "0.00|0.00|0.00|0.00|2|-2|-2|-1"
    assert delta_fields(ref, alt, cov, boundary=-1, mask=True).startswith("0.80|0.00|0.00|0.60|")


def test_symbolic_alleles():
    assert all(symbolic(a) for a in ("<DEL>", "*", ".", "G]17:198982]", "-"))
    assert not any(symbolic(a) for a in ("A", "ACGT"))
