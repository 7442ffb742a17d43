//! How quantities are written for people on pages and in messages: sizes in KiB/MiB (not
//! bytes), counts with thousands separators, times in UTC to the minute. Money is written
//! by its own type (`Micros::money` for people; the API and CSV keep the raw figure,
//! `Micros::usd`).

/// "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "12 B", "1.5 KiB", "10 MiB".
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    let s = format!("{v:.1}");
    format!("{} {unit}", s.trim_end_matches(".0"))
}

/// "2026-11-28 14:05 UTC" from a stored RFC 3339 time; anything else as it is.
pub fn time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| time_at(d.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| t.to_string())
}

/// `time` of a time already read.
pub fn time_at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "1 request", "3 requests".
pub fn counted(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// Labels for a picker where no two look alike: a name that more than one entry carries
/// (ignoring case) gets what tells it apart beside it ("Acme · acme-east"); a name nobody
/// else uses stays as it is.
pub fn told_apart<'a>(entries: impl IntoIterator<Item = (&'a str, String)>) -> Vec<String> {
    let entries: Vec<(&str, String)> = entries.into_iter().collect();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for (name, _) in &entries {
        *seen.entry(name.to_lowercase()).or_default() += 1;
    }
    entries
        .into_iter()
        .map(|(name, extra)| {
            if seen[&name.to_lowercase()] > 1 && !extra.is_empty() {
                format!("{name} · {extra}")
            } else {
                name.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_get_what_tells_them_apart() {
        let labels = told_apart([
            ("Acme", "acme-east".to_string()),
            ("acme", "acme-west".to_string()),
            ("Solo", "solo".to_string()),
        ]);
        assert_eq!(labels, ["Acme · acme-east", "acme · acme-west", "Solo"]);
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-12_345), "-12,345");
        assert_eq!(counted(1, "request", "requests"), "1 request");
        assert_eq!(counted(2500, "request", "requests"), "2,500 requests");
    }

    #[test]
    fn sizes_are_binary_units() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(2048), "2 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(bytes(104_857_600), "100 MiB");
    }

    #[test]
    fn times_are_utc_to_the_minute_and_garbage_stays() {
        assert_eq!(time("2026-11-28T14:05:09.123456Z"), "2026-11-28 14:05 UTC");
        assert_eq!(time("2026-11-28T15:05:09+01:00"), "2026-11-28 14:05 UTC");
        assert_eq!(time("never"), "never");
    }
}
