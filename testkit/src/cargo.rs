//! Building Baton's binaries with the cargo that runs the caller, honouring `CARGO_TARGET_DIR`
//! (inherited), and reading their paths from cargo's JSON messages.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use anyhow::{Context, bail};

/// The workspace root: the parent of the crate that calls this (every crate of the workspace is
/// one level below it).
pub fn workspace_root(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir)
        .parent()
        .map_or_else(|| PathBuf::from(manifest_dir), Path::to_owned)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// `cargo build <selection>` (e.g. `-p baton-broker --bin baton`) with `SQLX_OFFLINE=true` in
/// `workspace`; returns every binary it built or found fresh, by name.
pub fn build(workspace: &Path, profile: Profile, selection: &[&str]) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // A test or `cargo run` process carries its own package's CARGO_PKG_*, CARGO_MANIFEST_DIR
    // and so on. Build scripts that watch such variables (ring's watches CARGO_MANIFEST_DIR)
    // would rebuild half the dependency tree for nothing if they were passed on.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(key.as_ref());
        }
    }
    command
        .current_dir(workspace)
        .env("SQLX_OFFLINE", "true")
        .arg("build")
        .arg("--message-format=json-render-diagnostics");
    if profile == Profile::Release {
        command.arg("--release");
    }
    command.args(selection);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo")?;
    let stdout = child.stdout.take().context("cargo's piped output")?;
    let mut binaries = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let (Some(name), Some(executable)) = (
            message.pointer("/target/name").and_then(|v| v.as_str()),
            message.get("executable").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        binaries.insert(name.to_owned(), PathBuf::from(executable));
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(binaries)
}

/// Path of the debug `baton` binary, built once per process on first use (a no-op when it is
/// fresh). `BATON_BIN` names another one instead.
pub fn baton_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| debug_binary("BATON_BIN", "baton-broker", "baton"))
        .clone()
}

/// Path of the debug `baton-example-worker` binary, built once per process on first use.
/// `BATON_WORKER_BIN` names another one instead.
pub fn example_worker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| debug_binary("BATON_WORKER_BIN", "baton-worker", "baton-example-worker"))
        .clone()
}

/// The binary `override_var` names, else `bin` of `package` built in debug mode.
fn debug_binary(override_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let workspace = workspace_root(env!("CARGO_MANIFEST_DIR"));
    let mut built = build(&workspace, Profile::Debug, &["-p", package, "--bin", bin])
        .unwrap_or_else(|e| panic!("building the {bin} binary: {e:#}"));
    built
        .remove(bin)
        .unwrap_or_else(|| panic!("cargo reported no {bin} executable"))
}
