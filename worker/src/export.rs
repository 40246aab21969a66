//! The `rows` view: every selected row inside the viewport, with its
//! position, category and exact detail values, as Arrow batches (the export).
//!
//! ```text
//! ticket ─▶ Plan (filters, viewport) ─▶ select: row ids, in store order
//!   ─▶ refuse when more than `limit` ─▶ batches of EXPORT_BATCH_ROWS built
//!      lazily, each reading its rows' detail values from their blocks
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::geo::{x_to_lon, y_to_lat};
use crate::kernel::Plan;
use crate::protocol::{EXPORT_BATCH_ROWS, Query, View};
use crate::spec::truncate;
use crate::store::{BLOCK_ROWS, Overlap, Shard};

/// What a `rows` ticket asks for, checked against a shard.
#[derive(Debug)]
pub struct Export {
    /// The selected rows, ascending.
    pub rows: Vec<u32>,
    /// Indices of the detail columns returned, in order.
    pub columns: Vec<usize>,
    /// The answer's schema.
    pub schema: SchemaRef,
}

/// The `rows` view of a query, if that is what it asks for.
pub fn rows_view(q: &Query) -> Option<(u64, Option<&[String]>)> {
    match q.views.as_slice() {
        [View::Rows { limit, columns }] => Some((*limit, columns.as_deref())),
        _ => None,
    }
}

/// Selects the rows of an export (a query whose only view is `rows`), or
/// refuses it: unknown columns, or more matching rows than its limit (the
/// count and the limit in the message, before anything is streamed).
pub fn prepare(shard: &Shard, q: &Query, plan: &Plan) -> Result<Export> {
    let (limit, wanted) = rows_view(q).ok_or_else(|| Error::InvalidQuery("not a rows query".into()))?;
    let columns = match wanted {
        None => (0..shard.details.columns.len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                shard.details.index(n).ok_or_else(|| {
                    let have: Vec<&str> = shard.details.columns.iter().map(|c| c.info.column.as_str()).collect();
                    Error::InvalidQuery(format!(
                        "dataset {:?} keeps no detail column {:?}; it keeps {}",
                        shard.name,
                        truncate(n, 64),
                        if have.is_empty() { "none".to_string() } else { have.join(", ") }
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let rows = select(shard, plan);
    if rows.len() as u64 > limit {
        return Err(Error::TooManyRows { rows: rows.len() as u64, limit });
    }
    let schema = schema(shard, &columns, q, rows.len());
    Ok(Export { rows, columns, schema })
}

/// Rows passing every filter and inside the viewport (if any), ascending.
pub fn select(shard: &Shard, plan: &Plan) -> Vec<u32> {
    let parts: Vec<Vec<u32>> = shard
        .blocks
        .par_iter()
        .map(|b| {
            let test_vp = match plan.viewport.as_ref().map(|vp| (vp, b.overlap(vp))) {
                Some((_, Overlap::Outside)) => return vec![],
                Some((vp, Overlap::Partial)) => Some(vp),
                _ => None,
            };
            let mut out = Vec::with_capacity(BLOCK_ROWS / 8);
            for r in b.start as usize..b.end as usize {
                if let Some(vp) = test_vp
                    && !vp.contains(shard.xs[r], shard.ys[r])
                {
                    continue;
                }
                let fail = plan.fail.iter().zip(&shard.codes).fold(0, |m, (f, c)| m | f[c[r] as usize]);
                if fail == 0 {
                    out.push(r as u32);
                }
            }
            out
        })
        .collect();
    parts.concat()
}

fn schema(shard: &Shard, columns: &[usize], q: &Query, rows: usize) -> SchemaRef {
    let cat = &shard.dims[shard.category_dim];
    let mut fields = vec![
        Field::new("lon", DataType::Float64, false),
        Field::new("lat", DataType::Float64, false),
        Field::new(cat.name(), DataType::Utf8, true),
    ];
    for &c in columns {
        let col = &shard.details.columns[c];
        // A detail column named like the category dimension keeps its name
        // for the exact value; the category label is the bin.
        let mut f = crate::encode::detail_field(&col.info);
        f = f.with_name(col.info.column.clone());
        if fields.iter().any(|x| x.name() == f.name()) {
            f = f.with_name(format!("{}.exact", col.info.column));
        }
        fields.push(f);
    }
    let meta = HashMap::from([
        (crate::encode::VIEW_KEY.to_string(), "rows".to_string()),
        ("quiver.dataset".to_string(), q.dataset.clone()),
        ("quiver.shard".to_string(), shard.info.shard.to_string()),
        ("quiver.shards".to_string(), shard.info.shards.to_string()),
        ("quiver.generation".to_string(), shard.info.generation.clone()),
        ("quiver.total".to_string(), shard.rows().to_string()),
        ("quiver.selected".to_string(), rows.to_string()),
    ]);
    Arc::new(Schema::new(fields).with_metadata(meta))
}

impl Export {
    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.rows.len().div_ceil(EXPORT_BATCH_ROWS)
    }

    /// Batch `i` (of [`Export::batches`]).
    pub fn batch(&self, shard: &Shard, i: usize) -> Result<RecordBatch> {
        let start = i * EXPORT_BATCH_ROWS;
        let rows = &self.rows[start..(start + EXPORT_BATCH_ROWS).min(self.rows.len())];
        let labels = shard.dims[shard.category_dim].labels();
        let codes = &shard.codes[shard.category_dim];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|&r| x_to_lon(shard.xs[r as usize])))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|&r| y_to_lat(shard.ys[r as usize])))),
            Arc::new(StringArray::from_iter(rows.iter().map(|&r| labels.get(codes[r as usize] as usize)))),
        ];
        for &c in &self.columns {
            cols.push(shard.details.columns[c].take(rows));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

/// A Python program that runs `ticket` on every worker of `endpoints` (one
/// per shard) with pyarrow.flight and concatenates the answers: what the
/// dashboard's "copy as Python" puts on the clipboard. The worker token is
/// read from `QUIVER_WORKER_TOKEN`, never written into the program.
pub fn python_snippet(ticket: &Query, endpoints: &[String]) -> String {
    let flight_url = |e: &String| {
        if let Some(rest) = e.strip_prefix("https://") {
            format!("grpc+tls://{rest}")
        } else if let Some(rest) = e.strip_prefix("http://") {
            format!("grpc+tcp://{rest}")
        } else {
            e.clone()
        }
    };
    let workers: Vec<String> = endpoints.iter().map(flight_url).collect();
    let ticket_json = String::from_utf8(ticket.to_json()).expect("a ticket is UTF-8");
    // A JSON string literal is a Python string literal with the same value.
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialise");
    let workers_py = workers.iter().map(|w| quote(w)).collect::<Vec<_>>().join(", ");
    format!(
        r#"# The rows of dataset {dataset} selected in the Quiver dashboard (its filters and
# map view), read from every worker (one per shard) with pyarrow.flight.
# Set QUIVER_WORKER_TOKEN to the cluster's worker token. Protocol: worker/PROTOCOL.md
import json
import os

import pyarrow as pa
import pyarrow.flight as flight

WORKERS = [{workers_py}]
TICKET = json.loads({ticket})

token = os.environ.get("QUIVER_WORKER_TOKEN")
options = flight.FlightCallOptions(
    headers=[(b"authorization", b"Bearer " + token.encode())] if token else [])
tables = []
for url in WORKERS:
    reader = flight.FlightClient(url).do_get(flight.Ticket(json.dumps(TICKET).encode()), options)
    tables.append(reader.read_all().replace_schema_metadata(None))
table = pa.concat_tables(tables)
print(f"{{table.num_rows}} rows")
print(table.slice(0, 5))  # table.to_pandas() for a DataFrame
"#,
        dataset = quote(&ticket.dataset),
        ticket = quote(&ticket_json),
    )
}
