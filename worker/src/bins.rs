//! Compiled binning of a dimension: source values to one-byte bin codes, bin
//! labels and edges, and filters to per-code pass tables.
//!
//! Code `nbins()` means "value missing"; it never passes a filter on its own
//! dimension.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::protocol::{Bin, Filter, FilterProblem, QueryError};
use crate::spec::time::temporal_bins;
pub use crate::spec::time::{parse_instant, parse_timestamp};
use crate::spec::{Binning, DimensionSpec, parse_color, truncate};

/// Kind of a dimension, as shown to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Named categories.
    Categorical,
    /// Equal-width numeric bins.
    Linear,
    /// Log-spaced numeric bins.
    Log,
    /// Calendar bins over unix seconds.
    Temporal,
}

#[derive(Clone, Debug)]
enum Rule {
    Categorical { by_text: HashMap<String, u8, foldhash::fast::RandomState>, ranges: Vec<(i64, i64, u8)>, other: u8 },
    Linear { min: f64, max: f64, n: u32 },
    Log { lmin: f64, lmax: f64, n: u32 },
    Temporal { edges: Vec<i64> },
}

/// A dimension's binning, compiled for fast coding.
#[derive(Clone, Debug)]
pub struct DimBins {
    name: String,
    column: String,
    title: String,
    kind: Kind,
    rule: Rule,
    labels: Vec<String>,
    edges: Option<Vec<f64>>,
    colors: Vec<Option<[u8; 3]>>,
}

/// Default category colours (colour-blind friendly), used when a category has none.
pub const PALETTE: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

impl DimBins {
    /// Compiles a dimension spec; errors name the dimension.
    pub fn from_spec(d: &DimensionSpec) -> Result<DimBins> {
        let bad = |m: String| Error::InvalidSpec(format!("dimension {:?}: {m}", d.name));
        let (kind, rule, labels, edges, colors) = match &d.bins {
            Binning::Categorical { categories, other } => {
                if categories.is_empty() || categories.len() > 64 {
                    return Err(bad(format!("{} categories; 1 to 64 allowed", categories.len())));
                }
                let mut by_text = HashMap::default();
                let mut ranges = Vec::new();
                let mut labels = Vec::new();
                let mut colors = Vec::new();
                for (i, c) in categories.iter().enumerate() {
                    let code = i as u8;
                    for v in &c.values {
                        by_text.insert(v.clone(), code);
                    }
                    for r in &c.ranges {
                        if r[0] > r[1] {
                            return Err(bad(format!("range [{}, {}] is reversed", r[0], r[1])));
                        }
                        ranges.push((r[0], r[1], code));
                    }
                    if labels.contains(&c.label) {
                        return Err(bad(format!("category {:?} is declared twice", c.label)));
                    }
                    labels.push(c.label.clone());
                    colors.push(match &c.color {
                        Some(s) => Some(parse_color(s).ok_or_else(|| bad(format!("colour {s:?} is not #rrggbb")))?),
                        None => None,
                    });
                }
                let other_code = categories.len() as u8;
                labels.push(other.clone());
                colors.push(Some([0x99, 0x99, 0x99]));
                // Fill default colours for categories without one.
                let mut next = 0;
                for c in colors.iter_mut() {
                    if c.is_none() {
                        *c = Some(PALETTE[next % PALETTE.len()]);
                        next += 1;
                    }
                }
                (Kind::Categorical, Rule::Categorical { by_text, ranges, other: other_code }, labels, None, colors)
            }
            Binning::Linear { min, max, count } => {
                check_numeric(*min, *max, *count).map_err(bad)?;
                let n = *count;
                let edges: Vec<f64> = (0..=n).map(|i| min + (max - min) * i as f64 / n as f64).collect();
                let labels = edges.windows(2).map(|w| format!("{}–{}", fmt_num(w[0]), fmt_num(w[1]))).collect();
                (Kind::Linear, Rule::Linear { min: *min, max: *max, n }, labels, Some(edges), vec![])
            }
            Binning::Log { min, max, count } => {
                check_numeric(*min, *max, *count).map_err(bad)?;
                if *min <= 0.0 {
                    return Err(bad(format!("log binning needs a positive min, got {min}")));
                }
                let n = *count;
                let (lmin, lmax) = (min.log10(), max.log10());
                let edges: Vec<f64> = (0..=n).map(|i| 10f64.powf(lmin + (lmax - lmin) * i as f64 / n as f64)).collect();
                let labels = edges.windows(2).map(|w| format!("{}–{}", fmt_num(w[0]), fmt_num(w[1]))).collect();
                (Kind::Log, Rule::Log { lmin, lmax, n }, labels, Some(edges), vec![])
            }
            Binning::Temporal { start, end, interval } => {
                let (edges, labels) = temporal_bins(start, end, *interval).map_err(bad)?;
                let fedges = edges.iter().map(|&v| v as f64).collect();
                (Kind::Temporal, Rule::Temporal { edges }, labels, Some(fedges), vec![])
            }
        };
        Ok(DimBins {
            name: d.name.clone(),
            column: d.column.clone(),
            title: d.title.clone().unwrap_or_else(|| d.name.clone()),
            kind,
            rule,
            labels,
            edges,
            colors,
        })
    }

    /// Dimension name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Source column.
    pub fn column(&self) -> &str {
        &self.column
    }
    /// Chart title.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// Kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// Number of bins (codes `0..nbins`); code `nbins` is "missing".
    pub fn nbins(&self) -> u32 {
        self.labels.len() as u32
    }
    /// The code for missing values. Categorical dimensions have none: a
    /// missing category is `Other` (so every row has a colour on the map).
    pub fn missing_code(&self) -> u8 {
        match &self.rule {
            Rule::Categorical { other, .. } => *other,
            _ => self.labels.len() as u8,
        }
    }
    /// Bin labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    /// Bin edges (`nbins + 1` of them) for numeric and temporal dimensions.
    pub fn edges(&self) -> Option<&[f64]> {
        self.edges.as_deref()
    }
    /// RGB colour of each category (categorical dimensions), `Other` last.
    pub fn colors(&self) -> Vec<[u8; 3]> {
        self.colors.iter().map(|c| c.unwrap_or([0x99, 0x99, 0x99])).collect()
    }

    /// Bins as protocol values with the given counts.
    pub fn bins_with_counts(&self, counts: &[u64]) -> Vec<Bin> {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, label)| Bin {
                label: label.clone(),
                lo: self.edges.as_ref().map(|e| e[i]),
                hi: self.edges.as_ref().map(|e| e[i + 1]),
                count: counts.get(i).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Code of a numeric value (numeric and temporal dimensions; temporal in unix
    /// seconds). NaN is missing; values outside the range fall in the end bins.
    #[inline]
    pub fn code_f64(&self, v: f64) -> u8 {
        if v.is_nan() {
            return self.missing_code();
        }
        match &self.rule {
            Rule::Linear { min, max, n } => {
                let t = ((v - min) / (max - min) * *n as f64).floor();
                t.clamp(0.0, (*n - 1) as f64) as u8
            }
            Rule::Log { lmin, lmax, n } => {
                if v <= 0.0 {
                    return 0;
                }
                let t = ((v.log10() - lmin) / (lmax - lmin) * *n as f64).floor();
                t.clamp(0.0, (*n - 1) as f64) as u8
            }
            Rule::Temporal { edges } => self.code_i64_temporal(edges, v.floor() as i64),
            Rule::Categorical { .. } => self.code_i64(v as i64),
        }
    }

    fn code_i64_temporal(&self, edges: &[i64], v: i64) -> u8 {
        // edges[0] <= v < edges[k+1] → k; clamp outside.
        let k = edges.partition_point(|&e| e <= v);
        (k.saturating_sub(1)).min(edges.len() - 2) as u8
    }

    /// Code of an integer value: categorical ranges/values, or numeric binning.
    #[inline]
    pub fn code_i64(&self, v: i64) -> u8 {
        match &self.rule {
            Rule::Categorical { by_text, ranges, other } => {
                for &(lo, hi, c) in ranges {
                    if v >= lo && v <= hi {
                        return c;
                    }
                }
                if !by_text.is_empty()
                    && let Some(&c) = by_text.get(v.to_string().as_str())
                {
                    return c;
                }
                *other
            }
            Rule::Temporal { edges } => self.code_i64_temporal(edges, v),
            _ => self.code_f64(v as f64),
        }
    }

    /// Code of a text value: category lookup, or a number/timestamp parsed from text.
    pub fn code_str(&self, s: &str) -> u8 {
        match &self.rule {
            Rule::Categorical { by_text, ranges, other } => {
                if let Some(&c) = by_text.get(s) {
                    return c;
                }
                if !ranges.is_empty()
                    && let Ok(v) = s.trim().parse::<i64>()
                {
                    return self.code_i64(v);
                }
                *other
            }
            Rule::Temporal { edges } => match parse_instant(s) {
                Some(t) => self.code_i64_temporal(edges, t),
                None => self.missing_code(),
            },
            _ => match s.trim().parse::<f64>() {
                Ok(v) => self.code_f64(v),
                Err(_) => self.missing_code(),
            },
        }
    }

    /// Checks that a filter fits this dimension: categories for a categorical
    /// one, a range for a numeric or temporal one, labels and bin indices it
    /// has. The one check of it, for the worker's kernels and the dashboard.
    pub fn check_filter(&self, f: &Filter) -> std::result::Result<(), FilterProblem> {
        match f {
            Filter::Categories(_) if self.kind != Kind::Categorical => Err(FilterProblem::CategoriesOnNumeric),
            Filter::Categories(labels) => match labels.iter().find(|l| !self.labels.contains(l)) {
                Some(l) => {
                    Err(FilterProblem::UnknownCategory { label: truncate(l, 64), known: self.labels.join(", ") })
                }
                None => Ok(()),
            },
            Filter::Range { .. } if self.edges.is_none() => Err(FilterProblem::RangeOnCategorical),
            Filter::Range { .. } => Ok(()),
            Filter::Bins(bins) => match bins.iter().find(|&&b| b >= self.nbins()) {
                Some(&bin) => Err(FilterProblem::NoSuchBin { bin, nbins: self.nbins() }),
                None => Ok(()),
            },
        }
    }

    /// The pass table of a filter: `table[code]` is true when rows with that
    /// code pass. The table has 256 entries; the missing code never passes.
    /// Errors are [`check_filter`](Self::check_filter)'s.
    pub fn pass_table(&self, f: &Filter) -> Result<[bool; 256]> {
        self.check_filter(f).map_err(|problem| QueryError::Filter { dimension: truncate(&self.name, 64), problem })?;
        let mut t = [false; 256];
        let n = self.nbins() as usize;
        match f {
            Filter::Categories(labels) => {
                for i in labels.iter().filter_map(|l| self.labels.iter().position(|x| x == l)) {
                    t[i] = true;
                }
            }
            Filter::Range { min, max } => {
                let edges = self.edges.as_ref().expect("check_filter: a range filters a dimension with edges");
                for (i, slot) in t.iter_mut().enumerate().take(n) {
                    *slot = edges[i] >= *min && edges[i] < *max;
                }
            }
            Filter::Bins(bins) => {
                for &b in bins {
                    t[b as usize] = true;
                }
            }
        }
        Ok(t)
    }
}

fn check_numeric(min: f64, max: f64, count: u32) -> std::result::Result<(), String> {
    if !(min.is_finite() && max.is_finite() && min < max) {
        return Err(format!("min {min} must be below max {max}"));
    }
    if count == 0 || count > crate::spec::MAX_BINS {
        return Err(format!("{count} bins; 1 to {} allowed", crate::spec::MAX_BINS));
    }
    Ok(())
}

/// Compact number for labels: 1500 → "1.5k".
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.fract().abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else if x.abs() >= 100.0 {
        format!("{:.0}", x)
    } else if x.abs() >= 10.0 {
        format!("{:.1}", x)
    } else {
        format!("{:.2}", x)
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CategoryDef, Interval};
    use chrono::NaiveDateTime;

    fn dim(bins: Binning) -> DimBins {
        DimBins::from_spec(&DimensionSpec { name: "d".into(), column: "c".into(), title: None, bins }).unwrap()
    }

    #[test]
    fn linear_bins_clamp_and_hit_edges() {
        let d = dim(Binning::Linear { min: 0.0, max: 30.0, count: 60 });
        assert_eq!(d.code_f64(0.0), 0);
        assert_eq!(d.code_f64(1.5), 3);
        assert_eq!(d.code_f64(-5.0), 0);
        assert_eq!(d.code_f64(30.0), 59);
        assert_eq!(d.code_f64(f64::NAN), 60);
        assert_eq!(d.code_str("abc"), 60);
    }

    #[test]
    fn log_bins_are_log_spaced() {
        let d = dim(Binning::Log { min: 1.0, max: 100_000.0, count: 40 });
        assert_eq!(d.code_f64(1.0), 0);
        assert_eq!(d.code_f64(10.0), 8);
        assert_eq!(d.code_f64(0.0), 0);
        assert_eq!(d.code_f64(1e9), 39);
        let e = d.edges().unwrap();
        assert!((e[8] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn yearly_bins_follow_the_calendar() {
        let d =
            dim(Binning::Temporal { start: "2003-01-01".into(), end: "2022-01-01".into(), interval: Interval::Year });
        assert_eq!(d.nbins(), 19);
        assert_eq!(d.labels()[0], "2003");
        let t2015 = parse_instant("2015-01-01").unwrap();
        assert_eq!(d.code_i64(t2015), 12);
        assert_eq!(d.code_i64(t2015 - 1), 11);
        assert_eq!(d.code_str("2015-06-01T10:00:00"), 12);
        let pass = d
            .pass_table(&Filter::Range { min: t2015 as f64, max: parse_instant("2018-01-01").unwrap() as f64 })
            .unwrap();
        assert_eq!(pass.iter().filter(|&&p| p).count(), 3);
        assert!(pass[12] && pass[14] && !pass[15]);
    }

    #[test]
    fn timestamps_fast_path_matches_chrono() {
        for s in ["2024-01-15T13:45:07", "2000-02-29 23:59:59", "1999-12-31T00:00:00"] {
            let slow =
                NaiveDateTime::parse_from_str(&s.replace('T', " "), "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp();
            assert_eq!(parse_timestamp(s), Some(slow), "{s}");
        }
        assert_eq!(parse_timestamp("2023-02-30T00:00:00"), None);
    }

    #[test]
    fn categories_match_values_ranges_and_other() {
        let d = dim(Binning::Categorical {
            categories: vec![
                CategoryDef { label: "Cargo".into(), values: vec![], ranges: vec![[70, 79]], color: None },
                CategoryDef {
                    label: "Tug".into(),
                    values: vec!["31".into(), "52".into()],
                    ranges: vec![],
                    color: Some("#ff0000".into()),
                },
            ],
            other: "Other".into(),
        });
        assert_eq!(d.code_i64(75), 0);
        assert_eq!(d.code_i64(52), 1);
        assert_eq!(d.code_str("31"), 1);
        assert_eq!(d.code_i64(99), 2);
        assert_eq!(d.colors()[1], [255, 0, 0]);
        assert!(d.pass_table(&Filter::Categories(vec!["Nope".into()])).is_err());
        assert!(d.pass_table(&Filter::Range { min: 0.0, max: 1.0 }).is_err());
        assert_eq!(
            d.check_filter(&Filter::Categories(vec!["Tug".into(), "Nope".into()])),
            Err(FilterProblem::UnknownCategory { label: "Nope".into(), known: "Cargo, Tug, Other".into() })
        );
        assert_eq!(d.check_filter(&Filter::Range { min: 0.0, max: 1.0 }), Err(FilterProblem::RangeOnCategorical));
        assert_eq!(d.check_filter(&Filter::Bins(vec![3])), Err(FilterProblem::NoSuchBin { bin: 3, nbins: 3 }));
        assert_eq!(d.pass_table(&Filter::Categories(vec!["Tug".into()])).unwrap()[..4], [false, true, false, false]);
    }

    #[test]
    fn labels_are_compact() {
        assert_eq!(fmt_num(1500.0), "1.5k");
        assert_eq!(fmt_num(100000.0), "100k");
        assert_eq!(fmt_num(0.5), "0.5");
    }
}
