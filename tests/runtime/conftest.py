"""Fixtures for the runtime tests: the delegate library, the host runtimes installed here
and LCE-converted model matrices."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1] / "runtime", HERE):  # this checkout's runtime, not an installed one
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from runtime_models import (  # noqa: E402
    LceCase,
    build_groups_model,
    build_int8_model,
    build_main_model,
    lce_case,
    lenet5_case,
)


@pytest.fixture(scope="session")
def runtime_library() -> Path:
    from bitlite_runtime import library_path

    return library_path("host")


@pytest.fixture(scope="session")
def main_case(runtime_library) -> LceCase:
    return lce_case(build_main_model, seed=1)


@pytest.fixture(scope="session")
def groups_case(runtime_library) -> LceCase:
    return lce_case(build_groups_model, seed=2, lce_reference=True)


@pytest.fixture(scope="session")
def lenet_case(runtime_library) -> LceCase:
    return lenet5_case()


@pytest.fixture(scope="session")
def int8_case(runtime_library) -> LceCase:
    import tensorflow as tf

    return lce_case(build_int8_model, seed=3, inference_input_type=tf.int8,
                    inference_output_type=tf.int8)
