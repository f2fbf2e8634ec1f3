"""Trajectory synthesis: SFT data with trials and self-correction, made by running the RL agent loop.

* :mod:`.driver`: the real ``ToolMasterAgentLoop`` outside verl's workers, with a teacher as its LLM server.
* :mod:`.scripted`: offline teacher playing gold traces with a failed probe (:mod:`.probes`, :mod:`.templates`).
* :mod:`.llm`: teacher behind any OpenAI-compatible endpoint (retries with backoff, chat or completions API).
* :mod:`.quality`: the checks a trajectory must pass (RL scorer, protocol round trip, trials).
* :mod:`.runner`, :mod:`.journal`: bounded concurrency, resumable JSONL journal, report, SFT parquet.
* ``python -m verl_toolmaster.synth {scripted,llm} --data RL.parquet --out SFT.parquet``: the CLI (:mod:`.cli`).

Importing this package imports nothing heavy; the modules above load verl when used.
"""
