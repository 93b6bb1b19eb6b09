"""vvkit.fields: strict dataclass construction reports every problem of a mapping at once."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from vvkit.fields import ConfigError, _f, from_dict


@dataclass
class Toy:
    steps: int = _f(1, "Steps.")
    name: str = _f("a", "Name.")


def test_unknown_keys_and_bad_types_are_reported_together():
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, {"stepz": 3, "steps": "many", "name": 5}, where="params.yaml: section 'toy'")
    msg = str(err.value)
    assert msg.startswith("params.yaml: section 'toy'") and "stepz" in msg and "'steps'" in msg and "'name'" in msg
    assert from_dict(Toy, {"steps": 2}).steps == 2
