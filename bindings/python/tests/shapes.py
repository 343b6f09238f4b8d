# SPDX-License-Identifier: Apache-2.0
"""assert_shape: a value returned by rxflow has exactly the keys its TypedDict in rxflow.types
declares, each of the declared type, nested TypedDicts and lists included. The annotations
are what mypy users rely on; this keeps them equal to what the C++ builds."""
import typing


def assert_shape(value, declared, where="result"):
    origin = typing.get_origin(declared)
    if typing.is_typeddict(declared):
        assert isinstance(value, dict), (where, value)
        hints = typing.get_type_hints(declared)
        assert set(value) == set(hints), (where, sorted(set(value) ^ set(hints)))
        for key, hint in hints.items():
            assert_shape(value[key], hint, f"{where}[{key!r}]")
    elif origin is list:
        assert isinstance(value, list), (where, value)
        (item,) = typing.get_args(declared)
        for i, v in enumerate(value):
            assert_shape(v, item, f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), (where, value)
    elif declared is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (where, value)
    elif declared is int:
        assert isinstance(value, int) and not isinstance(value, bool), (where, value)
    else:
        assert isinstance(value, declared), (where, value, declared)
