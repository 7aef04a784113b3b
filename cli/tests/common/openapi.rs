//! The admin API's OpenAPI description (docs/openapi.json), and checking real replies
//! against it.

use serde_json::Value;

use super::http::Reply;

/// docs/openapi.json, parsed.
pub(crate) fn openapi() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// Validates `reply` against the response schema the OpenAPI description gives for
/// `method path` and its status.
pub(crate) fn conforms(api: &Value, method: &str, path: &str, reply: &Reply) {
    let op = &api["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in docs/openapi.json");
    let response = &op["responses"][reply.status.to_string()];
    assert!(response.is_object(), "{method} {path} {} is not documented", reply.status);
    let schema = &response["content"]["application/json"]["schema"];
    let mut root = schema.clone();
    root["components"] = api["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let errors: Vec<String> = validator.iter_errors(&reply.body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {}: {errors:?}\n{}", reply.status, reply.body);
}
