"""docs/config.md is generated from the schema and must match it."""

from pathlib import Path

from collapse_doctor.config.docs import render


def test_config_doc_is_current():
    doc = Path(__file__).resolve().parents[2] / "docs" / "config.md"
    assert doc.read_text() == render(), "regenerate: python -m collapse_doctor.config.docs > docs/config.md"


def test_signals_doc_is_current():
    from collapse_doctor.judge.signals import signal_doc

    doc = Path(__file__).resolve().parents[2] / "docs" / "signals.md"
    assert doc.read_text() == signal_doc(), "regenerate: python -m collapse_doctor.judge.signals > docs/signals.md"
