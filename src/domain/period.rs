//! Billing periods: monthly, starting on the organization's anchor day (1-28, so every
//! month has it), in UTC.
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM` of the month the period starts in.
    pub label: String,
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
}

fn anchor_in(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    let date = NaiveDate::from_ymd_opt(year, month, day.clamp(1, 28)).unwrap_or(NaiveDate::MIN);
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn prev_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

/// The period that contains `at`.
pub fn period_at(at: DateTime<Utc>, anchor_day: u32) -> Period {
    let this = anchor_in(at.year(), at.month(), anchor_day);
    let (sy, sm) = if at >= this {
        (at.year(), at.month())
    } else {
        prev_month(at.year(), at.month())
    };
    let (ny, nm) = next_month(sy, sm);
    Period {
        label: format!("{sy:04}-{sm:02}"),
        start: anchor_in(sy, sm, anchor_day),
        end: anchor_in(ny, nm, anchor_day),
    }
}

/// The period with this label (`YYYY-MM`), if the label is well-formed.
pub fn period_named(label: &str, anchor_day: u32) -> Option<Period> {
    let (y, m) = label.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if label.len() != 7 || !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return None;
    }
    Some(period_at(anchor_in(y, m, anchor_day), anchor_day))
}

/// A linear projection of a period's cost to its end: the cost so far divided by the
/// elapsed fraction of the period (`cost × length / elapsed`). Nothing elapsed yet (or a
/// time outside the period) projects the cost so far; after the end it is the cost.
pub fn linear_projection(
    cost_so_far: super::Micros,
    period: &Period,
    now: DateTime<Utc>,
) -> super::Micros {
    let length = (period.end - period.start).num_seconds();
    let elapsed = (now - period.start).num_seconds();
    if elapsed <= 0 || length <= 0 || elapsed >= length {
        return cost_so_far;
    }
    let projected = i128::from(cost_so_far.get()) * i128::from(length) / i128::from(elapsed);
    super::Micros::new(i64::try_from(projected).unwrap_or(i64::MAX))
}

/// How far into the period `now` is, from 0 to 1.
pub fn elapsed_fraction(period: &Period, now: DateTime<Utc>) -> f64 {
    let length = (period.end - period.start).num_seconds();
    if length <= 0 {
        return 1.0;
    }
    ((now - period.start).num_seconds() as f64 / length as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_start_on_the_anchor_day() {
        let p = period_at(t("2026-11-28T10:00:00Z"), 1);
        assert_eq!(p.label, "2026-11");
        assert_eq!(p.start, t("2026-11-01T00:00:00Z"));
        assert_eq!(p.end, t("2026-12-01T00:00:00Z"));
        let p = period_at(t("2026-11-14T23:59:59Z"), 15);
        assert_eq!(p.label, "2026-10");
        assert_eq!(p.start, t("2026-10-15T00:00:00Z"));
        assert_eq!(p.end, t("2026-11-15T00:00:00Z"));
        let p = period_at(t("2026-12-20T00:00:00Z"), 15);
        assert_eq!(
            (p.label.as_str(), p.end),
            ("2026-12", t("2027-01-15T00:00:00Z"))
        );
        let p = period_at(t("2027-01-03T00:00:00Z"), 15);
        assert_eq!(p.label, "2026-12");
        assert_eq!(period_named("2026-12", 15), Some(p));
        assert_eq!(period_named("2026-13", 1), None);
        assert_eq!(period_named("26-1", 1), None);
    }

    #[test]
    fn the_projection_is_the_cost_so_far_over_the_elapsed_fraction() {
        use crate::domain::Micros;
        let p = period_at(Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0).unwrap(), 1);
        // 30 days; 9 have passed on the 10th at midnight.
        let now = Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0).unwrap();
        assert_eq!(
            linear_projection(Micros::new(9_000_000), &p, now),
            Micros::new(30_000_000)
        );
        assert!((elapsed_fraction(&p, now) - 0.3).abs() < 1e-9);
        // At the very start nothing is extrapolated; after the end the cost stands.
        assert_eq!(
            linear_projection(Micros::new(5), &p, p.start),
            Micros::new(5)
        );
        assert_eq!(
            linear_projection(Micros::new(5), &p, p.end + chrono::Duration::days(3)),
            Micros::new(5)
        );
        assert_eq!(
            linear_projection(
                Micros::new(i64::MAX),
                &p,
                p.start + chrono::Duration::seconds(1)
            ),
            Micros::new(i64::MAX),
            "saturates"
        );
    }
}
