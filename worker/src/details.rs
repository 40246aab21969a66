//! A dataset's detail columns (the ones a sample row and an export show): which,
//! titled how, answered as what kind. Shared by the loader, the Flight service
//! and the operator's validation.

use crate::error::{Error, Result};
use crate::protocol::DetailInfo;
use crate::spec::presets;
use crate::spec::{Binning, DatasetSpec, DetailKind, DetailSpec, ViewConfig};

/// Most detail columns a dataset may keep.
pub const MAX_DETAILS: usize = 32;

/// The detail columns of a dataset with their titles and kinds (see
/// [`DatasetSpec::details`]).
pub fn detail_infos(spec: &DatasetSpec) -> Result<Vec<DetailInfo>> {
    resolve(spec, &spec.effective_view()?)
}

/// The detail columns of `spec` under its (effective) `view`.
pub(crate) fn resolve(spec: &DatasetSpec, view: &ViewConfig) -> Result<Vec<DetailInfo>> {
    let list = match (&spec.details, spec.preset) {
        (Some(list), _) => list.clone(),
        (None, Some(p)) if spec.view.is_none() => presets::default_details(p),
        (None, _) => view
            .dimensions
            .iter()
            .map(|d| DetailSpec { column: d.column.clone(), title: d.title.clone(), unit: None, kind: None })
            .collect(),
    };
    if list.len() > MAX_DETAILS {
        return Err(Error::InvalidSpec(format!(
            "dataset {:?} lists {} detail columns; at most {MAX_DETAILS} are supported",
            spec.name,
            list.len()
        )));
    }
    let mut out: Vec<DetailInfo> = vec![];
    for d in list {
        if d.column.is_empty() || d.column.len() > 256 {
            return Err(Error::InvalidSpec(format!(
                "dataset {:?}: a detail column needs a name of 1 to 256 bytes",
                spec.name
            )));
        }
        if out.iter().any(|o| o.column == d.column) {
            return Err(Error::InvalidSpec(format!(
                "dataset {:?}: detail column {:?} is listed twice",
                spec.name, d.column
            )));
        }
        let dim = view.dimensions.iter().find(|x| x.column == d.column);
        let from_preset = spec.preset.and_then(|p| {
            let schema = presets::schema(p);
            let f = schema.field_with_name(&d.column).ok()?;
            Some(match f.data_type() {
                t if t.is_integer() => DetailKind::Int,
                t if t.is_floating() => DetailKind::Float,
                _ => DetailKind::Text,
            })
        });
        let from_dim = dim.map(|x| match x.bins {
            Binning::Temporal { .. } => DetailKind::Time,
            Binning::Linear { .. } | Binning::Log { .. } => DetailKind::Float,
            Binning::Categorical { .. } => DetailKind::Text,
        });
        // A temporal dimension says more than the file type (`created` is an integer of seconds).
        let kind = d
            .kind
            .or(from_dim.filter(|k| *k == DetailKind::Time))
            .or(from_preset)
            .or(from_dim)
            .unwrap_or(DetailKind::Text);
        let title = d.title.or_else(|| dim.and_then(|x| x.title.clone())).unwrap_or_else(|| d.column.clone());
        out.push(DetailInfo { column: d.column, title, unit: d.unit, kind, dimension: dim.map(|x| x.name.clone()) });
    }
    Ok(out)
}
