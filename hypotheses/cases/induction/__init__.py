"""A 2-layer attention-only induction model (trained by scripts/train_induction.py),
its synthetic data, and hypotheses about it (`hypotheses`, specs in `specs/`)."""

from hypotheses.cases.induction.model import (BOS, CHECKPOINT, D_VOCAB, SEG_LEN, SEQ_LEN, Sequences, heads,
                                              load_model, make_dataset, make_sequences)

__all__ = ["BOS", "CHECKPOINT", "D_VOCAB", "SEG_LEN", "SEQ_LEN", "Sequences", "heads", "load_model", "make_dataset",
           "make_sequences"]
