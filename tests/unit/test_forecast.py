"""Demand history (cancelled lines, censored days, returns), classification and
forecast_demand end to end on constructed series."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

import replenish.forecast as forecast_pkg
from replenish.forecast import FORECAST_COLUMNS, Forecast, daily_demand, forecast_demand
from replenish.forecast import methods as methods_module
from replenish.forecast.classify import closed_weekdays, syntetos_boylan, xyz_classes
from replenish.forecast.demand import DemandHistory, infer_censored
from replenish.model import coerce

AS_OF = date(2024, 3, 1)


def _sales(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    """rows: (sku, location_id, ordered_at, qty, status)."""
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(rows))],
            "line_no": 1,
            "sku": [r[0] for r in rows],
            "location_id": [r[1] for r in rows],
            "channel": "web",
            "qty": [r[3] for r in rows],
            "ordered_at": [r[2] for r in rows],
            "status": [r[4] for r in rows],
        }
    )
    return coerce("sales_order_lines", frame)


def _history(qty: np.ndarray, censored: np.ndarray | None = None) -> DemandHistory:
    n, t = qty.shape
    return DemandHistory(
        keys=pd.DataFrame(
            {
                "sku": pd.array([f"S{i:03d}" for i in range(n)], dtype="string"),
                "location_id": pd.array(["W1"] * n, dtype="string"),
            }
        ),
        dates=pd.date_range("2022-01-03", periods=t, freq="D"),  # a Monday
        qty=qty.astype(np.float64),
        censored=np.zeros(qty.shape, bool) if censored is None else censored,
    )


# ------------------------------------------------------------- daily_demand


def test_daily_demand_sums_per_day_and_excludes_cancelled_and_future() -> None:
    sales = _sales(
        [
            ("B", "W1", "2024-02-28 09:00", 2, "shipped"),
            ("B", "W1", "2024-02-28 17:30", 3, "open"),  # same day: summed
            ("B", "W1", "2024-02-29 10:00", 7, "cancelled"),  # not demand
            ("B", "W1", "2024-02-29 11:00", 4, "Canceled"),  # not demand either
            ("B", "W1", "2024-03-01 08:00", 9, "open"),  # as_of: excluded
            ("A", "W2", "2024-02-26 12:00", 1, "shipped"),
            ("A", "W2", "2024-02-20 12:00", 5, "shipped"),  # before the window
            ("A", "W1", "2024-02-27 12:00", 0, "shipped"),  # qty 0: no line
        ]
    )
    before = sales.copy()
    h = daily_demand(sales, AS_OF, history_days=5)
    pd.testing.assert_frame_equal(sales, before)  # input not mutated
    assert h.keys.to_dict("list") == {"sku": ["A", "B"], "location_id": ["W2", "W1"]}
    assert list(h.dates.strftime("%m-%d")) == ["02-25", "02-26", "02-27", "02-28", "02-29"]
    np.testing.assert_array_equal(h.qty, [[0, 1, 0, 0, 0], [0, 0, 0, 5, 0]])
    assert h.qty.dtype == np.float64
    assert not h.censored.any()


def test_daily_demand_marks_censored_days_from_stock_history() -> None:
    sales = _sales([("A", "W1", "2024-02-27", 1, "shipped")])
    stock_history = coerce(
        "stock_history",
        pd.DataFrame(
            {
                "sku": ["A", "A", "A", "Z"],
                "location_id": ["W1", "W1", "W1", "W1"],
                "date": ["2024-02-26", "2024-02-28", "2024-02-29", "2024-02-28"],
                "on_hand": [0.0, 3.0, -1.0, 0.0],
            }
        ),
    )
    h = daily_demand(sales, AS_OF, history_days=5, stock_history=stock_history)
    np.testing.assert_array_equal(h.censored, [[False, True, False, False, True]])


def test_daily_demand_without_sales() -> None:
    h = daily_demand(_sales([]), AS_OF, history_days=7)
    assert h.qty.shape == (0, 7)
    assert list(h.keys.columns) == ["sku", "location_id"]
    fc = forecast_demand(h, as_of=AS_OF)
    assert fc.frame.columns.tolist() == FORECAST_COLUMNS
    assert fc.path.shape == (0, 120) and fc.start == AS_OF


def test_daily_demand_is_the_same_by_blocks_of_lines_and_whatever_the_key_dtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lines are read in blocks and the keys as codes (a categorical's own):
    neither the block size, nor the column dtypes, nor the way the series are
    found changes a digit; the sums are those of a plain group-by."""
    import replenish.forecast.demand as demand_module

    rng = np.random.default_rng(11)
    m = 3000
    sku = rng.choice(["S10", "S2", "S3", "A", "b"], m).astype(object)
    sku[rng.random(m) < 0.02] = None
    raw = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(m)],
            "line_no": 1,
            "sku": sku,
            "location_id": rng.choice(["W2", "W1", "W10"], m),
            "channel": "web",
            "qty": rng.choice([1.0, 2.5, 1 / 3, 0.0, -2.0, np.nan], m),
            "ordered_at": pd.Timestamp("2024-01-25")
            + pd.to_timedelta(rng.integers(0, 40 * 86_400, m), unit="s"),
            "status": rng.choice(["shipped", "open", "Cancelled", " canceled "], m),
        }
    )
    raw.loc[rng.random(m) < 0.02, "ordered_at"] = pd.NaT
    sales = coerce("sales_order_lines", raw)
    returns = _returns([("S2", "W1", "2024-02-20", 2.0, True), ("A", "W9", "2024-02-21", 1, True)])

    def build(frame: pd.DataFrame) -> DemandHistory:
        return daily_demand(frame, AS_OF, history_days=30, returns=returns)

    whole = build(sales)
    categorical = sales.astype({c: "category" for c in ("sku", "location_id", "status")})
    monkeypatch.setattr(demand_module, "_LINE_BLOCK", 7)
    variants = [build(sales), build(categorical)]
    monkeypatch.setattr(demand_module, "_PAIR_TABLE", -(10**9))  # the sorted-pairs path
    variants += [build(sales), build(categorical)]
    for other in variants:
        pd.testing.assert_frame_equal(whole.keys, other.keys)
        assert whole.qty.tobytes() == other.qty.tobytes()
        np.testing.assert_array_equal(whole.censored, other.censored)
        np.testing.assert_array_equal(whole.returned, other.returned)

    day = (sales["ordered_at"] - pd.Timestamp("2024-01-31")).dt.days
    counted = sales[
        ~sales["status"].str.strip().str.lower().isin(["cancelled", "canceled"])
        & sales["sku"].notna()
        & (sales["qty"] > 0)
        & day.between(0, 29)
    ]
    expected = counted.groupby(["sku", "location_id", day[counted.index]])["qty"].sum()
    got = pd.Series(
        whole.qty[whole.qty > 0],
        index=pd.MultiIndex.from_arrays(
            [
                np.repeat(whole.keys["sku"].to_numpy(), (whole.qty > 0).sum(axis=1)),
                np.repeat(whole.keys["location_id"].to_numpy(), (whole.qty > 0).sum(axis=1)),
                np.nonzero(whole.qty > 0)[1],
            ]
        ),
    )
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy())
    assert list(got.index) == list(expected.index)
    assert whole.returned is not None and whole.returned.sum() == 2.0


# ------------------------------------------------------------ classification


def _constructed() -> np.ndarray:
    days = 84
    t = np.arange(days)
    smooth = np.full(days, 5.0)
    erratic = np.where(t % 2 == 0, 1.0, 20.0)
    intermittent = np.where(t % 3 == 0, 5.0, 0.0)
    lumpy = np.where(t % 3 == 0, np.where(t % 6 == 0, 1.0, 20.0), 0.0)
    none = np.zeros(days)
    return np.vstack([smooth, erratic, intermittent, lumpy, none])


def test_syntetos_boylan_classes_of_constructed_series() -> None:
    """ADI / CV² of the constructed series: smooth (1, 0), erratic (1, 0.81),
    intermittent (3, 0), lumpy (3, 0.81), none (no demand)."""
    cls = syntetos_boylan(_constructed(), None)
    assert cls["demand_class"].tolist() == ["smooth", "erratic", "intermittent", "lumpy", "none"]
    np.testing.assert_allclose(cls["adi"].to_numpy()[:4], [1, 1, 3, 3])
    cv2_sizes_1_20 = np.var([1, 20]) / np.mean([1, 20]) ** 2
    np.testing.assert_allclose(cls["cv2"].to_numpy()[:4], [0, cv2_sizes_1_20, 0, cv2_sizes_1_20])
    assert np.isnan(cls.loc[4, "adi"]) and np.isnan(cls.loc[4, "cv2"])


def test_syntetos_boylan_ignores_censored_days() -> None:
    """A daily seller whose zeros all fall on stock-out days stays smooth."""
    qty = np.tile([5.0, 5.0, 0.0], 30)[None, :]
    censored = qty == 0
    assert syntetos_boylan(qty, None)["demand_class"][0] == "intermittent"
    assert syntetos_boylan(qty, censored)["demand_class"][0] == "smooth"
    all_censored = syntetos_boylan(qty, np.ones_like(censored))
    assert all_censored["demand_class"][0] == "none"


# ------------------------------------------------------------- forecast_demand


def test_censored_zeros_do_not_teach_zero_demand() -> None:
    """A series selling 6/day whose only zeros are on stock-out days
    forecasts 6 (the uncensored mean), not the diluted 4."""
    qty = np.tile([6.0, 6.0, 0.0], 100)[None, :]
    censored = qty == 0
    uncorrected = forecast_demand(_history(qty)).frame
    corrected = forecast_demand(_history(qty, censored)).frame
    assert uncorrected.loc[0, "demand_mean"] < 5
    assert corrected.loc[0, "demand_mean"] == pytest.approx(6.0)
    assert corrected.loc[0, "demand_std"] == pytest.approx(0.0, abs=1e-9)
    assert corrected.loc[0, "censored_days"] == 100
    assert corrected.loc[0, "nonzero_days"] == 200


def test_forecast_demand_picks_a_method_per_class() -> None:
    qty = _constructed()
    censored = np.zeros_like(qty, bool)
    qty = np.vstack([qty, np.full(qty.shape[1], 4.0)])
    censored = np.vstack([censored, np.ones(qty.shape[1], bool)])  # all censored
    result = forecast_demand(_history(qty, censored))
    fc = result.frame
    assert fc.columns.tolist() == FORECAST_COLUMNS
    assert fc["demand_class"].tolist() == [
        "smooth",
        "erratic",
        "intermittent",
        "lumpy",
        "none",
        "none",
    ]
    assert fc["method"].tolist()[:2] == ["ses_weekday", "ses_weekday"]
    assert set(fc["method"].tolist()[2:4]) <= {"croston_sba", "tsb"}
    assert fc["method"].tolist()[4:] == ["none", "none"]
    assert fc.loc[0, "demand_mean"] == pytest.approx(5.0)
    assert fc.loc[2, "demand_mean"] == pytest.approx(0.95 * 5 / 3, rel=0.05)
    assert fc.loc[4, "demand_mean"] == 0 and fc.loc[4, "demand_std"] == 0
    assert np.isnan(fc.loc[5, "demand_mean"])  # demand unknown, not zero
    assert np.isnan(result.path[5]).all() and (result.path[4] == 0).all()
    assert (fc["n_days"] == 84).all()
    assert fc["sku"].tolist() == [f"S{i:03d}" for i in range(6)]


def test_forecast_demand_blocks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    qty = rng.poisson(rng.uniform(0.05, 8, 50)[:, None], (50, 120)).astype(float)
    censored = rng.random(qty.shape) < 0.05
    whole = forecast_demand(_history(qty, censored))
    monkeypatch.setattr(forecast_pkg, "_BLOCK", 7)
    blocked = forecast_demand(_history(qty, censored))
    pd.testing.assert_frame_equal(whole.frame, blocked.frame)
    np.testing.assert_array_equal(whole.path, blocked.path)
    assert set(whole.frame["demand_class"]) >= {"smooth", "intermittent"}
    assert (whole.frame["demand_mean"] >= 0).all()


# ------------------------------------------------------------- returns, censoring


def _returns(rows: list[tuple[str, str, str, float, bool]]) -> pd.DataFrame:
    """rows: (sku, location_id, returned_at, qty, restockable)."""
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(rows))],
            "sku": [r[0] for r in rows],
            "location_id": [r[1] for r in rows],
            "qty": [r[3] for r in rows],
            "returned_at": [r[2] for r in rows],
            "restockable": [r[4] for r in rows],
        }
    )
    return coerce("returns", frame)


def test_return_rate_counts_restockable_returns_and_never_lowers_demand() -> None:
    """A sold 10 units over the window; 2 came back restockable, 1 damaged
    (not restockable) and 5 were returned before the window: rate 2/10."""
    sales = _sales(
        [
            ("A", "W1", "2024-02-26 10:00", 4, "shipped"),
            ("A", "W1", "2024-02-28 10:00", 6, "shipped"),
            ("B", "W1", "2024-02-28 10:00", 3, "shipped"),
        ]
    )
    returns = _returns(
        [
            ("A", "W1", "2024-02-29 09:00", 2, True),
            ("A", "W1", "2024-02-29 09:00", 1, False),
            ("A", "W1", "2024-01-02 09:00", 5, True),
            ("Z", "W1", "2024-02-29 09:00", 1, True),  # no such series: ignored
        ]
    )
    h = daily_demand(sales, AS_OF, history_days=5, returns=returns)
    np.testing.assert_array_equal(h.returned, [2.0, 0.0])
    np.testing.assert_array_equal(h.qty.sum(axis=1), [10.0, 3.0])  # demand untouched
    fc = forecast_demand(h).frame
    np.testing.assert_allclose(fc["return_rate"], [0.2, 0.0])
    no_returns = forecast_demand(daily_demand(sales, AS_OF, history_days=5)).frame
    assert (no_returns["return_rate"] == 0).all()


def test_infer_censored_flags_only_improbable_zero_runs() -> None:
    """Row 0 sells 5 every day except a 10-day gap: p0 ≈ 1/142 makes any zero
    improbable, so the gap is censored. Row 1 sells every other day: runs of
    one zero are normal (p0 = 0.5 needs k* = 7). Row 2 is a slow mover (4 % of
    days) whose 60-day gaps are normal (k* = ⌈ln 0.01 / ln 0.96⌉ = 113)."""
    days = 150
    t = np.arange(days)
    fast = np.where((t >= 70) & (t < 80), 0.0, 5.0)
    alternate = np.where(t % 2 == 0, 3.0, 0.0)
    slow = np.where(t % 25 == 0, 1.0, 0.0)
    slow[75] = 0.0  # one gap of 49 days
    cens = infer_censored(np.vstack([fast, alternate, slow]))
    np.testing.assert_array_equal(np.flatnonzero(cens[0]), np.arange(70, 80))
    assert not cens[1].any()
    assert not cens[2].any()


def test_infer_censored_reestimates_p0_outside_long_runs() -> None:
    """Two days in three sell; then a run of 40 zero days, one of 5, one of 4.
    p0 over all days = (99 + 1)/(202 + 2) = 0.49 → k* = ⌈ln 0.01/ln 0.49⌉ = 7:
    only the 40-day run. Outside it p0 = (59 + 1)/(162 + 2) = 0.37 → k* = 5:
    the 5-day run too (0.37⁵ < 1 %); the 4-day run is chance (0.35⁴ > 1 %)."""
    pattern = np.tile([1.0, 0.0, 1.0], 50)
    qty = np.concatenate([pattern, np.zeros(40), [2.0], np.zeros(5), [2.0], np.zeros(4), [2.0]])
    cens = infer_censored(qty[None, :])[0]
    np.testing.assert_array_equal(
        np.flatnonzero(cens), np.r_[np.arange(150, 190), np.arange(191, 196)]
    )


def test_daily_demand_infers_censoring_only_without_stock_history() -> None:
    """Both series sell 5/day with a 10-day gap; A has stock history rows
    (showing stock on every day): its zeros are real demand; B has none:
    its gap is inferred as censored."""
    start = pd.Timestamp(AS_OF) - pd.Timedelta(days=60)
    rows = []
    for d in range(60):
        if 30 <= d < 40:
            continue
        stamp = (start + pd.Timedelta(days=d, hours=10)).isoformat()
        rows += [("A", "W1", stamp, 5, "shipped"), ("B", "W1", stamp, 5, "shipped")]
    stock_history = coerce(
        "stock_history",
        pd.DataFrame(
            {
                "sku": "A",
                "location_id": "W1",
                "date": pd.date_range(start, periods=60, freq="D"),
                "on_hand": 50.0,
            }
        ),
    )
    h = daily_demand(_sales(rows), AS_OF, history_days=60, stock_history=stock_history)
    assert h.inferred is not None
    np.testing.assert_array_equal(h.inferred, [False, True])
    assert not h.censored[0].any()
    np.testing.assert_array_equal(np.flatnonzero(h.censored[1]), np.arange(30, 40))
    off = daily_demand(
        _sales(rows), AS_OF, history_days=60, stock_history=stock_history, infer_stockouts=False
    )
    assert not off.censored.any()
    fc = forecast_demand(h).frame
    assert fc.loc[1, "demand_mean"] == pytest.approx(5.0)  # the gap does not drag B down
    assert fc.loc[0, "demand_mean"] < 5.0
    assert fc["censored_days"].tolist() == [0, 10]


# ---------------------------------------------------------------- XYZ, closed days


def test_xyz_on_constructed_weekly_demand() -> None:
    """Weekly totals: constant 70 → CV 0 (X); alternating 40/100 → CV =
    std(ddof=1)/mean = 32.1/70 = 0.46 (X); alternating 10/130 → 0.87 (Y);
    one week of 700 in ten → 3.16 (Z); never sold → <NA>. A censored day
    counts neither as zero nor as a sale: the week's rate is 7 × the mean of
    its valid days."""
    weeks = 10
    rows = [
        np.full(7 * weeks, 10.0),
        np.repeat(np.tile([40.0, 100.0], weeks // 2), 7) / 7,
        np.repeat(np.tile([10.0, 130.0], weeks // 2), 7) / 7,
        np.concatenate([np.full(7, 100.0), np.zeros(7 * (weeks - 1))]),
        np.zeros(7 * weeks),
    ]
    qty = np.vstack(rows)
    cls = xyz_classes(qty)
    assert cls["xyz_class"].tolist()[:4] == ["X", "X", "Y", "Z"]
    assert cls["xyz_class"].isna().tolist() == [False] * 4 + [True]
    cv = cls["weekly_cv"].to_numpy()
    assert cv[0] == pytest.approx(0.0)
    assert cv[1] == pytest.approx(np.std([40, 100] * 5, ddof=1) / 70)
    assert cv[2] == pytest.approx(np.std([10, 130] * 5, ddof=1) / 70)
    assert cv[3] == pytest.approx(np.std([700] + [0] * 9, ddof=1) / 70)
    censored = np.zeros_like(qty, bool)
    qty_cens = qty.copy()
    qty_cens[0, 3] = 0.0  # a stock-out day in a constant series
    censored[0, 3] = True
    assert xyz_classes(qty_cens, ~censored)["weekly_cv"][0] == pytest.approx(0.0)


def test_closed_weekend_makes_a_wholesaler_smooth_with_zero_weekend_forecast() -> None:
    """20 units every Monday–Friday, nothing at weekends: ADI 1.4 would call
    it intermittent; the closed weekdays are structural zeros, so it is
    smooth, its weekday profile is 0 on Sat/Sun and 1.4 on working days."""
    days = 140
    wd = np.arange(days) % 7  # the history starts on a Monday
    qty = np.where(wd < 5, 20.0, 0.0)[None, :]
    closed = closed_weekdays(qty, np.ones_like(qty, bool), wd)
    np.testing.assert_array_equal(closed[0], wd >= 5)
    assert syntetos_boylan(qty, None)["demand_class"][0] == "intermittent"
    fc = forecast_demand(_history(qty))
    assert fc.frame.loc[0, "demand_class"] == "smooth"
    assert fc.frame.loc[0, "seasonality"] == "weekday"
    # the path starts on a Monday (140 days after a Monday)
    np.testing.assert_allclose(fc.path[0, :7], [20, 20, 20, 20, 20, 0, 0], atol=1e-9)
    assert fc.frame.loc[0, "demand_mean"] == pytest.approx(100 / 7)
    assert fc.frame.loc[0, "demand_std"] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------- promotions, base


def _promotions(rows: list[tuple[str, str | None, str, str]]) -> pd.DataFrame:
    """rows: (sku, location_id or None, start_date, end_date)."""
    frame = pd.DataFrame(
        {
            "promo_id": [f"P{i}" for i in range(len(rows))],
            "sku": [r[0] for r in rows],
            "location_id": [r[1] for r in rows],
            "start_date": [r[2] for r in rows],
            "end_date": [r[3] for r in rows],
            "kind": "promotion",
        }
    )
    return coerce("promotions", frame)


def test_censored_and_promotion_days_do_not_move_the_base() -> None:
    """S000 sells 6/day; in its history a 14-day stock-out (zeros, censored)
    and a one-week promotion at 3× (18/day). Neither moves the base: mean 6,
    std 0. The learned uplift is 3 shrunk toward the pooled one with 20
    units of prior weight: (126 + 20·u₀)/(42 + 20), u₀ = (126 + 20)/(42 + 20);
    it is applied to the 4 planned days ahead (S001 at W1 only: no effect on
    the other location)."""
    days = 140
    qty = np.full((2, days), 6.0)
    censored = np.zeros_like(qty, bool)
    qty[0, 40:54] = 0.0
    censored[0, 40:54] = True
    qty[0, 90:97] = 18.0
    h = _history(qty, censored)
    first = h.dates[0]
    day = lambda k: (first + pd.Timedelta(days=k)).date().isoformat()  # noqa: E731
    promos = _promotions(
        [
            ("S000", None, day(90), day(96)),
            ("S000", "W1", day(days + 2), day(days + 5)),
            ("S001", "W9", day(days + 2), day(days + 5)),
        ]
    )
    fc = forecast_demand(h, promotions=promos, horizon=10)
    pooled = (126 + 20) / (42 + 20)
    uplift = (126 + 20 * pooled) / (42 + 20)
    np.testing.assert_allclose(fc.path[0], [6, 6, *[6 * uplift] * 4, 6, 6, 6, 6])
    np.testing.assert_allclose(fc.path[1], 6.0)
    f = fc.frame
    assert f.loc[0, "promo_uplift"] == pytest.approx(uplift)
    assert f["promo_days_ahead"].tolist() == [4, 0]
    assert f.loc[1, "promo_uplift"] == 1.0
    assert f.loc[0, "demand_std"] == pytest.approx(0.0, abs=1e-9)
    assert f.loc[0, "demand_mean"] == pytest.approx(fc.path[0].mean())
    without = forecast_demand(h, horizon=10).frame  # promotion days unknown
    assert without.loc[0, "demand_std"] > 1.0


def test_a_sku_never_promoted_gets_the_pooled_uplift() -> None:
    days = 140
    qty = np.full((2, days), 10.0)
    qty[0, 70:77] = 25.0
    h = _history(qty)
    first = h.dates[0]
    day = lambda k: (first + pd.Timedelta(days=k)).date().isoformat()  # noqa: E731
    promos = _promotions([("S000", None, day(70), day(76)), ("S001", None, day(days), day(days))])
    fc = forecast_demand(h, promotions=promos, horizon=3)
    pooled = (175 + 20) / (70 + 20)
    assert fc.frame.loc[1, "promo_uplift"] == pytest.approx(pooled)
    np.testing.assert_allclose(fc.path[1], [10 * pooled, 10, 10])


# ------------------------------------------------------------- as_of, fallback


def test_path_starts_at_as_of_with_the_weekday_profile_aligned() -> None:
    """History Mon..Sun × 20 weeks, weekdays 10 and weekends 3; as_of two
    days after the history (a Wednesday): the path is the profile from
    Wednesday on; the level is flat (SES), so skipping days changes nothing."""
    days = 140
    wd = np.arange(days) % 7
    qty = np.where(wd < 5, 10.0, 3.0)[None, :]
    h = _history(qty)
    as_of = (h.dates[-1] + pd.Timedelta(days=3)).date()
    fc = forecast_demand(h, as_of=as_of, horizon=7)
    assert fc.start == as_of
    np.testing.assert_allclose(fc.path[0], [10, 10, 10, 3, 3, 10, 10], rtol=1e-9)
    assert fc.frame.loc[0, "demand_mean"] == pytest.approx(fc.path[0].mean())
    with pytest.raises(ValueError, match="as_of"):
        forecast_demand(h, as_of=h.dates[10].date())
    with pytest.raises(ValueError, match="horizon"):
        forecast_demand(h, horizon=0)


def test_a_broken_series_falls_back_alone() -> None:
    """Row 1 holds absurd quantities (1e300: every method overflows); it
    falls back to the mean of its last 8 weeks, flagged, and the other rows
    are exactly what they are without it. NaN and negative quantities are
    not evidence: row 2 still forecasts its steady 4/day."""
    rng = np.random.default_rng(5)
    qty = rng.poisson(5.0, (4, 140)).astype(float)
    qty[1] = 1e300
    qty[2] = 4.0
    qty[2, 10] = np.nan
    qty[2, 20] = -3.0
    fc = forecast_demand(_history(qty)).frame
    alone = forecast_demand(_history(qty[[0, 2, 3]])).frame
    assert fc["fallback"].tolist() == [False, True, False, False]
    assert fc.loc[1, "method"] == "mean_8w"
    assert fc.loc[1, "demand_mean"] == pytest.approx(1e300)
    assert fc.loc[2, "demand_mean"] == pytest.approx(4.0)
    cols = ["method", "demand_mean", "demand_std", "backtest_mae"]
    pd.testing.assert_frame_equal(
        fc.loc[[0, 2, 3], cols].reset_index(drop=True), alone[cols].reset_index(drop=True)
    )


def test_a_method_yielding_nan_falls_back_per_series(monkeypatch: pytest.MonkeyPatch) -> None:
    """Level methods whose state turns NaN for one series (a failed fit) send
    only that series to the fallback: the mean of its last 8 weeks."""

    def poisoned(cls: type) -> type:
        class Poisoned(cls):  # type: ignore[misc,valid-type]
            def update(self, *args: np.ndarray | None) -> None:
                super().update(*args)
                self.level[1] = np.nan

        return Poisoned

    monkeypatch.setattr(methods_module, "SES", poisoned(methods_module.SES))
    monkeypatch.setattr(methods_module, "HoltDamped", poisoned(methods_module.HoltDamped))
    qty = np.full((3, 84), 5.0)
    qty[1, -56:] = 7.0
    fc = forecast_demand(_history(qty)).frame
    assert fc["fallback"].tolist() == [False, True, False]
    assert fc.loc[1, "method"] == "mean_8w" and fc.loc[1, "demand_mean"] == pytest.approx(7.0)
    assert fc.loc[0, "demand_mean"] == pytest.approx(5.0)
    assert fc.loc[0, "method"] == "ses_weekday"


def test_result_is_a_forecast_with_the_documented_columns() -> None:
    rng = np.random.default_rng(11)
    qty = rng.poisson(rng.uniform(0.05, 8, 30)[:, None], (30, 400)).astype(float)
    fc = forecast_demand(_history(qty), horizon=60)
    assert isinstance(fc, Forecast)
    f = fc.frame
    assert fc.path.shape == (30, 60)
    np.testing.assert_allclose(f["demand_mean"], fc.path[:, :28].mean(axis=1))
    assert set(f["seasonality"]) <= {"none", "weekday", "weekday+yearly"}
    assert set(f["method"]) <= {"ses_weekday", "holt_damped", "croston_sba", "tsb", "none"}
    assert (f.loc[f["method"] != "holt_damped", "trend"] == 0).all()
    assert (f["promo_uplift"] == 1.0).all() and (f["promo_days_ahead"] == 0).all()
    assert f["backtest_mae"].notna().all() and (f["backtest_mae"] >= 0).all()
    assert not f["fallback"].any()
    default = forecast_demand(_history(qty), horizon=60, select_by_backtest=False).frame
    assert set(default["method"]) <= {"ses_weekday", "croston_sba", "none"}


def test_event_by_event_fit_equals_stepping_every_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Intermittent series without seasonality are fitted demand by demand
    (closed forms for the days in between); the results equal stepping the
    Croston and TSB kernels through every day, censored and promotion days
    included."""
    rng = np.random.default_rng(4)
    n, days = 120, 400
    p = rng.uniform(0.01, 0.5, n)
    qty = (rng.random((n, days)) < p[:, None]) * rng.integers(1, 9, (n, days)).astype(float)
    censored = rng.random((n, days)) < 0.03
    h = _history(qty, censored)
    first = h.dates[0]
    day = lambda k: (first + pd.Timedelta(days=k)).date().isoformat()  # noqa: E731
    promos = _promotions([("S001", None, day(150), day(170)), ("S010", None, day(390), day(405))])
    monkeypatch.setattr(forecast_pkg, "_BLOCK", 32)  # homogeneous blocks
    fast = forecast_demand(h, promotions=promos)
    monkeypatch.setattr(forecast_pkg, "_EVENTS", False)
    slow = forecast_demand(h, promotions=promos)
    assert (fast.frame["method"] == slow.frame["method"]).all()
    assert set(fast.frame["method"]) >= {"croston_sba"}
    for col in ["demand_mean", "demand_std", "backtest_mae", "promo_uplift"]:
        np.testing.assert_allclose(fast.frame[col], slow.frame[col], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.path, slow.path, rtol=1e-9, atol=1e-12)
