"""Unit tests for the ready-made rule functions in makeflow_rules."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from makeflow import StepError
from makeflow_rules import concat, copy_file, metrics_gate


def fake_step(inputs: list[Path], outputs: list[Path]) -> SimpleNamespace:
    return SimpleNamespace(inputs=inputs, outputs=outputs)


def test_copy_file_preserves_bytes(tmp_path: Path) -> None:
    src = tmp_path / "model.pkl"
    src.write_bytes(bytes(range(256)) + b"\r\n\x00end")
    dst = tmp_path / "model.copy.pkl"
    copy_file(fake_step([src], [dst]))
    assert dst.read_bytes() == src.read_bytes()


def test_copy_file_uses_only_the_first_input(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("first\n")
    second.write_text("second\n")
    dst = tmp_path / "out.txt"
    copy_file(fake_step([first, second], [dst]))
    assert dst.read_text() == "first\n"


def test_copy_file_missing_input_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        copy_file(fake_step([tmp_path / "absent"], [tmp_path / "out"]))


def test_concat_joins_inputs_in_order(tmp_path: Path) -> None:
    parts = []
    for name, data in [("b", b"two\n"), ("a", b"one"), ("c", b"\xff\x00three\n")]:
        path = tmp_path / name
        path.write_bytes(data)
        parts.append(path)
    dst = tmp_path / "all.bin"
    concat(fake_step(parts, [dst]))
    assert dst.read_bytes() == b"two\none\xff\x00three\n"


def test_concat_with_no_inputs_writes_empty_file(tmp_path: Path) -> None:
    dst = tmp_path / "empty.txt"
    concat(fake_step([], [dst]))
    assert dst.read_bytes() == b""


def write_metrics(tmp_path: Path, **metrics: float) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


def test_metrics_gate_passes_and_returns_value(tmp_path: Path) -> None:
    path = write_metrics(tmp_path, r2=0.46, mae=42.0)
    assert metrics_gate(path, "r2", 0.40) == pytest.approx(0.46)


def test_metrics_gate_accepts_value_equal_to_minimum(tmp_path: Path) -> None:
    path = write_metrics(tmp_path, r2=0.4)
    assert metrics_gate(str(path), "r2", 0.4) == pytest.approx(0.4)


def test_metrics_gate_fails_below_minimum(tmp_path: Path) -> None:
    path = write_metrics(tmp_path, r2=0.31)
    with pytest.raises(StepError) as excinfo:
        metrics_gate(path, "r2", 0.40)
    assert str(excinfo.value) == "r2 0.31 is below the threshold 0.4"


def test_metrics_gate_fails_on_missing_key(tmp_path: Path) -> None:
    path = write_metrics(tmp_path, mae=42.0)
    with pytest.raises(StepError, match="no metric 'r2'"):
        metrics_gate(path, "r2", 0.40)


def test_metrics_gate_with_skip_skips_below_minimum_and_still_fails_on_a_missing_key(
        tmp_path: Path) -> None:
    from makeflow import Skip

    path = write_metrics(tmp_path, r2=0.31)
    with pytest.raises(Skip) as excinfo:
        metrics_gate(path, "r2", 0.40, skip=True)
    assert excinfo.value.reason == "r2 0.31 is below the threshold 0.4"
    assert metrics_gate(write_metrics(tmp_path, r2=0.5), "r2", 0.4, skip=True) == 0.5
    with pytest.raises(StepError, match="no metric 'r2'"):
        metrics_gate(write_metrics(tmp_path, mae=1.0), "r2", 0.40, skip=True)
