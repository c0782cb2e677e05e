//! The real `baton` binary, for tests of what a user sees: exit status and stderr. Another
//! package's binary is not built for this crate's tests, so it is built here, once per run, with
//! the cargo that runs the tests (a no-op when it is fresh).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::Stdio,
    sync::OnceLock,
};

use tokio::process::Command;

/// Path of the debug `baton` binary, built on first use. `BATON_BIN` overrides it.
pub fn baton_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| match std::env::var_os("BATON_BIN") {
            Some(path) => PathBuf::from(path),
            None => build(),
        })
        .clone()
}

/// A `baton` command with no `BATON_*` or `RUST_LOG` setting inherited from the caller's
/// environment, so each test states exactly what it configures.
pub fn baton_command() -> Command {
    let mut command = Command::new(baton_binary());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("BATON_") || key == "RUST_LOG" {
            command.env_remove(key.as_ref());
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

fn build() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_owned();
    let mut command = std::process::Command::new(env!("CARGO"));
    // The test process carries this package's CARGO_PKG_*, CARGO_MANIFEST_DIR and so on; build
    // scripts that watch such variables would rebuild for nothing.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR" | "CARGO_MANIFEST_PATH" | "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(key.as_ref());
        }
    }
    let mut child = command
        .current_dir(&workspace)
        .env("SQLX_OFFLINE", "true")
        .args([
            "build",
            "-p",
            "baton-broker",
            "--bin",
            "baton",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run cargo to build the baton binary");
    let stdout = child.stdout.take().expect("piped");
    let mut binary = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("cargo's output");
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message.pointer("/target/name").and_then(|v| v.as_str()) == Some("baton")
            && let Some(executable) = message.get("executable").and_then(|v| v.as_str())
        {
            binary = Some(PathBuf::from(executable));
        }
    }
    let status = child.wait().expect("wait for cargo");
    assert!(status.success(), "building the baton binary failed ({status})");
    binary.expect("cargo reported no baton executable")
}
