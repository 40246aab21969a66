//! The two published schemas Quiver reads unchanged, and their default views.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::spec::{Binning, CategoryDef, DetailKind, DetailSpec, DimensionSpec, Interval, Preset, ViewConfig};

/// The published schema of a preset, columns in file order; every column is
/// nullable, so it also reads real downloads with blanks. AIS `BaseDateTime`
/// is text (`2024-01-15T13:45:07`) in CSV and Parquet alike.
pub fn schema(p: Preset) -> SchemaRef {
    use DataType::{Float64 as F, Int32 as I32, Int64 as I64, Utf8 as S};
    let cols: &[(&str, DataType)] = match p {
        Preset::Celltowers => &[
            ("radio", S),
            ("mcc", I32),
            ("net", I32),
            ("area", I32),
            ("cell", I64),
            ("unit", I32),
            ("lon", F),
            ("lat", F),
            ("range", I64),
            ("samples", I64),
            ("changeable", I32),
            ("created", I64),
            ("updated", I64),
            ("averageSignal", I32),
        ],
        Preset::Ais => &[
            ("MMSI", I64),
            ("BaseDateTime", S),
            ("LAT", F),
            ("LON", F),
            ("SOG", F),
            ("COG", F),
            ("Heading", I32),
            ("VesselName", S),
            ("IMO", S),
            ("CallSign", S),
            ("VesselType", I32),
            ("Status", I32),
            ("Length", F),
            ("Width", F),
            ("Draft", F),
            ("Cargo", I32),
            ("TransceiverClass", S),
        ],
    };
    Arc::new(Schema::new(cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()))
}

/// Column names of a preset, in file order (used when a CSV has no header).
pub fn columns(p: Preset) -> Vec<String> {
    schema(p).fields().iter().map(|f| f.name().clone()).collect()
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

fn detail(column: &str, title: &str, unit: Option<&str>, kind: DetailKind) -> DetailSpec {
    DetailSpec { column: column.into(), title: Some(title.into()), unit: unit.map(Into::into), kind: Some(kind) }
}

/// The detail columns a preset keeps by default: what a point's tooltip
/// shows beside the position. Chosen for their bytes (measured at 8M towers:
/// radio 0.4, mcc 0.1, net 0.3, range 2.1, created 3.8 bytes a row); `cell`
/// and `area` would add about 5, `samples` 1.4.
pub fn default_details(p: Preset) -> Vec<DetailSpec> {
    use DetailKind::{Float, Int, Text, Time};
    match p {
        Preset::Celltowers => vec![
            detail("radio", "Radio", None, Text),
            detail("mcc", "MCC", None, Int),
            detail("net", "MNC", None, Int),
            detail("range", "Signal range", Some("m"), Int),
            detail("created", "Created", None, Time),
        ],
        Preset::Ais => vec![
            detail("VesselName", "Vessel", None, Text),
            detail("MMSI", "MMSI", None, Int),
            detail("VesselType", "Vessel type code", None, Int),
            detail("SOG", "Speed", Some("kn"), Float),
            detail("COG", "Course", Some("°"), Float),
            detail("Length", "Length", Some("m"), Float),
            detail("BaseDateTime", "Time", None, Time),
        ],
    }
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
                    Binning::Temporal { start: "2024-01-01".into(), end: "2024-02-01".into(), interval: Interval::Day },
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
