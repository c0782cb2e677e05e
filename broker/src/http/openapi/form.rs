//! The multipart form of `POST /v1/jobs` as `upload::parts` reads it, and the JSON values
//! `params` may hold.
//!
//! A form is an object whose properties are its parts. The text parts have fixed names; every
//! other part is a file whose part name is the input's name, so files are the object's
//! additional properties: a client sends several under distinct names.

use std::borrow::Cow;

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, ObjectBuilder, Ref, RefOr, Schema, Type,
        extensions::Extensions,
        schema::{AnyOfBuilder, SchemaType},
    },
};

use super::schemas::{DURATION_PATTERN, Model};

/// Text parts Baton knows; any other part must be a file.
const TEXT_PARTS: [&str; 5] = ["model", "params", "max_attempts", "queue_timeout", "run_timeout"];

/// A string without NUL: Postgres cannot store U+0000 in `jsonb`.
const NO_NUL: &str = "^[^\\u0000]*$";

/// A file part's name: 1 to 128 bytes, no control characters. Nor `"` or `\`: multipart
/// encoders disagree on escaping them (browsers and most libraries percent-encode `"` and leave
/// `\` alone, while Baton's parser reads `\"` as an escaped quote), so such a name may arrive
/// as another name or not at all.
const INPUT_NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f\"\\\\]+$";

/// The form.
pub struct SubmitForm;

impl PartialSchema for SubmitForm {
    fn schema() -> RefOr<Schema> {
        let duration = |what: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(DURATION_PATTERN))
                .min_length(Some(1))
                .max_length(Some(64))
                .description(Some(format!(
                    "Optional: {what}, a duration with units such as `90s`, `30m`, `12h` or `1h 30m`, \
                     from 1s to 30d; at most 64 bytes."
                )))
        };
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .description(Some(
                "A file part: a part with a `filename` in its `Content-Disposition`. Its part name \
                 (1 to 128 bytes, no control characters, `\"` or `\\`, unique in the form) is the \
                 input's name; its \
                 bytes are stored as sent and their content type is sniffed (the part's \
                 `Content-Type` is only a hint). At most `BATON_MAX_FILES` file parts, each at most \
                 `BATON_MAX_FILE_BYTES`, together at most `BATON_MAX_JOB_BYTES`.",
            ));
        // At least one file: not every part name is a text part's.
        let some_file = Extensions::from_iter([("not", json!({ "propertyNames": { "enum": TEXT_PARTS } }))]);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Text parts `model` (required), `params`, `max_attempts`, `queue_timeout` and \
                 `run_timeout`, each at most once, and one or more file parts under names of your \
                 choice. A part with a `filename` is a file whatever its name; a part without one \
                 must be a known text part.",
            ))
            .property("model", Model::schema())
            .required("model")
            .property(
                "params",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property_names(Some(
                        ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)),
                    ))
                    .additional_properties(Some(Ref::from_schema_name(ParamValue::name())))
                    .description(Some(
                        "Optional: the model's parameters, a JSON object sent as a text part \
                         (`Content-Type: application/json` or none), at most `BATON_MAX_PARAMS_BYTES` \
                         bytes, with no NUL (U+0000) in any key or string. Default `{}`.",
                    ))
                    .examples([json!({ "threshold": 0.5, "labels": ["cat", "dog"] })]),
            )
            .property(
                "max_attempts",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(20))
                    .description(Some(
                        "Optional: attempts before the job fails, 1 to 20 (default `BATON_MAX_ATTEMPTS`).",
                    )),
            )
            .property(
                "queue_timeout",
                duration("how long the job may wait for a worker to start it (default `BATON_QUEUE_TIMEOUT`)"),
            )
            .property(
                "run_timeout",
                duration("how long one attempt may run (default `BATON_RUN_TIMEOUT`)"),
            )
            .additional_properties(Some(file))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(128))
                    .pattern(Some(INPUT_NAME_PATTERN)),
            ))
            .min_properties(Some(2))
            .extensions(Some(some_file))
            .into()
    }
}

impl ToSchema for SubmitForm {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SubmitForm")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ParamValue::name().into(), ParamValue::schema()));
    }
}

/// A JSON value inside `params`.
pub struct ParamValue;

impl PartialSchema for ParamValue {
    fn schema() -> RefOr<Schema> {
        let nested = || Ref::from_schema_name(ParamValue::name());
        AnyOfBuilder::new()
            .description(Some("Any JSON value with no NUL (U+0000) in a key or string."))
            .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Null, Type::Boolean, Type::Number])))
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)))
            .item(ArrayBuilder::new().items(nested()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property_names(Some(
                        ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)),
                    ))
                    .additional_properties(Some(nested())),
            )
            .into()
    }
}

impl ToSchema for ParamValue {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ParamValue")
    }
}

/// The stored parameters, as `JobView.params` returns them.
pub fn params() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(Ref::from_schema_name(ParamValue::name())))
        .description(Some("The parameters as submitted (`{}` if none were)."))
}

/// The request headers of `POST /v1/jobs` (documentation only; the handler reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct SubmitHeaders {
    /// 1 to 255 visible ASCII characters. Repeating a request with the same key returns the job
    /// the first one created (with `Idempotent-Replayed: true`) and stores nothing new; a
    /// different request with a key already used is refused (422 `idempotency_key_reused`).
    #[param(
        rename = "Idempotency-Key",
        required = false,
        nullable = false,
        value_type = String,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$",
        example = "upload-2026-11-23-0001"
    )]
    idempotency_key: Option<String>,
}
