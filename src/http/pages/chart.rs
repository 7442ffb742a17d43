//! The usage page's daily cost chart, drawn on the server as SVG (plotters): a bar per day
//! of the period, days without calls included, dollars on the vertical axis.
use chrono::NaiveDate;
use plotters::prelude::*;

use crate::domain::Micros;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 260;
const BAR: RGBColor = RGBColor(47, 110, 186);
const GRID: RGBColor = RGBColor(226, 230, 236);
const TEXT: RGBColor = RGBColor(90, 98, 110);

/// `days`: every day of the period in order, with its cost. An empty string
/// when plotters fails (the page then shows the table only).
pub fn daily_cost_svg(days: &[(NaiveDate, Micros)]) -> String {
    let mut svg = String::new();
    if days.is_empty() {
        return svg;
    }
    // A chart is not worth a failed page: errors and panics inside the drawing library
    // (it has had arithmetic overflows on odd ranges) leave the page without the chart.
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(&mut svg, days)));
    if !matches!(drawn, Ok(Ok(()))) {
        tracing::warn!("the daily cost chart could not be drawn");
        return String::new();
    }
    // The page describes the chart itself (figure + caption + table); the drawing is an
    // image of it for assistive technology.
    svg.replacen(
        "<svg ",
        "<svg role=\"img\" aria-labelledby=\"daily-cost-caption\" ",
        1,
    )
}

/// A round upper bound for the axis: 1, 2 or 5 times a power of ten, in dollars.
fn axis_top(max_usd: f64) -> f64 {
    if max_usd <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max_usd.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= max_usd)
        .unwrap_or(10.0 * p)
}

fn dollars(v: f64, top: f64) -> String {
    // Enough decimals that the axis labels differ: two for dollars, more for fractions
    // of a cent.
    let decimals = if top >= 10.0 {
        0
    } else {
        ((-top.log10()).ceil() as i64 + 1).clamp(2, 6) as usize
    };
    format!("${v:.decimals$}")
}

fn draw(svg: &mut String, days: &[(NaiveDate, Micros)]) -> Result<(), Box<dyn std::error::Error>> {
    let n = days.len() as u32;
    let max = days.iter().map(|(_, c)| c.get()).max().unwrap_or(0) as f64 / 1e6;
    let top = axis_top(max);
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d((0..n).into_segmented(), 0f64..top)?;
    let label_every = (n / 8).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(TEXT)
        .label_style(("sans-serif", 12).into_font().color(&TEXT))
        .y_labels(5)
        .y_label_formatter(&|v| dollars(*v, top))
        .x_labels(n as usize)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % label_every == 0 => days
                .get(*i as usize)
                .map(|(d, _)| d.format("%b %-d").to_string())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .style(BAR.filled())
            .margin(2)
            .data(
                days.iter()
                    .enumerate()
                    .filter(|(_, (_, c))| *c > Micros::ZERO)
                    .map(|(i, (_, c))| (i as u32, c.get() as f64 / 1e6)),
            ),
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn a_bar_per_day_with_cost_and_dollar_labels() {
        let days: Vec<(NaiveDate, Micros)> = (1..=30)
            .map(|d| {
                let cost = if d == 3 || d == 17 { 1_500_000 } else { 0 };
                (day(d), Micros::new(cost))
            })
            .collect();
        let svg = daily_cost_svg(&days);
        assert!(svg.starts_with("<svg role=\"img\" aria-labelledby=\"daily-cost-caption\""));
        let bars = svg
            .to_ascii_lowercase()
            .matches(r##"fill="#2f6eba""##)
            .count();
        assert_eq!(bars, 2, "{svg}");
        assert!(svg.contains("$2.00"), "{svg}");
        assert!(svg.contains("Nov 1"), "{svg}");
        assert!(svg.ends_with("</svg>\n") || svg.ends_with("</svg>"));
        assert_eq!(daily_cost_svg(&[]), "");
    }

    #[test]
    fn odd_periods_and_amounts_still_draw() {
        for days in [
            vec![(day(1), Micros::ZERO)],
            vec![(day(1), Micros::new(i64::MAX))],
            (1..=28)
                .map(|d| (day(d), Micros::new(1)))
                .collect::<Vec<_>>(),
            (1..=31)
                .map(|d| (day(1) + chrono::Days::new(d), Micros::ZERO))
                .collect::<Vec<_>>(),
        ] {
            let svg = daily_cost_svg(&days);
            assert!(svg.starts_with("<svg"), "{} days", days.len());
        }
    }

    #[test]
    fn the_axis_ends_on_a_round_figure() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(1.5), 2.0);
        assert_eq!(axis_top(3.0), 5.0);
        assert_eq!(axis_top(7.0), 10.0);
        assert_eq!(axis_top(0.00042), 0.0005);
        assert_eq!(dollars(0.5, 1.0), "$0.50");
        assert_eq!(dollars(20.0, 50.0), "$20");
        assert_eq!(dollars(0.0001, 0.0005), "$0.00010");
        assert_eq!(dollars(0.000012, 0.00002), "$0.000012");
        assert_eq!(dollars(3.0, 5.0), "$3.00");
    }
}
