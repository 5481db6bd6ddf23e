"""Ternary methods: policy and, per method, a tiny model that trains and exports."""

import json

import numpy as np
import pytest

import pipeline  # noqa: F401
from pipeline.methods import Position, make_method, method_names
from pipeline.quantizers.ternary import ExactTernary, TtqTernary, TwnTernary

TERNARY = ["twn", "ttq", "ternary-exact"]


def test_ternary_methods_are_registered_with_policy_and_bits():
    assert set(TERNARY) <= set(method_names())
    for name in TERNARY:
        m = make_method(name)
        assert m.bits() == {"w": 2, "a": 32, "g": 32}
        json.dumps(m.config())
    assert make_method("twn").quantize_first and make_method("twn").quantize_last
    ttq = make_method("ttq")
    assert not ttq.quantize_first and not ttq.quantize_last  # the paper keeps both float
    assert ttq.dense(10, Position.LAST).kernel_quantizer is None


def test_quantizer_options_reach_the_quantizers():
    twn = make_method("twn", per_channel=True, delta_factor=2 / 3)
    q = twn.kernel_quantizer(Position.HIDDEN)
    assert isinstance(q, TwnTernary) and q.axis == -1 and q.delta_factor == 2 / 3
    assert make_method("ternary-exact").kernel_quantizer(Position.HIDDEN).axis is None
    assert isinstance(make_method("ternary-exact").kernel_quantizer(Position.HIDDEN), ExactTernary)
    ttq = make_method("ttq", threshold=0.1)
    a, b = ttq.kernel_quantizer(Position.HIDDEN), ttq.kernel_quantizer(Position.HIDDEN)
    assert isinstance(a, TtqTernary) and a.threshold == 0.1 and a is not b  # per-layer Wp/Wn


@pytest.mark.parametrize("name", TERNARY)
def test_trains_and_exports_matching_keras(name, exported_methods):
    result = exported_methods["methods"][name]
    assert np.isfinite(result["loss"]).all()
    assert result["changed"] == result["n_weights"]
    np.testing.assert_allclose(result["restored"], result["keras"], atol=1e-6)
    assert len(result["tflite"]) == 1  # exactly one .tflite output matches this model
    if name == "ttq":
        names = [w.name for w in result["model"].trainable_weights]
        assert sum("wp" in n for n in names) == 2  # only the hidden conv and dense are ternary


@pytest.mark.parametrize("name", TERNARY)
def test_ternary_with_sign_activations_reaches_binary_products(name, build_tiny, tiny_data,
                                                              binary_products):  # fmt: skip
    """``--abits 1``: ternary weights × sign activations are two binary products per
    layer, ``α (S_1 + S_2)/2`` (issue 16); TTQ keeps its first and last layers float."""
    method = make_method(name, abits=1)
    assert method.bits() == {"w": 2, "a": 1, "g": 32}
    assert method.input_quantizer(Position.HIDDEN) == "ste_sign"
    reached = binary_products(build_tiny(method), tiny_data[0][:32])
    layers = ["conv2", "dense1"] + ([] if name == "ttq" else ["dense2"])
    assert reached == dict.fromkeys(layers, (1, 2))
    with pytest.raises(Exception, match="abits must be 1"):
        make_method(name, abits=2)
