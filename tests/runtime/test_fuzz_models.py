"""runtime/fuzz/fuzz_models.py, the model-level fuzzer's mutator and runner (with the
normal build of the delegate; benchmarks/fuzz.py runs it with the sanitized one)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import hostile_models as hm
import numpy as np
import pytest

from pipeline.tflite.rewrite import load, pack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runtime" / "fuzz"))
import fuzz_models as fm  # noqa: E402

OUTCOMES = {"ran", "malformed", "refused", "invoke_error", "too_large"}


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
        assert pack(copy.deepcopy(m.model)) == pack(load(m.content))


def test_packing_from_the_snapshot_equals_packing_whole(seeds, monkeypatch):
    """Seed.pack re-packs only the changed tables: the model it writes reads back as
    the object API's full pack of the same mutated tree does."""
    models, weights = seeds
    original, compared = fm.Seed.pack, []

    def both(self, changed):
        fast = original(self, changed)
        whole = pack(copy.deepcopy(self.model))  # a plain builder: nothing cached
        compared.append(pack(load(fast)) == pack(load(whole)) and fast != whole)
        return fast

    monkeypatch.setattr(fm.Seed, "pack", both)
    for i in range(150):
        fm.make_model(models, weights, 5, i)
    assert len(compared) > 100 and all(compared)


def test_seeds_run_and_mutants_fail_only_at_construction(seeds, runtime_library):
    models, weights = seeds
    rng = np.random.default_rng(0)
    assert {fm.run_model(m.content, None, rng) for m in models} == {"ran"}
    outcomes = [fm.run_model(fm.make_model(models, weights, 3, i), None, rng)
                for i in range(60)]
    assert set(outcomes) <= OUTCOMES, outcomes  # never a bitlite op failing at invoke
    assert "refused" in outcomes and "ran" in outcomes


def test_flexbuffer_mutation_the_library_cannot_write_is_rejected():
    """flexbuffers.Dumps fails on a float beyond float32 (what a byte mutation of the
    options can leave): the mutation is dropped; it killed a worker once (a 'crash' of
    the harness in fuzz_models.md)."""
    import random

    fbb = fm.flexbuffers.Builder()
    with fbb.Map():  # two 64-bit floats: whichever value changes, one stays unwritable
        for key in ("a", "b"):
            fbb.Key(key)
            fbb.Float(1.0e300, byte_width=8)
    options = bytes(fbb.Finish())
    assert fm.flexbuffers.Loads(options) == {"a": 1.0e300, "b": 1.0e300}
    assert all(fm._mutate_option_value(options, random.Random(i)) is None for i in range(20))
    assert fm._mutate_option_value(b"\x01\x02", random.Random(0)) is None  # not a map
    changed = fm._mutate_option_value(bytes(fm.flexbuffers.Dumps({"a": 1, "b": 2})),
                                      random.Random(1))
    assert changed is not None and fm.flexbuffers.Loads(changed) != {"a": 1, "b": 2}
