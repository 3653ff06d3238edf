//! `bench ... --plot FILE.png`: latency against message size (log-log: the library's median
//! one-way latency, the cache-line floor measured around each size, and the rows of a peers
//! table when one is given), or bandwidth against size (GB/s beside memcpy), drawn with
//! plotters into a PNG. The font is embedded (DejaVu Sans): nothing is read from the system.

use hyperfabric::Error;
use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;

/// A line of the plot.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("drawing the plot: {e}"))
}

fn font() -> Result<(), Error> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = ONCE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| failed("the embedded font does not load"))
}

/// A size as the peers table writes it (`8 B`, `4 KiB`, `1 MiB`).
fn size_of(cell: &str) -> Option<f64> {
    let (n, unit) = cell.trim().split_once(' ')?;
    let n: f64 = n.parse().ok()?;
    let mul = match unit {
        "B" => 1.0,
        "KiB" | "KB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * mul)
}

/// A cell's median: `71,900`, `34.5k [33.2k-34.8k] (n=4)` (the first number; `k` for
/// thousands).
fn cell(c: &str) -> Option<f64> {
    let first = c.split_whitespace().next()?.replace(',', "");
    match first.strip_suffix('k') {
        Some(n) => Some(n.parse::<f64>().ok()? * 1000.0),
        None => first.parse().ok(),
    }
}

/// The rows of a peers table (Markdown, as `peers.sh` writes it: `| system | 8 B | ... |`,
/// one-way ns, thousands separated by commas, empty cells for sizes not measured).
pub fn read_peers(path: &Path) -> Result<Vec<Series>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    // The first table of the file (a peers report has more: bandwidth, far placements).
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect()
        })
        .collect();
    let header = rows.first().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: no table (| system | 8 B | ... |)",
            path.display()
        ))
    })?;
    let sizes: Vec<Option<f64>> = header.iter().map(|c| size_of(c)).collect();
    if sizes.iter().flatten().count() == 0 {
        return Err(Error::InvalidArgument(format!(
            "{}: the table's header names no sizes like `8 B` or `4 KiB`",
            path.display()
        )));
    }
    let mut out = Vec::new();
    for r in rows.iter().skip(1) {
        if r.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))) {
            continue; // the separator row
        }
        // Bandwidth rows are in GB/s, and HyperFabric's own rows are what this run measures.
        if r[0].contains("GB/s") || r[0].starts_with("HyperFabric") {
            continue;
        }
        let points: Vec<(f64, f64)> = r
            .iter()
            .zip(&sizes)
            .filter_map(|(c, s)| Some((s.as_ref().copied()?, cell(c)?)))
            .filter(|(_, ns): &(f64, f64)| *ns > 0.0)
            .collect();
        if !points.is_empty() {
            out.push(Series {
                name: r[0].to_string(),
                points,
            });
        }
    }
    Ok(out)
}

/// A size on the axis (ticks fall on powers of ten): `100`, `10k`, `1M`.
fn bytes(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{}M", number(x / 1e6)),
        x if x >= 1e3 => format!("{}k", number(x / 1e3)),
        x => number(x),
    }
}

/// A value on the axis, without trailing zeros.
fn number(y: f64) -> String {
    if y >= 100.0 || y.fract() == 0.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn range(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    ((x0 / 1.5, x1 * 1.5), (y0, y1))
}

fn draw(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[Series],
    log_y: bool,
) -> Result<(), Error> {
    font()?;
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(failed("nothing measured"));
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let ((x0, x1), (y0, y1)) = range(series);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70);
    let palette = [
        RGBColor(0, 92, 175),
        RGBColor(120, 120, 120),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
    ];
    macro_rules! plot_on {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&|x| bytes(*x))
                .y_label_formatter(&|y| number(*y))
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(failed)?;
            for (i, s) in series.iter().enumerate() {
                let color = palette[i % palette.len()];
                let style = if i == 0 {
                    color.stroke_width(3)
                } else {
                    color.stroke_width(1)
                };
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(failed)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(failed)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(failed)?;
        }};
    }
    if log_y {
        let chart = builder
            .build_cartesian_2d((x0..x1).log_scale(), (y0 / 1.5..y1 * 1.5).log_scale())
            .map_err(failed)?;
        plot_on!(chart);
    } else {
        let chart = builder
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1 * 1.1)
            .map_err(failed)?;
        plot_on!(chart);
    }
    root.present().map_err(failed)?;
    Ok(())
}

fn column(rows: &[Value], key: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((r["size"].as_f64()?, r[key].as_f64()?)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Latency rows of `bench latency` (`size`, `p50_ns`, `floor_ns`), with `peers`.
pub fn latency(path: &Path, rows: &[Value], label: &str, peers: Vec<Series>) -> Result<(), Error> {
    let placements: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["placement"].as_str())
        .collect();
    let placement = match placements.first() {
        Some(p) if placements.iter().all(|q| q == p) => format!("{p} placement"),
        _ => "mixed placements".to_string(),
    };
    let mut series = vec![
        Series {
            name: format!("HyperFabric {label} (median one-way, {placement})"),
            points: column(rows, "p50_ns"),
        },
        Series {
            name: "floor: cache-line bounce, measured around each size".into(),
            points: column(rows, "floor_ns"),
        },
    ];
    // Like with like: TCP rows beside a TCP run only; the cache-line floor is ours.
    let tcp = label.contains("TCP");
    let peers = peers
        .into_iter()
        .filter(|p| p.name.starts_with("TCP:") == tcp && !p.name.starts_with("floor: cache-line"));
    series.extend(peers.map(|p| Series {
        name: format!("{} (peers table)", p.name),
        ..p
    }));
    draw(
        path,
        "One-way latency against message size",
        ("message size (bytes)", "one-way latency (ns)"),
        &series,
        true,
    )
}

/// Bandwidth rows of `bench bandwidth` (`size`, `gbytes_per_s`, `memcpy_gbytes_per_s`).
pub fn bandwidth(path: &Path, rows: &[Value], label: &str) -> Result<(), Error> {
    let series = vec![
        Series {
            name: format!("HyperFabric {label}"),
            points: column(rows, "gbytes_per_s"),
        },
        Series {
            name: "memcpy on one core".into(),
            points: column(rows, "memcpy_gbytes_per_s"),
        },
    ];
    draw(
        path,
        "Bandwidth against message size",
        ("message size (bytes)", "GB/s"),
        &series,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_table_reads_as_series() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.md");
        std::fs::write(
            &p,
            "| system | 8 B | 64 B | 4 KiB | 1 MiB |\n|---|---|---|---|---|\n\
             | UCX | 176 | 232 | 671 | 71,900 |\n| TCP | | 6,817 | | |\n\
             | MPI | 95 [95-100] | 105 (n=3) | | 66.6k [64.8k-66.8k] (n=3) |\n\
             | HyperFabric bench latency | 60 | 75 | | | |\n| UCX tag_bw (GB/s) | 0.23 | | | | |\n\
             \nA second table\n| system | 8 B |\n|---|---|\n| later | 5 |\n",
        )
        .unwrap();
        let s = read_peers(&p).unwrap();
        assert_eq!(s.len(), 3, "the GB/s and HyperFabric rows are left out");
        assert_eq!(s[0].name, "UCX");
        assert_eq!(s[0].points[3], (1048576.0, 71900.0));
        assert_eq!(s[1].points, [(64.0, 6817.0)]);
        assert_eq!(
            s[2].points,
            [(8.0, 95.0), (64.0, 105.0), (1048576.0, 66600.0)]
        );
        std::fs::write(&p, "no table here").unwrap();
        assert!(read_peers(&p).is_err());
    }
}
