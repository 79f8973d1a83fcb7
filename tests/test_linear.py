"""The logistic regression every learned part shares (qa/linear.py): the fit, the JSON form and its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qa.errors import ConfigError
from qa.linear import fit_logistic, linear_dict, logistic, read_json, read_linear, save_json


def test_fit_separates_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] + 0.3 * rng.normal(size=400) > 0).astype(float)
    w, b, mean, scale = fit_logistic(x, y, l2=1.0)
    p = logistic(x, w, b, mean, scale)
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.9
    assert w[0] > 0 > w[2] and abs(w[1]) < abs(w[0]) / 4
    again = fit_logistic(x, y, l2=1.0)
    assert np.array_equal(again[0], w) and again[1] == b
    with pytest.raises(ValueError, match="both labels"):
        fit_logistic(x, np.ones(400))


def test_json_round_trip_and_field_errors(tmp_path):
    w, b, mean, scale = np.array([1.5, -2.0]), 0.25, np.array([0.0, 1.0]), np.array([1.0, 2.0])
    p = save_json({**linear_dict(w, b, mean, scale), "threshold": 0.4}, tmp_path / "m" / "model.json")
    assert not list(p.parent.glob("*.tmp"))
    got = read_linear(p, read_json(p, "test model"), 2)
    assert np.allclose(got[0], w) and got[1] == b and got[4] == 0.4
    d = json.loads(p.read_text())
    for bad, field in (({**d, "weights": [1]}, "weights"), ({**d, "bias": [1, 2]}, "bias"),
                       ({**d, "threshold": 2}, "threshold"), ({**d, "mean": ["x", 1]}, "mean"),
                       ({k: v for k, v in d.items() if k != "scale"}, "scale")):
        with pytest.raises(ConfigError, match=field):
            read_linear(p, bad, 2)
    p.write_text('{"weights": [NaN, 1], "bias": 0, "mean": [0, 0], "scale": [1, 1]}')
    with pytest.raises(ConfigError, match="finite"):
        read_linear(p, read_json(p, "test model"), 2)
    with pytest.raises(ConfigError, match="not found"):
        read_json(tmp_path / "none.json", "test model")


def test_read_model_checks_format_and_features_and_names_the_writer(tmp_path):
    from qa.linear import read_model

    p = save_json({"format": "m/1", "features": ["a", "b"], **linear_dict(np.ones(2), 0.0, np.zeros(2), np.ones(2))},
                  tmp_path / "m.json")
    d, names, w, b, mean, scale, t = read_model(p, "test model", "m/1", "make_it", ("x",), ("a", "b"))
    assert names == ("a", "b") and np.allclose(w, 1.0) and t == 0.5 and d["format"] == "m/1"
    with pytest.raises(ConfigError, match="'format' must be 'm/2' .written by make_it"):
        read_model(p, "test model", "m/2", "make_it", ("a", "b"))
    with pytest.raises(ConfigError, match=r"'features' must be \['a'\] or \['c', 'd'\].*make_it"):
        read_model(p, "test model", "m/1", "make_it", ("a",), ("c", "d"))
