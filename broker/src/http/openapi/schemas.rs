//! Schemas written by hand where a Rust type cannot say what the server checks: ids in the one
//! spelling Baton accepts, model names, durations, failures, and JSON values of any type.

use std::borrow::Cow;

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type,
        schema::{Object, SchemaType},
    },
};

/// A UUID in its hyphenated form, either case: what [`crate::domain::parse_id`] accepts.
pub const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// What [`baton_protocol::queue::is_valid_model`] accepts.
pub const MODEL_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// A duration as [`crate::domain::parse_duration`] (humantime) reads it: one or more whole
/// numbers with units, e.g. `90s`, `30m`, `1h 30m`. (Fractions such as `1.5h` are read too, but
/// not all of them: those finer than a nanosecond are refused, so the document leaves them out.)
/// Spaces are ASCII ones: regex engines disagree on what `\s` covers. A range cannot be a
/// pattern; descriptions say it.
pub const DURATION_PATTERN: &str = "^[\\t\\n\\x0b\\f\\r ]*([0-9]+[\\t\\n\\x0b\\f\\r ]*(nanos|nsec|ns|usec|us|\u{b5}s|\
     millis|msec|ms|\
     seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|\
     weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)[\\t\\n\\x0b\\f\\r ]*)+$";

/// A job or file id.
pub struct Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .pattern(Some(UUID_PATTERN))
            .min_length(Some(36))
            .max_length(Some(36))
            .description(Some(
                "A UUID in its hyphenated form (8-4-4-4-12 hex digits). Braced, URN and \
                 unhyphenated spellings are refused with `invalid_id`.",
            ))
            .examples([json!("0190f5e2-7b1c-7d4e-8a3b-2c1d0e9f8a7b")])
            .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Id")
    }
}

/// A model name: also the name of the model's RabbitMQ queue.
pub struct Model;

impl PartialSchema for Model {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(MODEL_PATTERN))
            .min_length(Some(1))
            .max_length(Some(64))
            .description(Some(
                "The model to run: 1 to 64 of lowercase letters, digits, `.`, `_` and `-`, starting \
                 with a letter or digit.",
            ))
            .examples([json!("resnet50")])
            .into()
    }
}

impl ToSchema for Model {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Model")
    }
}

/// Why a job's attempt or the job failed, as clients see it.
#[derive(ToSchema)]
#[schema(as = Failure)]
#[allow(dead_code)] // documentation only: the value is stored and served as JSON
pub struct Failure {
    /// A short stable machine-readable code: a worker's own (e.g. `model_error`), or Baton's
    /// `cancelled`, `queue_timeout`, `run_timeout`, `lease_expired`, `worker_lost`,
    /// `undeliverable` or `invalid_result`.
    #[schema(examples("model_error"))]
    code: String,
    /// A human-readable explanation.
    message: String,
}

/// Any JSON value: object, array, string, number, boolean or null.
pub fn any_json(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(description))
        .build()
}

/// `type: [T, "null"]`.
pub fn nullable(ty: Type) -> SchemaType {
    SchemaType::from_iter([ty, Type::Null])
}
