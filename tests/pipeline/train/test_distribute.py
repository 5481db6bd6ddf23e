"""--strategy mirrored: training replicated over two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.train.distribute import check_strategy, is_chief

# Logical devices must be configured before TensorFlow starts, hence a fresh process.
SCRIPT = """
import json, sys
import pipeline
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import pipeline.train.trainer as t
seen = []
real_build = t.build
def build(*args, **kwargs):
    seen.append(tf.distribute.get_strategy().num_replicas_in_sync)
    return real_build(*args, **kwargs)
t.build = build
config = t.TrainConfig(model="lenet5", method="bnn", epochs=1, batch_size=64,
                       train_samples=256, test_samples=128, strategy="mirrored")
run = t.train(config, out=__import__("pathlib").Path(sys.argv[1]), progress=False)
model = run.load_model()
ds = t.load_data(config)
predicted = model.predict(pipeline.data.normalize(ds.x_test), verbose=0).argmax(-1)
print(json.dumps({"replicas": seen, "accuracy": run.result()["test_accuracy"],
                  "saved_model_accuracy": float((predicted == ds.y_test).mean()),
                  "devices": len(tf.config.list_logical_devices("CPU"))}))
"""


def test_mirrored_training_over_two_logical_cpus(tmp_path):
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], cwd=root,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert out["replicas"] == [2]  # the model was built inside a 2-replica MirroredStrategy
    # What the run records is what the saved (replicated, then saved) model computes on
    # the 128 test images. Evaluation splits batches over the replicas, so float sums
    # round differently and a binary activation near 0 may flip: allow 2 images of 128.
    assert out["accuracy"] == pytest.approx(out["saved_model_accuracy"], abs=2 / 128 + 1e-9)
    assert out["accuracy"] > 0.15  # learned something in 4 steps (chance: 0.10)


def test_strategy_names_and_chief(monkeypatch):
    with pytest.raises(UsageError, match="unknown strategy 'tpu'"):
        check_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    worker = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker))
    assert not is_chief()
    worker["task"]["index"] = 0
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker))
    assert is_chief()
    worker["cluster"]["chief"] = ["c:1"]
    monkeypatch.setenv("TF_CONFIG", json.dumps(worker))
    assert not is_chief()
