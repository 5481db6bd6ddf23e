"""Seed models for the model-level fuzzer (fuzz_models.py): LCE-converted models (the
runtime tests' matrices, cached by tests/runtime/runtime_models.py: converting needs
TensorFlow + LCE once) and hand-built single-op files for every bitlite op.

    python runtime/fuzz/seeds.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "runtime", ROOT / "tests" / "runtime"):
    sys.path.insert(0, str(p))


def seed_models() -> dict[str, bytes]:
    import hostile_models as hm
    import numpy as np
    import packed_models as pm
    import runtime_models as rm

    import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    seeds = {
        "lce_single_input": rm.single_input_model(),
        "lce_main": rm.convert_cached(rm.build_main_model, seed=1),
        "lce_groups": rm.convert_cached(rm.build_groups_model, seed=2),
        "quantize": hm.sparse_quantize(sparse=False),
        "dequantize": hm.sparse_dequantize(sparse=False),
        "bconv": hm.sparse_bconv(sparse=False),
        "maxpool": hm.sparse_maxpool(sparse=False),
        "dequantize_int8": hm.dequantize_int8(3, 0.25),
        "bconv_int8": hm.bconv_int8_output(0.1, -3),
    }
    try:
        import tensorflow as tf

        seeds["lce_int8"] = rm.convert_cached(rm.build_int8_model, seed=3,
                                              inference_input_type=tf.int8,
                                              inference_output_type=tf.int8)
    except Exception as e:  # the int8 conversion needs TensorFlow's graph path
        print(f"seeds: int8 model skipped: {e}", file=sys.stderr)
    rng = np.random.default_rng(0)
    for bits, shape, axis in ((2, (6, 20), 0), (3, (4, 3, 3, 5), 3), (1, (33,), 0)):
        spec = pm.random_spec(rng, bits, shape, axis)
        seeds[f"decode_k{bits}"] = pm.packed_model(spec)
    return seeds


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python runtime/fuzz/seeds.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, content in seed_models().items():
        (out / f"{name}.tflite").write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
