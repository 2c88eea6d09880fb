"""The CPU backend on the tiny model: batched sampling with stop strings, log-probs, adapters."""

from __future__ import annotations

import peft  # noqa: F401  (a required dependency: a broken install fails here)
import pytest
import torch

from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.agent.protocol import STOP  # noqa: E402
from minisearch.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(toy_run):
    return toy_run.root / "model"


@pytest.fixture(scope="module")
def backend(model_dir):
    return CpuBackend(model_dir, lora_rank=4)


def moved_lora(backend):
    """LoRA B starts at zero: move it so the adapter changes the model's output."""
    with torch.no_grad():
        for name, p in backend.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    return backend


def test_generate_shapes_and_logprobs_match_recomputation(backend):
    tok = backend.tokenizer
    prompts = [tok("The river")["input_ids"], tok("Ostrivel is a city of")["input_ids"], [tok.eos_token_id]]
    torch.manual_seed(0)
    outs = backend.generate(prompts, n=3, max_new_tokens=12, stop=STOP)
    assert [len(o) for o in outs] == [3, 3, 3]
    for prompt, group in zip(prompts, outs):
        for c in group:
            assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
            assert c.finish in {"stop", "length"} and all(lp <= 0 for lp in c.logprobs)
            again = backend.token_logprobs([prompt + c.token_ids])[0][len(prompt) - 1:]
            assert torch.allclose(again, torch.tensor(c.logprobs), atol=1e-4)


def test_rows_are_cut_at_the_first_stop_string_or_end_of_turn(backend):
    tok = backend.tokenizer
    ids = tok("<think>x</think><search>Velk</search> more <answer>y</answer>", add_special_tokens=False)["input_ids"]
    c = backend._completion(ids, [0.0] * len(ids), list(STOP), limit=100)
    assert c.text == "<think>x</think><search>Velk</search>" and c.finish == "stop"
    ids = tok("plain words", add_special_tokens=False)["input_ids"] + [tok.eos_token_id] + [5, 6]
    c = backend._completion(ids, [0.0] * len(ids), list(STOP), limit=100)
    assert c.token_ids[-1] == tok.eos_token_id and c.finish == "stop"
    ids = tok("plain words", add_special_tokens=False)["input_ids"]
    assert backend._completion(ids, [0.0] * len(ids), list(STOP), limit=len(ids)).finish == "length"


def test_greedy_is_deterministic(backend):
    prompt = backend.tokenizer("The city")["input_ids"]
    a = backend.generate([prompt], n=1, max_new_tokens=8, temperature=0)[0][0]
    b = backend.generate([prompt], n=1, max_new_tokens=8, temperature=0)[0][0]
    assert a.token_ids == b.token_ids


def test_adapter_saves_and_reloads(model_dir, tmp_path):
    first = moved_lora(CpuBackend(model_dir, lora_rank=4))
    seq = [first.tokenizer("The river flows")["input_ids"]]
    base = CpuBackend(model_dir).token_logprobs(seq)[0]
    tuned = first.token_logprobs(seq)[0]
    assert not torch.allclose(base, tuned)
    first.save_adapter(tmp_path / "adapter")
    again = CpuBackend(model_dir, adapter=tmp_path / "adapter")
    assert torch.allclose(again.token_logprobs(seq)[0], tuned, atol=1e-6)


def test_token_logprobs_can_carry_gradients(backend):
    seq = [backend.tokenizer("The river flows")["input_ids"]]
    lp = backend.token_logprobs(seq, grad=True)[0]
    lp.sum().backward()
    grads = [p.grad for n, p in backend.model.named_parameters() if "lora_" in n and p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    backend.model.zero_grad()


def test_missing_model_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="minisearch init"):
        CpuBackend(tmp_path / "nothing")


def test_gpu_backend_says_what_it_needs_without_cuda(model_dir):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from minisearch.agent.backends.gpu import GpuBackend

    with pytest.raises(UserError, match="needs a CUDA GPU"):
        GpuBackend(model_dir)
    from minisearch.agent.backends import load_backend

    with pytest.raises(UserError, match="trains LoRA only"):  # asked for what it cannot do, it says so first
        load_backend("gpu", model_dir, train_embeddings=True)


@pytest.mark.parametrize("train_embeddings", [True, False])
def test_tiny_model_adapter_trains_the_tied_embeddings_or_only_the_tag_rows(model_dir, tmp_path, train_embeddings):
    b = CpuBackend(model_dir, lora_rank=4, train_embeddings=train_embeddings)
    seq = [b.tokenizer("The river flows through Velk")["input_ids"]]
    emb, head = b.model.get_input_embeddings(), b.model.get_output_embeddings()
    before_in = emb(torch.tensor(seq)).detach().clone()
    opt = torch.optim.SGD([p for p in b.model.parameters() if p.requires_grad], lr=1.0)
    (-b.token_logprobs(seq, grad=True)[0].sum()).backward()
    opt.step()
    moved = (emb(torch.tensor(seq)) - before_in).abs().amax().item()
    assert (moved > 0) == train_embeddings  # ordinary words' rows move only with the whole matrix trained
    if train_embeddings:  # the output layer is the same (tied) matrix
        assert torch.equal(emb.modules_to_save["default"].weight, head.modules_to_save["default"].weight)
    b.save_adapter(tmp_path / "adapter")
    again = CpuBackend(model_dir, adapter=tmp_path / "adapter")
    assert torch.allclose(again.token_logprobs(seq)[0], b.token_logprobs(seq)[0], atol=1e-5)


@pytest.mark.parametrize("train_embeddings", [None, False])
def test_a_loaded_adapter_goes_on_training_its_embeddings_or_keeps_them_fixed(model_dir, tmp_path, train_embeddings):
    first = CpuBackend(model_dir, lora_rank=4, train_embeddings=True)
    first.save_adapter(tmp_path / "adapter")
    b = CpuBackend(model_dir, adapter=tmp_path / "adapter", train_embeddings=train_embeddings)
    seq = [b.tokenizer("The river flows through Velk")["input_ids"]]
    emb = b.model.get_input_embeddings()
    before = emb(torch.tensor(seq)).detach().clone()
    lora = {n: p.detach().clone() for n, p in b.model.named_parameters() if "lora_" in n}
    opt = torch.optim.SGD([p for p in b.model.parameters() if p.requires_grad], lr=1.0)
    (-b.token_logprobs(seq, grad=True)[0].sum()).backward()
    opt.step()
    moved = (emb(torch.tensor(seq)) - before).abs().amax().item()
    assert (moved > 0) == (train_embeddings is None)  # the tiny model's adapter trains them unless told not to
    assert any(not torch.equal(p, lora[n]) for n, p in b.model.named_parameters() if n in lora)  # LoRA learns


def test_an_adapter_that_does_not_fit_is_an_error_naming_its_keys(model_dir, tmp_path):
    """peft loads unknown keys as nothing; the backends refuse them and say which."""
    from safetensors.torch import load_file, save_file

    CpuBackend(model_dir, lora_rank=4).save_adapter(tmp_path / "adapter")
    path = tmp_path / "adapter" / "adapter_model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k in tensors if "q_proj.lora_A" in k)
    tensors[name.replace("q_proj", "qq_proj")] = tensors.pop(name)  # as if from another architecture
    save_file(tensors, str(path))
    with pytest.raises(UserError, match=r"does not fit this model: 1 missing \(e\.g\. .*q_proj.*1 unexpected"):
        CpuBackend(model_dir, adapter=tmp_path / "adapter")


def test_one_backend_switches_adapters_resets_and_closes(model_dir, tmp_path):
    first = moved_lora(CpuBackend(model_dir, lora_rank=4))
    first.save_adapter(tmp_path / "tuned")
    seq = [first.tokenizer("The river flows")["input_ids"]]
    tuned, base = first.token_logprobs(seq)[0], CpuBackend(model_dir).token_logprobs(seq)[0]
    with CpuBackend(model_dir, lora_rank=4) as b:
        b.use_adapter(tmp_path / "tuned")
        assert torch.allclose(b.token_logprobs(seq)[0], tuned, atol=1e-6)
        b.use_adapter(None)
        assert torch.allclose(b.token_logprobs(seq)[0], base, atol=1e-6)
        b.reset_adapter(seed=3)  # a fresh LoRA: B = 0, so the base's log-probs, and trainable again
        assert torch.allclose(b.token_logprobs(seq)[0], base, atol=1e-6)
        assert any(p.requires_grad for n, p in b.model.named_parameters() if "lora_" in n)
    assert b.model is None  # closed on leaving the block
