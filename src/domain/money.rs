//! Money: an amount of US dollars as a whole number of micro-dollars (a millionth of a
//! dollar, the smallest amount a call can cost), how it is read from a form and how it is
//! written (the raw figure for the API and CSV, dollars and cents for people).
use serde::{Deserialize, Serialize};

/// An amount in micro-dollars (`1_000_000` is $1). Stored, bound and sent on the wire as
/// the plain integer, so stored amounts and clients see a number of micro-dollars and no
/// wrapper. There is deliberately no `Display`: the two ways of writing an amount
/// (`usd`, `money`) are chosen by name where it is shown.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micros(i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);

    pub const fn new(micros: i64) -> Self {
        Micros(micros)
    }

    /// The amount as a count of micro-dollars.
    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    pub fn checked_sub(self, other: Micros) -> Option<Micros> {
        self.0.checked_sub(other.0).map(Micros)
    }

    /// Sums of money stop at the largest (or smallest) amount instead of wrapping round
    /// to the other sign.
    pub fn saturating_add(self, other: Micros) -> Micros {
        Micros(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Micros) -> Micros {
        Micros(self.0.saturating_sub(other.0))
    }

    /// Dollars as typed in a form (`12`, `12.5`, `$0.000001`); `None` for anything else
    /// (negative, more than six decimals, not a number, too large).
    pub fn parse_usd(raw: &str) -> Option<Micros> {
        let t = raw.trim();
        let t = t.strip_prefix('$').unwrap_or(t).trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty())
            || frac.len() > 6
            || !digits(whole)
            || !digits(frac)
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac: i64 = format!("{frac:0<6}").parse().ok()?;
        whole.checked_mul(1_000_000)?.checked_add(frac).map(Micros)
    }

    /// Dollars with all six decimals and neither `$` nor separators (`18` → `0.000018`):
    /// the raw figure, as the CSV exports carry it.
    pub fn usd(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let m = self.0.unsigned_abs();
        format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
    }

    /// Dollars for people: cents from a dollar up ("$1,234.50"), every digit below (a call
    /// can cost $0.000018, which "$0.00" would hide).
    pub fn money(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let m = self.0.unsigned_abs();
        if m >= 1_000_000 {
            let cents = (m + 5_000) / 10_000;
            return format!(
                "{sign}${}.{:02}",
                super::format::count((cents / 100) as i64),
                cents % 100
            );
        }
        let frac = format!("{m:06}");
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        format!("{sign}$0.{shown}")
    }
}

impl std::iter::Sum for Micros {
    fn sum<I: Iterator<Item = Micros>>(iter: I) -> Micros {
        iter.fold(Micros::ZERO, Micros::saturating_add)
    }
}

impl<'a> std::iter::Sum<&'a Micros> for Micros {
    fn sum<I: Iterator<Item = &'a Micros>>(iter: I) -> Micros {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_typed_in_a_form_become_micro_dollars_and_back() {
        let parse = |s: &str| Micros::parse_usd(s).map(Micros::get);
        assert_eq!(parse("12"), Some(12_000_000));
        assert_eq!(parse(" $12.5 "), Some(12_500_000));
        assert_eq!(parse("0.000001"), Some(1));
        assert_eq!(parse(".25"), Some(250_000));
        assert_eq!(parse("3."), Some(3_000_000));
        for bad in [
            "",
            ".",
            "-1",
            "1.0000001",
            "1e3",
            "12,5",
            "99999999999999999999",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            Micros::parse_usd("7.25").map(Micros::usd).as_deref(),
            Some("7.250000")
        );
    }

    #[test]
    fn the_raw_figure_has_six_decimals_and_a_sign_only_when_negative() {
        let usd = |m| Micros::new(m).usd();
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(18), "0.000018");
        assert_eq!(usd(150), "0.000150");
        assert_eq!(usd(20_000_150), "20.000150");
        assert_eq!(usd(-18), "-0.000018");
        assert_eq!(usd(-2_500_000), "-2.500000");
        assert_eq!(usd(i64::MIN), "-9223372036854.775808");
    }

    #[test]
    fn money_shows_cents_from_a_dollar_and_every_digit_below() {
        let money = |m| Micros::new(m).money();
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(18), "$0.000018");
        assert_eq!(money(10_000), "$0.01");
        assert_eq!(money(250_000), "$0.25");
        assert_eq!(money(123_456), "$0.123456");
        assert_eq!(money(1_500_000), "$1.50");
        assert_eq!(money(1_234_567), "$1.23");
        assert_eq!(money(1_995_000), "$2.00");
        assert_eq!(money(-18), "-$0.000018");
        assert_eq!(money(-250_000), "-$0.25");
        assert_eq!(money(-2_500_000), "-$2.50");
        assert_eq!(money(1_234_567_890_000), "$1,234,567.89");
    }

    #[test]
    fn sums_of_money_stop_at_the_ends_instead_of_wrapping() {
        let (max, min) = (Micros::new(i64::MAX), Micros::new(i64::MIN));
        assert_eq!(
            Micros::new(2).saturating_add(Micros::new(3)),
            Micros::new(5)
        );
        assert_eq!(max.saturating_add(Micros::new(1)), max);
        assert_eq!(min.saturating_sub(Micros::new(1)), min);
        assert_eq!(
            Micros::new(2).saturating_sub(Micros::new(3)),
            Micros::new(-1)
        );
        assert_eq!(max.checked_add(Micros::new(1)), None);
        assert_eq!(min.checked_sub(Micros::new(1)), None);
        assert_eq!(
            Micros::new(7).checked_sub(Micros::new(2)),
            Some(Micros::new(5))
        );
        let lines = [Micros::new(20_000_000), Micros::new(150)];
        assert_eq!(lines.iter().sum::<Micros>(), Micros::new(20_000_150));
        assert_eq!([max, max].into_iter().sum::<Micros>(), max);
        assert_eq!(std::iter::empty::<Micros>().sum::<Micros>(), Micros::ZERO);
        assert!(Micros::new(-1) < Micros::ZERO && Micros::ZERO < Micros::new(1));
    }

    #[test]
    fn money_is_the_plain_integer_in_json() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Line {
            amount_micros: Micros,
            limit_micros: Option<Micros>,
        }
        let line = Line {
            amount_micros: Micros::new(-150),
            limit_micros: None,
        };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(json, r#"{"amount_micros":-150,"limit_micros":null}"#);
        assert_eq!(serde_json::from_str::<Line>(&json).unwrap(), line);
        assert_eq!(
            serde_json::to_string(&Micros::new(i64::MAX)).unwrap(),
            "9223372036854775807"
        );
        assert_eq!(
            serde_json::from_str::<Micros>("18").unwrap(),
            Micros::new(18)
        );
        assert!(serde_json::from_str::<Micros>("1.5").is_err());
        assert!(serde_json::from_str::<Micros>("\"18\"").is_err());
    }
}
