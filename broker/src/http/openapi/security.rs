//! The document's security: two bearer schemes (Baton API keys and OIDC access tokens), and on
//! each operation that needs credentials its security requirement, its role (`x-baton-role`, and
//! in the description) and the admins' `owner` query parameter. All from `access::REQUIREMENTS`.

use utoipa::openapi::{
    ObjectBuilder, OpenApi, Type,
    extensions::ExtensionsBuilder,
    path::{ParameterBuilder, ParameterIn},
    security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
};

use super::{
    super::access::{self, Access},
    errors,
};

pub const API_KEY: &str = "apiKey";
pub const OIDC_TOKEN: &str = "oidcToken";

pub fn add_security(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let api_key = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("baton_<id>_<secret>")
        .description(Some(
            "A Baton API key (`baton keys create`, or `POST /v1/keys`), sent as `Authorization: Bearer <key>`.",
        ))
        .build();
    let oidc = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "An access token of the OIDC issuer in `BATON_OIDC_ISSUER` (e.g. Microsoft Entra ID v2.0), for the \
             audience `BATON_OIDC_AUDIENCE`, signed RS256; the role comes from its `roles` claim.",
        ))
        .build();
    components.add_security_scheme(API_KEY, SecurityScheme::Http(api_key));
    components.add_security_scheme(OIDC_TOKEN, SecurityScheme::Http(oidc));

    for item in doc.paths.paths.values_mut() {
        for operation in errors::operations_mut(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            let Access::Role(role) = access::requirement(&id) else {
                // Open: an empty requirement list says no credentials are needed.
                operation.security = Some(Vec::new());
                continue;
            };
            operation.security = Some(vec![
                SecurityRequirement::new::<_, [&str; 0], &str>(API_KEY, []),
                SecurityRequirement::new::<_, [&str; 0], &str>(OIDC_TOKEN, []),
            ]);
            let note = format!("\n\nNeeds the `{role}` role (or a higher one).");
            let description = operation.description.get_or_insert_with(String::new);
            description.push_str(&note);
            let role = ExtensionsBuilder::new().add("x-baton-role", role.as_str()).build();
            match &mut operation.extensions {
                Some(extensions) => extensions.merge(role),
                None => operation.extensions = Some(role),
            }
            let owner = ParameterBuilder::new()
                .name("owner")
                .parameter_in(ParameterIn::Query)
                .description(Some(
                    "Admins only: act for this owner instead of the credential's own. Anyone else naming an \
                     owner other than their own is refused with 403 `forbidden`.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^[a-z0-9_-]{1,64}$")),
                ))
                .build();
            let parameters = operation.parameters.get_or_insert_with(Vec::new);
            let has_owner = parameters
                .iter()
                .any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "owner"));
            if !has_owner {
                parameters.push(owner.into());
            }
        }
    }
}
