"""The paren balancer: our own trained model, the externally trained one studied by
the original causal scrubbing work, their data, and hypotheses (`hypotheses`, specs in `specs/`)."""

from hypotheses.cases.paren.model import (CHECKPOINT, CLOSE, CONFIG, DATA_FILES, END, ENV_VAR, MAX_LEN, MIX,
                                          MODEL_FILE, N_CTX, OPEN, PAD, REPO_DIR, SHA256, SHARED_DIR, START,
                                          ExternalNotFound, accuracy, balanced_from_tokens, classify, count_diff,
                                          detokenize, elevation_never_negative, external_available,
                                          first_goes_negative, first_negative_index, from_tl_state_dict,
                                          is_balanced, is_equal_count, load_external_data, load_external_model,
                                          load_model, make_dataset, sha256, shared_dir, starts_with_open, tokenize,
                                          trim)

__all__ = ["CHECKPOINT", "CLOSE", "CONFIG", "DATA_FILES", "END", "ENV_VAR", "MAX_LEN", "MIX", "MODEL_FILE", "N_CTX",
           "OPEN", "PAD", "REPO_DIR", "SHA256", "SHARED_DIR", "START", "ExternalNotFound", "accuracy",
           "balanced_from_tokens", "classify", "count_diff", "detokenize", "elevation_never_negative",
           "external_available", "first_goes_negative", "first_negative_index", "from_tl_state_dict", "is_balanced",
           "is_equal_count", "load_external_data", "load_external_model", "load_model", "make_dataset", "sha256",
           "shared_dir", "starts_with_open", "tokenize", "trim"]
