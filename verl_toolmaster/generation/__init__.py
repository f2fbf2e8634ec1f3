"""Local generation shared by the ``hfcpu`` rollout server and the evaluation harness's ``hf`` policy.

:mod:`.batcher` holds the engine (imports torch); the defaults live here so option parsers can show them
without importing it. They were chosen with ``python bench/generation.py`` (docs/cpu_backend.md).
"""

DEFAULT_MAX_NUM_SEQS = 16  # rows decoded together
DEFAULT_MAX_BATCH_TOKENS = 65536  # padded KV cache a new row may grow the batch to (rows x longest row)
DEFAULT_PREFIX_CACHE_TOKENS = 16384  # tokens of finished sequences kept for reuse by prompts that extend them (0: off)
