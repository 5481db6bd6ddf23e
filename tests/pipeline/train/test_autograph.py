"""pipeline.train.autograph: Keras 2 and larq are on autograph's do-not-convert list."""

import subprocess
import sys

SCRIPT = """
import pipeline
import larq, tf_keras
from tensorflow.python.autograph.core import config
from tensorflow.python.autograph.impl import conversion
from pipeline.train.autograph import skip_libraries

targets = (tf_keras.Model.train_step, larq.quantizers.ste_sign, larq.layers.QuantConv2D.call)
before = [conversion.is_allowlisted(f) for f in targets]
skip_libraries()
rules = len(config.CONVERSION_RULES)
skip_libraries()
print(before, [conversion.is_allowlisted(f) for f in targets], rules == len(config.CONVERSION_RULES))
"""


def test_skip_libraries_allowlists_keras2_and_larq_once() -> None:
    # A fresh process: the rules are process-wide, and other tests' processes must not
    # decide what this one sees first.
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "[False, False, False] [True, True, True] True"
