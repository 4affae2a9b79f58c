//! The soak run's chart: resident memory, p99 latency, lag and pending over time, one panel
//! each, the outages shaded (with their recovery) and the rolling restarts drawn as lines.

use plotters::prelude::*;

use super::plan::{Action, Step};
use super::sample::Sample;
use super::verdict::{Window, P99_LIMIT_MS};

/// A panel: its title, its points (seconds, value) and a limit line, if any.
type Panel<'a> = (&'a str, Vec<(f64, f64)>, Option<f64>);

const OUTAGE: RGBColor = RGBColor(250, 200, 200);
const RESTART: RGBColor = RGBColor(60, 110, 220);

/// The chart as an SVG document; `run_s` is the run's length in seconds.
pub fn svg(
    samples: &[Sample],
    windows: &[Window],
    steps: &[Step],
    run_s: f64,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 1000)).into_drawing_area();
        root.fill(&WHITE)?;
        let at = |s: &Sample| s.at_s;
        let panels: [Panel; 4] = [
            (
                "resident memory of the largest replica (MiB); shaded: outages and their recovery, blue: rolling restarts",
                samples.iter().map(|s| (at(s), s.max_rss_mib())).collect(),
                None,
            ),
            (
                "p99 XADD → COMMIT (ms), by publishing window; red line: 500 ms",
                windows.iter().map(|w| (w.to_s, w.latency.p99_ms)).collect(),
                Some(P99_LIMIT_MS),
            ),
            (
                "lag (entries not yet delivered)",
                samples.iter().map(|s| (at(s), s.lag() as f64)).collect(),
                None,
            ),
            (
                "pending (delivered, not acked)",
                samples
                    .iter()
                    .map(|s| (at(s), s.pending() as f64))
                    .collect(),
                None,
            ),
        ];
        for (area, (title, points, limit)) in root.split_evenly((4, 1)).iter().zip(panels) {
            let top = points.iter().map(|p| p.1).chain(limit).fold(1.0, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..run_s.max(1.0), 0f64..top)?;
            chart
                .configure_mesh()
                .x_desc("seconds")
                .light_line_style(WHITE)
                .draw()?;
            for step in steps {
                match (step.action, step.excused()) {
                    (Action::RollingRestart, _) => {
                        let x = step.at.as_secs_f64();
                        chart.draw_series(LineSeries::new(
                            [(x, 0.0), (x, top)],
                            RESTART.stroke_width(1),
                        ))?;
                    }
                    (_, Some((from, to))) => {
                        let span = [(from.as_secs_f64(), 0.0), (to.as_secs_f64(), top)];
                        chart.draw_series([Rectangle::new(span, OUTAGE.filled())])?;
                    }
                    (_, None) => {}
                }
            }
            if let Some(limit) = limit {
                chart.draw_series(LineSeries::new(
                    [(0.0, limit), (run_s, limit)],
                    RED.stroke_width(1),
                ))?;
            }
            chart.draw_series(LineSeries::new(points, BLACK.stroke_width(2)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::soak::plan::schedule;

    #[test]
    fn draws_every_panel_with_its_title_and_the_outages() {
        let samples: Vec<Sample> = (1..=6u32)
            .map(|i| Sample {
                at_s: 10.0 * f64::from(i),
                published: 100 * u64::from(i),
                replicas: Vec::new(),
                topics: Vec::new(),
                latency: None,
            })
            .collect();
        let steps = schedule(
            Duration::from_secs(60),
            Duration::from_secs(180),
            Duration::from_secs(5),
        );
        let svg = svg(&samples, &[], &steps, 60.0).expect("draws");
        for title in ["resident memory", "p99 XADD", "lag", "pending"] {
            assert!(svg.contains(title), "{title} missing");
        }
        assert!(svg.contains("<rect"), "no outage shaded");
    }
}
