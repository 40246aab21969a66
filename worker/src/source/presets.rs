//! The two published schemas Quiver reads unchanged, and their default views.

use crate::spec::{Binning, CategoryDef, DimensionSpec, Interval, Preset, ViewConfig};

/// OpenCelliD column names, in file order.
pub const CELLTOWERS_COLUMNS: [&str; 14] = [
    "radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples", "changeable",
    "created", "updated", "averageSignal",
];

/// MarineCadastre AIS column names, in file order.
pub const AIS_COLUMNS: [&str; 17] = [
    "MMSI", "BaseDateTime", "LAT", "LON", "SOG", "COG", "Heading", "VesselName", "IMO", "CallSign",
    "VesselType", "Status", "Length", "Width", "Draft", "Cargo", "TransceiverClass",
];

/// Column names of a preset, in file order (used when a CSV has no header).
pub fn columns(p: Preset) -> &'static [&'static str] {
    match p {
        Preset::Celltowers => &CELLTOWERS_COLUMNS,
        Preset::Ais => &AIS_COLUMNS,
    }
}

fn cat(label: &str, values: &[&str], ranges: &[[i64; 2]], color: &str) -> CategoryDef {
    CategoryDef {
        label: label.into(),
        values: values.iter().map(|s| s.to_string()).collect(),
        ranges: ranges.to_vec(),
        color: Some(color.into()),
    }
}

fn dim(name: &str, column: &str, title: &str, bins: Binning) -> DimensionSpec {
    DimensionSpec { name: name.into(), column: column.into(), title: Some(title.into()), bins }
}

/// The default view of a preset.
pub fn default_view(p: Preset) -> ViewConfig {
    match p {
        Preset::Celltowers => ViewConfig {
            x: "lon".into(),
            y: "lat".into(),
            category: "radio".into(),
            dimensions: vec![
                dim(
                    "radio",
                    "radio",
                    "Radio",
                    Binning::Categorical {
                        categories: vec![
                            cat("GSM", &["GSM"], &[], "#3b82f6"),
                            cat("UMTS", &["UMTS"], &[], "#22c55e"),
                            cat("LTE", &["LTE"], &[], "#f97316"),
                            cat("CDMA", &["CDMA"], &[], "#a855f7"),
                            cat("NR", &["NR"], &[], "#ef4444"),
                        ],
                        other: "Other".into(),
                    },
                ),
                dim("range", "range", "Signal range (m)", Binning::Log { min: 1.0, max: 100_000.0, count: 40 }),
                dim(
                    "created",
                    "created",
                    "Year built",
                    Binning::Temporal {
                        start: "2003-01-01".into(),
                        end: "2022-01-01".into(),
                        interval: Interval::Year,
                    },
                ),
            ],
        },
        Preset::Ais => ViewConfig {
            x: "LON".into(),
            y: "LAT".into(),
            category: "vesselType".into(),
            dimensions: vec![
                dim(
                    "vesselType",
                    "VesselType",
                    "Vessel type",
                    Binning::Categorical {
                        categories: vec![
                            cat("Cargo", &[], &[[70, 79]], "#3b82f6"),
                            cat("Tanker", &[], &[[80, 89]], "#ef4444"),
                            cat("Passenger", &[], &[[60, 69]], "#22c55e"),
                            cat("Fishing", &[], &[[30, 30]], "#eab308"),
                            cat("Tug / tow", &[], &[[31, 32], [52, 52]], "#a855f7"),
                            cat("Pleasure", &[], &[[36, 37]], "#ec4899"),
                            cat("High speed", &[], &[[40, 49]], "#14b8a6"),
                        ],
                        other: "Other".into(),
                    },
                ),
                dim("sog", "SOG", "Speed (knots)", Binning::Linear { min: 0.0, max: 30.0, count: 60 }),
                dim("length", "Length", "Length (m)", Binning::Linear { min: 0.0, max: 400.0, count: 40 }),
                dim(
                    "time",
                    "BaseDateTime",
                    "Time",
                    Binning::Temporal {
                        start: "2024-01-01".into(),
                        end: "2024-02-01".into(),
                        interval: Interval::Day,
                    },
                ),
            ],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_views_are_valid() {
        for p in [Preset::Celltowers, Preset::Ais] {
            default_view(p).validate(p.as_str()).unwrap();
        }
    }
}
