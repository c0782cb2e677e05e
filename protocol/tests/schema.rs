//! The JSON Schemas under `protocol/schema/` are generated from the Rust types; this test fails
//! when they drift. Regenerate with `BATON_WRITE_SCHEMAS=1 cargo test -p baton-protocol`.

use std::path::PathBuf;

use baton_protocol::{ControlMessage, JobMessage, WorkerEvent};
use schemars::schema_for;

fn check(name: &str, schema: schemars::Schema) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema").join(name);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("BATON_WRITE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is missing ({e}); regenerate it", path.display()));
    assert_eq!(
        committed,
        generated,
        "{} is out of date; run BATON_WRITE_SCHEMAS=1 cargo test -p baton-protocol",
        path.display()
    );
}

#[test]
fn committed_job_message_schema_matches_the_rust_type() {
    check("job-message.schema.json", schema_for!(JobMessage));
}

#[test]
fn committed_worker_event_schema_matches_the_rust_type() {
    check("worker-event.schema.json", schema_for!(WorkerEvent));
}

#[test]
fn committed_control_message_schema_matches_the_rust_type() {
    check("control-message.schema.json", schema_for!(ControlMessage));
}
