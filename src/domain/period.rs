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
}
