//! The bench's picture, written beside its JSON (`bench.svg`): committed transfers per
//! second (left axis) and latency p50 and p99 (right axis, milliseconds) against the offered
//! rate for a ramp, or against the second of the run for one fixed rate. One colour per
//! network (IM replica count).

use std::path::Path;

use plotters::prelude::*;

use super::report::{BenchReport, NetworkReport};
use crate::failure::Failure;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 540;
const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// One line of the picture: its label and its points, on the left (rate) or right axis.
struct Series {
    label: String,
    colour: RGBColor,
    dashed: bool,
    right: bool,
    points: Vec<(f64, f64)>,
}

fn failure(error: impl std::fmt::Display) -> Failure {
    Failure::error(format!("cannot draw the bench's plot: {error}"))
}

/// The lines of a ramp (x: offered rate) or of one fixed rate (x: second of the run).
fn series_of(networks: &[NetworkReport], ramp: bool) -> Vec<Series> {
    let mut series = Vec::new();
    for (index, network) in networks.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let name = match network.im_replicas {
            1 => "1 IM".to_owned(),
            count => format!("{count} replicas"),
        };
        let (rate, p50, p99): (Vec<_>, Vec<_>, Vec<_>) = if ramp {
            let runs = &network.runs;
            (
                runs.iter()
                    .map(|run| (run.offered_rate as f64, run.committed_rate))
                    .collect(),
                runs.iter()
                    .map(|run| (run.offered_rate as f64, run.latency.p50_ms))
                    .collect(),
                runs.iter()
                    .map(|run| (run.offered_rate as f64, run.latency.p99_ms))
                    .collect(),
            )
        } else {
            let seconds = network
                .runs
                .first()
                .map_or(&[][..], |run| &run.timeline[..]);
            let at = |second: u32| f64::from(second);
            (
                seconds
                    .iter()
                    .map(|s| (at(s.second), s.committed as f64))
                    .collect(),
                seconds.iter().map(|s| (at(s.second), s.p50_ms)).collect(),
                seconds.iter().map(|s| (at(s.second), s.p99_ms)).collect(),
            )
        };
        let line = |label: String, dashed, right, points| Series {
            label,
            colour,
            dashed,
            right,
            points,
        };
        series.push(line(format!("{name}: committed/s"), false, false, rate));
        series.push(line(format!("{name}: p50 ms"), false, true, p50));
        series.push(line(format!("{name}: p99 ms (dashed)"), true, true, p99));
    }
    series
}

/// The largest value of the series on one axis, with room above it.
fn top(series: &[Series], right: bool, x: bool) -> f64 {
    let value = series
        .iter()
        .filter(|line| x || line.right == right)
        .flat_map(|line| line.points.iter().map(|(px, py)| if x { *px } else { *py }))
        .fold(0.0_f64, f64::max);
    (value * 1.1).max(1.0)
}

/// Latencies go on a log scale from a tenth of a millisecond, so a 3 ms p50 and a 7 s p99
/// of an overloaded rate are both readable.
const MS_FLOOR: f64 = 0.1;

/// Writes the picture of `report` to `path` (an SVG file).
pub(super) fn write_svg(report: &BenchReport, path: &Path) -> Result<(), Failure> {
    let ramp = report.networks.iter().any(|network| network.runs.len() > 1);
    let series = series_of(&report.networks, ramp);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(failure)?;
    let title = format!(
        "halfveil bench: {} cores, signature check {:.1} us, reference {:.0}/s",
        report.cores, report.signature_check_us, report.reference_rate
    );
    let (x_top, rate_top, ms_top) = (
        top(&series, false, true),
        top(&series, false, false),
        top(&series, true, false),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..x_top, 0.0..rate_top)
        .map_err(failure)?
        .set_secondary_coord(0.0..x_top, (MS_FLOOR..ms_top.max(1.0)).log_scale());
    let whole = |value: &f64| format!("{value:.0}");
    chart
        .configure_mesh()
        .x_desc(if ramp {
            "offered transfers/s"
        } else {
            "second of the run"
        })
        .y_desc("committed transfers/s")
        .x_label_formatter(&whole)
        .y_label_formatter(&whole)
        .draw()
        .map_err(failure)?;
    chart
        .configure_secondary_axes()
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&|value: &f64| format!("{value}"))
        .draw()
        .map_err(failure)?;
    for line in series {
        draw_series(&mut chart, line)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(failure)?;
    root.present().map_err(failure)
}

/// One series: throughput as a thick line with dots, p50 as a thin line, p99 dashed; the
/// latency ones against the log axis on the right.
fn draw_series(
    chart: &mut plotters::chart::DualCoordChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
        Cartesian2d<
            plotters::coord::types::RangedCoordf64,
            plotters::coord::combinators::LogCoord<f64>,
        >,
    >,
    line: Series,
) -> Result<(), Failure> {
    let colour = line.colour;
    let style = ShapeStyle::from(colour).stroke_width(if line.right { 1 } else { 2 });
    let dots = line
        .points
        .iter()
        .map(|point| Circle::new(*point, 3, colour.filled()))
        .collect::<Vec<_>>();
    let (dashed, right) = (line.dashed, line.right);
    let drawn = if line.right {
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|(x, y)| (*x, y.max(MS_FLOOR)))
            .collect();
        if dashed {
            chart.draw_secondary_series(DashedLineSeries::new(points, 6, 4, style))
        } else {
            chart.draw_secondary_series(LineSeries::new(points, style))
        }
    } else {
        chart.draw_series(dots).map_err(failure)?;
        chart.draw_series(LineSeries::new(line.points, style))
    };
    drawn
        .map_err(failure)?
        .label(line.label)
        .legend(move |(x, y)| {
            let width = if right { 1 } else { 2 };
            PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(width))
        });
    Ok(())
}
