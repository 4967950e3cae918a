//! The pure parts of the MCP client: the 2026-07-28 header encoding and
//! `_meta`, reply parsing, `resultType`, version choice, and the
//! `x-mcp-header` rules.

use mcp_oauth_host::http::Response;
use mcp_oauth_host::mcp::param_headers::{annotations, param_headers};
use mcp_oauth_host::mcp::wire::*;
use serde_json::{Value, json};

#[test]
fn sse_bodies_yield_their_messages() {
    // Multi-line data is joined with newlines; comments and other fields are skipped.
    let body = "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{}}\n\n: comment\ndata: {\"a\":2}\n";
    let m = sse_messages(body);
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["id"], 1);
    assert_eq!(m[1]["a"], 2);
    let m = sse_messages("data: {\"id\":3}\n\ndata:{\"id\":4}\n\n");
    assert_eq!(m.len(), 2);
}

#[test]
fn header_values_follow_the_encoding_rules() {
    // The spec's table of examples.
    assert_eq!(header_value("us-west1"), "us-west1");
    assert_eq!(header_value("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
    assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
    assert_eq!(header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
    assert_eq!(
        header_value("=?base64?literal?="),
        "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
    );
    assert_eq!(header_value("\tindented"), "=?base64?CWluZGVudGVk?=");
    assert_eq!(header_value("a\tb"), "a\tb");
    assert_eq!(header_value(""), "");
}

#[test]
fn meta_is_added_and_the_callers_keys_kept() {
    let p = json!({"name": "t", "_meta": {"progressToken": 7, META_PROTOCOL_VERSION: "x"}});
    let p = with_request_meta(p, MODERN_VERSION, &json!({}), &json!({"name": "c"}));
    assert_eq!(p["name"], "t");
    assert_eq!(p["_meta"]["progressToken"], 7);
    assert_eq!(p["_meta"][META_PROTOCOL_VERSION], MODERN_VERSION);
    assert_eq!(p["_meta"][META_CLIENT_CAPABILITIES], json!({}));
    assert_eq!(p["_meta"][META_CLIENT_INFO]["name"], "c");
    let p = with_request_meta(Value::Null, MODERN_VERSION, &json!({}), &Value::Null);
    assert!(p["_meta"].is_object());
}

#[test]
fn names_come_from_name_or_uri() {
    let h = modern_headers(MODERN_VERSION, "resources/read", &json!({"uri": "file:///a b"}));
    assert_eq!(h[2], ("Mcp-Name".to_string(), "file:///a b".to_string()));
    assert_eq!(
        modern_headers(MODERN_VERSION, "tools/list", &json!({"name": "x"})).len(),
        2
    );
    assert_eq!(
        mcp_name("prompts/get", &json!({"name": "é"})).unwrap(),
        "=?base64?w6k=?="
    );
}

#[test]
fn result_types_and_versions() {
    assert_eq!(result_kind(&json!({})), ResultKind::Complete);
    assert_eq!(result_kind(&json!({"resultType": "complete"})), ResultKind::Complete);
    assert_eq!(
        result_kind(&json!({"resultType": "input_required"})),
        ResultKind::InputRequired
    );
    assert_eq!(
        result_kind(&json!({"resultType": "task"})),
        ResultKind::Unknown("task".into())
    );
    assert_eq!(result_kind(&json!({"resultType": 3})), ResultKind::Unknown("3".into()));
    let v = versions(&json!(["2099-01-01", "2025-06-18", 5]));
    assert_eq!(pick_version(&v), Some("2025-06-18"));
    assert_eq!(
        pick_version(&versions(&json!(["2026-07-28", "2025-11-25"]))),
        Some(MODERN_VERSION)
    );
    assert_eq!(pick_version(&versions(&json!(["1999-01-01"]))), None);
}

#[test]
fn replies_are_found_by_id_in_json_and_sse() {
    let json = |status, ct: &str, body: &str| Response {
        status,
        headers: vec![("content-type".into(), ct.into())],
        body: body.as_bytes().to_vec(),
    };
    let r = json(200, "application/json", r#"{"jsonrpc":"2.0","id":4,"result":{"a":1}}"#);
    assert_eq!(find_reply(&r, 4).unwrap(), Some(Reply::Result(json!({"a": 1}))));
    assert_eq!(find_reply(&r, 5).unwrap(), None);
    let r = json(
        400,
        "application/json",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32022,"message":"m","data":{"supported":["x"]}}}"#,
    );
    assert!(matches!(
        find_reply(&r, 9).unwrap(),
        Some(Reply::Error { code: -32022, .. })
    ));
    let r = json(
        200,
        "text/event-stream",
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n",
    );
    assert_eq!(find_reply(&r, 2).unwrap(), Some(Reply::Result(json!({}))));
    assert!(find_reply(&json(400, "text/plain", "Bad Request"), 1).is_err());
    assert_eq!(find_reply(&json(400, "text/plain", ""), 1).unwrap(), None);
}

#[test]
fn valid_annotations_give_headers() {
    let schema = json!({"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "n": {"type": "integer", "x-mcp-header": "N"},
        "v": {"type": "boolean", "x-mcp-header": "Verbose"},
        "opt": {"type": "object", "properties": {"deep": {"type": "string", "x-mcp-header": "Deep"}}},
        "x-mcp-header": {"type": "string"},
        "q": {"type": "string", "default": {"x-mcp-header": "data"}},
    }});
    let a = annotations(&schema).unwrap();
    assert_eq!(a.len(), 4);
    let h = param_headers(
        &a,
        &json!({"region": "Hello, 世界", "n": 42.0, "v": null, "opt": {"deep": "d"}}),
    );
    let mut h: Vec<_> = h.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    h.sort();
    assert_eq!(
        h,
        [
            "Mcp-Param-Deep: d",
            "Mcp-Param-N: 42",
            "Mcp-Param-Region: =?base64?SGVsbG8sIOS4lueVjA==?="
        ]
    );
}

#[test]
fn invalid_annotations_are_refused() {
    let bad = [
        json!({"properties": {"v": {"type": "string", "x-mcp-header": ""}}}),
        json!({"properties": {"v": {"type": "string", "x-mcp-header": "My Region"}}}),
        json!({"properties": {"v": {"type": "string", "x-mcp-header": "A:B"}}}),
        json!({"properties": {"v": {"type": "string", "x-mcp-header": "Région"}}}),
        json!({"properties": {"v": {"type": "number", "x-mcp-header": "N"}}}),
        json!({"properties": {"v": {"type": "object", "x-mcp-header": "O"}}}),
        json!({"properties": {"v": {"type": "null", "x-mcp-header": "O"}}}),
        json!({"properties": {"a": {"type": "string", "x-mcp-header": "F"}, "b": {"type": "string", "x-mcp-header": "f"}}}),
        json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "I"}}}}),
        json!({"properties": {"a": {"oneOf": [{"type": "string", "x-mcp-header": "I"}]}}}),
        json!({"$defs": {"a": {"type": "string", "x-mcp-header": "I"}}}),
    ];
    for s in bad {
        assert!(annotations(&s).is_err(), "{s}");
    }
    let mut deep = json!({"type": "string"});
    for _ in 0..100 {
        deep = json!({"properties": {"a": deep}});
    }
    assert!(annotations(&deep).is_err());
}
