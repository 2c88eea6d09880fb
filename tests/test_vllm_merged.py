"""vLLM serves the merged agent (`make test-vllm`, on the CPU through `vllm-cpu`): the folder that
`minisearch export merged` writes loads as a plain model, no LoRA, and greedy it answers the
held-out questions token for token as the HF model of the same folder does (the whole turn loop,
stop strings kept). Skipped where vllm is not installed (the default test run)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from helpers import greedy_trajectories

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")


def test_vllm_answers_with_the_merged_folder_as_hf_does(finished_run, tmp_path):
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.backends.vllm_sampler import VllmSampler, before_engine
    from minisearch.cli import main
    from minisearch.jsonl import read_jsonl
    from minisearch.search import open_searcher

    merged = tmp_path / "agent"
    result = CliRunner().invoke(main, ["export", "merged", str(finished_run), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    tasks = list(read_jsonl(finished_run / "world" / "qa" / "dev.jsonl"))[:4]
    hf = CpuBackend(merged)
    before_engine()  # the test run has imported bm25s, hence numba
    sampler = VllmSampler(vllm.LLM(model=str(merged), max_model_len=1024, dtype="float32", seed=0))
    try:
        with open_searcher(finished_run / "index") as searcher:
            served = greedy_trajectories(sampler.generate, hf.tokenizer, searcher, tasks)
            local = greedy_trajectories(hf.generate, hf.tokenizer, searcher, tasks)
    finally:
        sampler.close()
    assert served == local
