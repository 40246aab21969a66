//! Writes the DataCluster CRD to `crds/datacluster.yaml` at the workspace root
//! (or to the directory given as the only argument; `-` prints it).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let yaml = quiver_operator::crd::crd_yaml();
    let target = std::env::args().nth(1);
    if target.as_deref() == Some("-") {
        print!("{yaml}");
        return Ok(());
    }
    let dir = match target {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("crds"),
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(quiver_operator::crd::CRD_FILE);
    std::fs::write(&path, yaml)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
