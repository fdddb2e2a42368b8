//! Small SVG charts drawn on the server, pure functions from values to
//! markup: a bar sparkline ([`bars`]) and a time series of lines
//! ([`lines`]).

use std::fmt::Write as _;

/// Renders one bar per value, scaled to the largest; `labels[i]` becomes the
/// bar's tooltip. Colours come from the stylesheet (`.spark`).
pub fn bars(values: &[u64], labels: &[String], width: u32, height: u32) -> String {
    let n = values.len().max(1) as f64;
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let w = f64::from(width);
    let h = f64::from(height);
    let slot = w / n;
    let bar = (slot * 0.78).max(1.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"spark\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"entries per interval\" preserveAspectRatio=\"none\">\
         <line class=\"spark-base\" x1=\"0\" y1=\"{y}\" x2=\"{width}\" y2=\"{y}\"/>",
        y = h - 0.5
    );
    for (i, v) in values.iter().enumerate() {
        let bh = if *v == 0 {
            0.0
        } else {
            ((*v as f64 / max) * (h - 2.0)).max(1.5)
        };
        let x = i as f64 * slot + (slot - bar) / 2.0;
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            "<rect class=\"spark-bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" rx=\"1\">\
             <title>{}</title></rect>",
            h - 1.0 - bh,
            crate::view::escape(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// One line of a [`lines`] chart: its CSS class (`.spark-line.<class>`)
/// and one value per step; `None` breaks the line (no sample there).
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// The CSS class of the line.
    pub class: &'static str,
    /// The values, oldest first.
    pub values: &'a [Option<f64>],
}

/// Renders a time series chart: one polyline per [`Line`], all on one
/// scale from 0 to the largest value (at least `min_top`), the first one
/// with its area filled; `label` is the accessible name of the image and
/// its tooltip. Steps are evenly spaced, oldest at the left.
pub fn lines(lines: &[Line<'_>], min_top: f64, width: u32, height: u32, label: &str) -> String {
    let w = f64::from(width);
    let h = f64::from(height);
    let top = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(min_top, f64::max);
    let label = crate::view::escape(label);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"spark chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{label}\" preserveAspectRatio=\"none\">\
         <title>{label}</title>\
         <line class=\"spark-base\" x1=\"0\" y1=\"{y}\" x2=\"{width}\" y2=\"{y}\"/>",
        y = h - 0.5
    );
    for (n, line) in lines.iter().enumerate() {
        let steps = line.values.len().saturating_sub(1).max(1) as f64;
        let point = |i: usize, v: f64| {
            let x = i as f64 * w / steps;
            let y = (h - 1.0) - (v.max(0.0) / top) * (h - 3.0);
            (x, y)
        };
        // Runs of consecutive values.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![];
        let mut run = vec![];
        for (i, v) in line.values.iter().enumerate() {
            match v.filter(|v| v.is_finite()) {
                Some(v) => run.push(point(i, v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for run in runs {
            let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            if n == 0 && run.len() > 1 {
                let (first, last) = (run[0].0, run[run.len() - 1].0);
                let _ = write!(
                    out,
                    "<polygon class=\"spark-area {}\" points=\"{first:.1},{base:.1} {} {last:.1},{base:.1}\"/>",
                    line.class,
                    pts.join(" "),
                    base = h - 1.0
                );
            }
            if run.len() == 1 {
                let (x, y) = run[0];
                let _ = write!(
                    out,
                    "<circle class=\"spark-dot {}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"1.5\"/>",
                    line.class
                );
            } else {
                let _ = write!(
                    out,
                    "<polyline class=\"spark-line {}\" points=\"{}\"/>",
                    line.class,
                    pts.join(" ")
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_value_and_the_largest_fills_the_height() {
        let svg = bars(&[0, 5, 10], &["a".into(), "b".into(), "<c>".into()], 90, 30);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("height=\"28.0\""), "{svg}");
        assert!(svg.contains("&lt;c&gt;"));
    }

    #[test]
    fn empty_input_is_a_baseline() {
        let svg = bars(&[], &[], 90, 30);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 0);
    }

    #[test]
    fn lines_break_where_there_is_no_sample_and_scale_to_the_largest() {
        let a = [Some(1.0), Some(4.0), None, Some(2.0), Some(2.0)];
        let b = [None, None, None, None, Some(8.0)];
        let svg = lines(
            &[
                Line {
                    class: "a",
                    values: &a,
                },
                Line {
                    class: "b",
                    values: &b,
                },
            ],
            1.0,
            100,
            20,
            "rate <per s>",
        );
        // Two runs of the first line (each with its area), one dot of the second.
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        // The largest value (8) is at the top: y = 1 + 0 ... h - 1 - (h - 3) = 2.
        assert!(svg.contains("cy=\"2.0\""), "{svg}");
        assert!(svg.contains("aria-label=\"rate &lt;per s&gt;\""), "{svg}");
    }

    #[test]
    fn a_series_without_values_is_a_baseline() {
        let svg = lines(
            &[Line {
                class: "a",
                values: &[None, None],
            }],
            1.0,
            50,
            10,
            "x",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<polyline") && !svg.contains("<circle"));
    }
}
