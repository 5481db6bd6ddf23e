"""pipeline.py312: tf-keras 2.16's float-bounded randint made to work on Python 3.12."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from pipeline import py312


def test_integral_random_takes_float_bounds_and_draws_the_same_as_ints():
    ours, plain = py312.IntegralRandom(5), py312.random.Random(5)
    drawn = [ours.randint(1, 1e9) for _ in range(5)]
    assert drawn == [plain.randint(1, 10**9) for _ in range(5)]
    assert all(type(v) is int and 1 <= v <= 10**9 for v in drawn)


def test_tf_utils_gets_the_patched_random_when_keras_loads_after_install():
    # A fresh process, so tf-keras is imported after the hook is in place; forced, so the
    # hook itself is exercised on Python 3.11 too. Then: seeded layers build (on 3.12 they
    # raised TypeError), and the same seed gives the same weights.
    script = textwrap.dedent("""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        from pipeline import py312
        py312.install(force=True)
        import tensorflow as tf
        from tf_keras.src.utils import tf_utils
        assert tf_utils.random.Random is py312.IntegralRandom, tf_utils.random
        weights = []
        for _ in range(2):
            tf.keras.utils.set_random_seed(3)
            layer = tf.keras.layers.Dense(4, kernel_initializer="glorot_uniform")
            layer.build((None, 3))
            weights.append(layer.kernel.numpy().tolist())
        assert weights[0] == weights[1]
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
