//! The answer's Arrow form: one batch per view, each with its own schema whose
//! metadata names the view (see `PROTOCOL.md`), and the decoder back to
//! [`QueryResult`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float64Type, Int64Type, TimestampSecondType, UInt32Type, UInt64Type};
use arrow_array::{
    Array, Float64Array, Int64Array, PrimitiveArray, RecordBatch, StringArray, TimestampSecondArray, UInt32Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::error::{Error, Result};
use crate::protocol::DetailInfo;
use crate::protocol::{Bin, Histogram, QueryResult, Raster, Sample, SampleRow, ShardInfo};
use crate::spec::DetailKind;

/// Schema metadata key naming the view of a batch.
pub const VIEW_KEY: &str = "quiver.view";

fn meta(view: &str, extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(VIEW_KEY.to_string(), view.to_string());
    for (k, v) in extra {
        m.insert(format!("quiver.{k}"), v.clone());
    }
    m
}

/// Encodes an answer as batches, one per view in order. Every batch's schema
/// metadata also carries the summary (shard, totals, timing), so a one-view
/// ticket is a plain single-schema stream.
pub fn encode(r: &QueryResult) -> Result<Vec<RecordBatch>> {
    let mut out = vec![];
    let summary = [
        ("shard", r.shard.shard.to_string()),
        ("shards", r.shard.shards.to_string()),
        ("generation", r.shard.generation.clone()),
        ("total", r.total.to_string()),
        ("selected", r.selected.to_string()),
        ("kernel_micros", r.kernel_micros.to_string()),
    ];
    let meta = |view: &str, extra: &[(&str, String)]| {
        let mut m = meta(view, &summary);
        for (k, v) in extra {
            m.insert(format!("quiver.{k}"), v.clone());
        }
        m
    };
    for h in &r.histograms {
        let schema = Schema::new(vec![
            Field::new("bin", DataType::UInt32, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("lo", DataType::Float64, true),
            Field::new("hi", DataType::Float64, true),
            Field::new("count", DataType::UInt64, false),
        ])
        .with_metadata(meta("histogram", &[("dimension", h.dimension.clone())]));
        let n = h.bins.len();
        let bin: Vec<u32> = (0..=n as u32).collect();
        let mut label: Vec<&str> = h.bins.iter().map(|b| b.label.as_str()).collect();
        label.push("(missing)");
        let mut lo: Vec<Option<f64>> = h.bins.iter().map(|b| b.lo).collect();
        lo.push(None);
        let mut hi: Vec<Option<f64>> = h.bins.iter().map(|b| b.hi).collect();
        hi.push(None);
        let mut count: Vec<u64> = h.bins.iter().map(|b| b.count).collect();
        count.push(h.missing);
        out.push(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt32Array::from(bin)),
                Arc::new(StringArray::from(label)),
                Arc::new(Float64Array::from(lo)),
                Arc::new(Float64Array::from(hi)),
                Arc::new(UInt64Array::from(count)),
            ],
        )?);
    }
    if let Some(ras) = &r.raster {
        let k = ras.categories.len();
        let mut fields = vec![Field::new("pixel", DataType::UInt32, false)];
        fields.extend(ras.categories.iter().map(|c| Field::new(c, DataType::UInt32, false)));
        let schema = Schema::new(fields).with_metadata(meta(
            "raster",
            &[
                ("width", ras.width.to_string()),
                ("height", ras.height.to_string()),
                ("categories", serde_json::to_string(&ras.categories).expect("strings serialise")),
            ],
        ));
        let mut cols: Vec<Arc<dyn Array>> = vec![Arc::new(UInt32Array::from(ras.pixels.clone()))];
        for c in 0..k {
            let col: Vec<u32> = ras.counts.iter().skip(c).step_by(k.max(1)).copied().collect();
            cols.push(Arc::new(UInt32Array::from(col)));
        }
        out.push(RecordBatch::try_new(Arc::new(schema), cols)?);
    }
    if let Some(s) = &r.sample {
        let keys: Vec<String> = s.rows.first().map(|r| r.values.keys().cloned().collect()).unwrap_or_default();
        let mut fields = vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
            Field::new("category", DataType::Utf8, false),
        ];
        fields.extend(keys.iter().map(|k| Field::new(format!("value.{k}"), DataType::Utf8, true)));
        let schema = Schema::new(fields).with_metadata(meta("sample", &[("matched", s.matched.to_string())]));
        let mut cols: Vec<Arc<dyn Array>> = vec![
            Arc::new(Float64Array::from(s.rows.iter().map(|r| r.lon).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(s.rows.iter().map(|r| r.lat).collect::<Vec<_>>())),
            Arc::new(StringArray::from(s.rows.iter().map(|r| r.category.as_str()).collect::<Vec<_>>())),
        ];
        for k in &keys {
            cols.push(Arc::new(StringArray::from(
                s.rows.iter().map(|r| r.values.get(k).map(|v| v.as_str())).collect::<Vec<_>>(),
            )));
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for d in &s.columns {
            fields.push(detail_field(d));
            cols.push(detail_array(d, &s.rows));
        }
        let schema = Schema::new(fields).with_metadata(schema.metadata().clone());
        out.push(RecordBatch::try_new(Arc::new(schema), cols)?);
    }
    Ok(out)
}

/// Prefix of the sample's detail columns.
pub const DETAIL_PREFIX: &str = "detail.";

/// A detail column's Arrow field: `detail.<column>`, typed by its kind, its
/// title, unit and dimension in the field's metadata (`quiver.title`,
/// `quiver.unit`, `quiver.dimension`).
pub fn detail_field(d: &DetailInfo) -> Field {
    let mut m = HashMap::from([("quiver.title".to_string(), d.title.clone())]);
    if let Some(u) = &d.unit {
        m.insert("quiver.unit".into(), u.clone());
    }
    if let Some(x) = &d.dimension {
        m.insert("quiver.dimension".into(), x.clone());
    }
    Field::new(format!("{DETAIL_PREFIX}{}", d.column), d.kind.arrow_type(), true).with_metadata(m)
}

fn detail_array(d: &DetailInfo, rows: &[SampleRow]) -> Arc<dyn Array> {
    let vals = rows.iter().map(|r| r.details.get(&d.column));
    match d.kind {
        DetailKind::Int => Arc::new(Int64Array::from_iter(vals.map(|v| v.and_then(|v| v.as_i64())))),
        DetailKind::Time => Arc::new(TimestampSecondArray::from_iter(vals.map(|v| v.and_then(|v| v.as_i64())))),
        DetailKind::Float => Arc::new(Float64Array::from_iter(vals.map(|v| v.and_then(|v| v.as_f64())))),
        DetailKind::Text => Arc::new(StringArray::from_iter(vals.map(|v| v.and_then(|v| v.as_str())))),
    }
}

/// The detail column a sample field holds, and the field's values as JSON.
fn read_detail(f: &Field, a: &dyn Array) -> Option<(DetailInfo, Vec<Option<serde_json::Value>>)> {
    let column = f.name().strip_prefix(DETAIL_PREFIX)?.to_string();
    let md = f.metadata();
    let (kind, vals): (DetailKind, Vec<Option<serde_json::Value>>) = match a.data_type() {
        DataType::Int64 => (DetailKind::Int, a.as_primitive::<Int64Type>().iter().map(|v| v.map(Into::into)).collect()),
        DataType::Timestamp(TimeUnit::Second, _) => {
            (DetailKind::Time, a.as_primitive::<TimestampSecondType>().iter().map(|v| v.map(Into::into)).collect())
        }
        DataType::Float64 => (
            DetailKind::Float,
            a.as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.and_then(serde_json::Number::from_f64).map(serde_json::Value::Number))
                .collect(),
        ),
        DataType::Utf8 => (DetailKind::Text, a.as_string::<i32>().iter().map(|v| v.map(Into::into)).collect()),
        _ => return None,
    };
    let title = md.get("quiver.title").cloned().unwrap_or_else(|| column.clone());
    let (unit, dimension) = (md.get("quiver.unit").cloned(), md.get("quiver.dimension").cloned());
    Some((DetailInfo { column, title, unit, kind, dimension }, vals))
}

fn md<'a>(batch: &'a RecordBatch, key: &str) -> Result<&'a str> {
    batch
        .schema_ref()
        .metadata()
        .get(key)
        .map(|s| s.as_str())
        .ok_or_else(|| Error::Protocol(format!("batch lacks schema metadata {key:?}")))
}

fn md_num<T: std::str::FromStr>(batch: &RecordBatch, key: &str) -> Result<T> {
    md(batch, key)?.parse().map_err(|_| Error::Protocol(format!("metadata {key:?} is not a number")))
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    batch.column_by_name(name).ok_or_else(|| Error::Protocol(format!("batch lacks column {name:?}")))
}

fn typed<'a, T: ArrowPrimitiveType>(batch: &'a RecordBatch, name: &str) -> Result<&'a PrimitiveArray<T>> {
    col(batch, name)?
        .as_primitive_opt::<T>()
        .ok_or_else(|| Error::Protocol(format!("column {name:?} has an unexpected type")))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    col(batch, name)?.as_string_opt::<i32>().ok_or_else(|| Error::Protocol(format!("column {name:?} is not text")))
}

/// Decodes the batches of one answer.
pub fn decode(batches: &[RecordBatch]) -> Result<QueryResult> {
    let first = batches.first().ok_or_else(|| Error::Protocol("empty answer".into()))?;
    let mut result = QueryResult {
        shard: ShardInfo {
            shard: md_num(first, "quiver.shard")?,
            shards: md_num(first, "quiver.shards")?,
            generation: md(first, "quiver.generation")?.to_string(),
        },
        total: md_num(first, "quiver.total")?,
        selected: md_num(first, "quiver.selected")?,
        kernel_micros: md_num(first, "quiver.kernel_micros")?,
        histograms: vec![],
        raster: None,
        sample: None,
    };
    for b in batches {
        let view = md(b, VIEW_KEY)?;
        let r = &mut result;
        match view {
            "histogram" => {
                let n = b.num_rows();
                if n == 0 {
                    return Err(Error::Protocol("histogram batch is empty".into()));
                }
                let label = strings(b, "label")?;
                let lo = typed::<Float64Type>(b, "lo")?;
                let hi = typed::<Float64Type>(b, "hi")?;
                let count = typed::<UInt64Type>(b, "count")?;
                let bins = (0..n - 1)
                    .map(|i| Bin {
                        label: label.value(i).to_string(),
                        lo: lo.is_valid(i).then(|| lo.value(i)),
                        hi: hi.is_valid(i).then(|| hi.value(i)),
                        count: count.value(i),
                    })
                    .collect();
                r.histograms.push(Histogram {
                    dimension: md(b, "quiver.dimension")?.to_string(),
                    bins,
                    missing: count.value(n - 1),
                });
            }
            "raster" => {
                let categories: Vec<String> = serde_json::from_str(md(b, "quiver.categories")?)
                    .map_err(|e| Error::Protocol(format!("raster categories: {e}")))?;
                let pixels = typed::<UInt32Type>(b, "pixel")?.values().to_vec();
                let cols = categories
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        b.column(i + 1)
                            .as_primitive_opt::<UInt32Type>()
                            .ok_or_else(|| Error::Protocol("raster counts must be UInt32".into()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut counts = Vec::with_capacity(pixels.len() * categories.len());
                for k in 0..pixels.len() {
                    for c in &cols {
                        counts.push(c.value(k));
                    }
                }
                r.raster = Some(Raster {
                    width: md_num(b, "quiver.width")?,
                    height: md_num(b, "quiver.height")?,
                    categories,
                    pixels,
                    counts,
                });
            }
            "sample" => {
                let lon = typed::<Float64Type>(b, "lon")?;
                let lat = typed::<Float64Type>(b, "lat")?;
                let cat = strings(b, "category")?;
                let schema = b.schema();
                let value_cols: Vec<(String, &StringArray)> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| {
                        let key = f.name().strip_prefix("value.")?;
                        Some((key.to_string(), b.column(i).as_string_opt::<i32>()?))
                    })
                    .collect();
                let details: Vec<(DetailInfo, Vec<Option<serde_json::Value>>)> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| read_detail(f, b.column(i).as_ref()))
                    .collect();
                let rows = (0..b.num_rows())
                    .map(|i| SampleRow {
                        details: details.iter().filter_map(|(d, v)| Some((d.column.clone(), v[i].clone()?))).collect(),
                        lon: lon.value(i),
                        lat: lat.value(i),
                        category: cat.value(i).to_string(),
                        values: value_cols
                            .iter()
                            .filter(|(_, a)| a.is_valid(i))
                            .map(|(k, a)| (k.clone(), a.value(i).to_string()))
                            .collect::<BTreeMap<_, _>>(),
                    })
                    .collect();
                let columns = details.into_iter().map(|(d, _)| d).collect();
                r.sample = Some(Sample { matched: md_num(b, "quiver.matched")?, rows, columns });
            }
            other => return Err(Error::Protocol(format!("unknown view {other:?} in answer"))),
        }
    }
    Ok(result)
}
