"""The gate's memory-bounded paths give the verdicts of one pass.

A snapshot with bad sales lines spread over many chunks is validated once in
one pass and once with the sales suites in chunks of a few rows
(``gate.GX_CHUNK_ROWS``) and the spike scores in blocks of a few lines
(``anomalies.BLOCK_LINES``): the quarantine (rows, reasons, order), the
warnings, the failures and blocking decision, the clean snapshot, the
summary and GX's counts must be the same. Real Great Expectations throughout.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from replenish import model
from replenish.quality import GateResult, GateSettings, anomalies, gate, validate_snapshot
from tests.unit.test_quality import AS_OF, _sale, _snapshot
from tests.unit.test_quality_anomalies import _anomalies

CHUNK = 7  # rows a GX chunk: the sales lines (~230) make ~33 chunks


def _hostile() -> dict[str, list[dict[str, Any]]]:
    t = _anomalies()
    sales = t["sales_order_lines"]
    bad = [
        _sale("SO-NEG", 1, "A", -3.0),  # qty < 0
        _sale("SO-NAN", 1, "C", "abc"),  # qty not a number
        _sale("SO-FUT", 1, "A", 2.0, "2024-06-01 10:00"),  # in the future
        _sale("SO-UNK", 1, "NOPE", 2.0),  # unknown SKU
        {**_sale("SO-LOC", 1, "A", 2.0), "location_id": "WH7"},  # unknown location: flagged
        _sale("SO-DUP", 1, "A", 1.0),  # a key twice, far apart: both rows rejected
        {**_sale("SO-NOCH", 2, "A", 1.0), "channel": None},  # a key column missing
    ]
    for i, row in enumerate(bad):  # spread over the history
        sales.insert(15 + 29 * i, row)
    sales.append(_sale("SO-DUP", 1, "C", 4.0))
    sales.append(_sale("SO-NEG", 2, "C", -1.0))
    return t


def _comparable(result: GateResult) -> dict[str, Any]:
    sales_suites = {
        suite: [
            (
                (er.get("expectation_config") or {}).get("meta", {}).get("rule"),
                er["success"],
                (er.get("result") or {}).get("unexpected_count"),
                (er.get("result") or {}).get("unexpected_index_list"),
            )
            for er in result.gx_results[suite]["results"]
        ]
        for suite in ("sales_order_lines", "sales_order_lines_spikes")
    }
    return {
        "failures": result.failures,
        "blocking": result.blocking,
        "summary": result.summary.drop(columns="seconds").to_dict("records"),
        "suites": sales_suites,
        "statistics": {
            s: result.gx_results[s]["statistics"] for s in sales_suites if s in result.gx_results
        },
    }


@pytest.mark.parametrize(
    "settings",
    [GateSettings(), GateSettings(max_rejected_fraction=0.01, spike_k=3.0)],
    ids=["defaults", "strict"],
)
def test_chunked_validation_equals_one_pass(
    settings: GateSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = _snapshot(_hostile())
    rows = len(snapshot.sales_order_lines)
    one = validate_snapshot(snapshot, AS_OF, settings)
    monkeypatch.setattr(gate, "GX_CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(anomalies, "BLOCK_LINES", 5)
    chunked = validate_snapshot(snapshot, AS_OF, settings)

    chunks = chunked.gx_results["sales_order_lines"]["meta"]["replenish_chunks"]
    assert chunks["chunks"] == -(-rows // CHUNK) and chunks["rows"] == rows
    assert max(chunks["chunk_rows"]) < rows / 4  # spread, not one chunk
    assert "replenish_chunks" not in one.gx_results["sales_order_lines"].get("meta", {})

    # every kind of bad line was caught, in several chunks
    rules = set(one.quarantine["rule"])
    for kind in ("not_null:qty", "range:qty", "not_future", "reference:sku", "unique", "spike"):
        assert any(kind in r for r in rules if r.startswith("sales_order_lines")), kind
    dup = one.quarantine[one.quarantine["rule"].str.contains("sales_order_lines:unique")]
    assert len(dup) == 2 and dup["reason"].str.contains("SO-DUP").all()
    assert not one.warnings.empty

    pd.testing.assert_frame_equal(chunked.quarantine, one.quarantine)
    pd.testing.assert_frame_equal(chunked.warnings, one.warnings)
    assert _comparable(chunked) == _comparable(one)
    for name, frame in one.clean.tables().items():
        pd.testing.assert_frame_equal(getattr(chunked.clean, name), frame)
    if settings.max_rejected_fraction < 0.2:
        assert any(
            f.dataset == "sales_order_lines" and f.expectation == gate.REJECTED_FRACTION_CHECK
            for f in chunked.failures
        )


def test_chunks_keep_every_row_key_together() -> None:
    frame = model.coerce(
        "sales_order_lines",
        pd.DataFrame(
            [_sale(f"O{i % 13}", i % 4, "A") for i in range(200)]
            + [{**_sale("O1", 1, "A"), "channel": None}, {**_sale(None, None, "A")}]
        ),
    )
    parts = gate._chunks("sales_order_lines", frame, None, 5)
    place = pd.Series(0, index=range(len(frame)))
    for i, part in enumerate(parts):
        place.iloc[part] = i
    assert sorted(p for part in parts for p in part.tolist()) == list(range(len(frame)))
    key = frame[list(model.ROW_KEYS["sales_order_lines"])].astype("string").fillna("<NA>")
    per_key = place.groupby([key[c] for c in key.columns]).nunique()
    assert (per_key == 1).all()
    assert len([p for p in parts if len(p)]) > 1
