//! A small SVG bar sparkline, drawn on the server: a pure function from
//! counts to markup.

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
}
