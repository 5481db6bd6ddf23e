"""runtime/fuzz/fuzz_models.py, the model-level fuzzer's mutator and runner (with the
normal build of the delegate; benchmarks/fuzz.py runs it with the sanitized one)."""

from __future__ import annotations

import sys
from pathlib import Path

import hostile_models as hm
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime" / "fuzz"))
import fuzz_models as fm  # noqa: E402

OUTCOMES = {"ran", "refused", "invoke_error", "too_large"}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    for name, model in (("bconv", hm.sparse_bconv(sparse=False)),
                        ("quantize", hm.sparse_quantize(sparse=False)),
                        ("dequantize_int8", hm.dequantize_int8(3, 0.25))):
        (folder / f"{name}.tflite").write_bytes(model)
    return fm.load_seeds(folder)


def test_executions_are_reproducible_and_mutated(seeds):
    models, weights = seeds
    first = [fm.make_model(models, weights, 7, i) for i in range(40)]
    assert first == [fm.make_model(models, weights, 7, i) for i in range(40)]
    originals = {m.content for m in models}
    assert sum(m not in originals for m in first) >= 30  # most executions mutate
    assert len(set(first)) >= 30
    for m in models:  # every mutation was undone: the seeds still pack to themselves
        assert fm.pack(m.model) == fm.pack(fm.load(m.content))


def test_seeds_run_and_mutants_fail_only_at_construction(seeds, runtime_library):
    import bitlite_runtime
    from bitlite_runtime import hosts

    models, weights = seeds
    runtime = hosts.resolve(None)
    delegate = bitlite_runtime.delegate(host=runtime.name)
    rng = np.random.default_rng(0)
    assert {fm.run_model(m.content, runtime.interpreter_class, delegate, rng)
            for m in models} == {"ran"}
    outcomes = [fm.run_model(fm.make_model(models, weights, 3, i), runtime.interpreter_class,
                             delegate, rng) for i in range(60)]
    assert set(outcomes) <= OUTCOMES, outcomes  # never a bitlite op failing at invoke
    assert "refused" in outcomes and "ran" in outcomes
