//! `x-mcp-header` (2026-07-28 Streamable HTTP): tool parameters the server
//! wants mirrored into `Mcp-Param-{Name}` headers. A tool whose annotations
//! break the rules is invalid and left out of `tools/list`.

use serde_json::Value;

use super::wire::header_value;

/// Deeper schemas are refused rather than walked (stack and time bound).
const MAX_DEPTH: usize = 32;
/// More annotations than any real tool has; more make the tool invalid.
const MAX_ANNOTATIONS: usize = 64;
/// Largest integer JavaScript represents exactly (2^53 - 1).
const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// One annotated parameter: the header's name part and the property path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// `{Name}` of `Mcp-Param-{Name}`.
    pub name: String,
    /// Keys of `properties` from the schema root to the parameter.
    pub path: Vec<String>,
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Annotations reachable through `properties` chains, checked one by one.
fn reachable(node: &Value, path: &mut Vec<String>, out: &mut Vec<ParamHeader>) -> Result<(), String> {
    if path.len() > MAX_DEPTH {
        return Err("the input schema is too deep".into());
    }
    if let Some(h) = node.get("x-mcp-header") {
        let name = h.as_str().ok_or("x-mcp-header is not a string")?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("x-mcp-header {name:?} is not an HTTP field-name token"));
        }
        if !matches!(node["type"].as_str(), Some("string" | "integer" | "boolean")) {
            return Err(format!(
                "x-mcp-header {name:?} is on a parameter that is not a string, integer or boolean"
            ));
        }
        if out.len() >= MAX_ANNOTATIONS {
            return Err("too many x-mcp-header annotations".into());
        }
        if out.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(format!("x-mcp-header {name:?} is used twice"));
        }
        out.push(ParamHeader {
            name: name.to_string(),
            path: path.clone(),
        });
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            path.push(k.clone());
            reachable(child, path, out)?;
            path.pop();
        }
    }
    Ok(())
}

/// Every `x-mcp-header` key anywhere in the schema (a property named
/// `x-mcp-header` inside a `properties` map is a name, not an annotation;
/// literal values are data).
fn count_all(node: &Value, in_properties_map: bool, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err("the input schema is too deep".into());
    }
    let mut n = 0;
    match node {
        Value::Object(m) => {
            for (k, child) in m {
                if in_properties_map {
                    n += count_all(child, false, depth + 1)?;
                    continue;
                }
                if k == "x-mcp-header" {
                    n += 1;
                } else if !matches!(k.as_str(), "const" | "enum" | "default" | "examples") {
                    n += count_all(child, k == "properties", depth + 1)?;
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                n += count_all(child, false, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(n)
}

/// The annotations of a tool's `inputSchema`, or why the tool is invalid.
pub fn annotations(schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut out = Vec::new();
    reachable(schema, &mut Vec::new(), &mut out)?;
    if count_all(schema, false, 0)? != out.len() {
        return Err("x-mcp-header is on a property not reachable through properties alone".into());
    }
    Ok(out)
}

/// The `Mcp-Param-*` headers for a call with `arguments`: absent and null
/// values are omitted, as are values of the wrong shape.
pub fn param_headers(annotations: &[ParamHeader], arguments: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in annotations {
        let mut v = arguments;
        for k in &a.path {
            v = &v[k.as_str()];
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            {
                Some(i) if i.abs() <= MAX_SAFE_INTEGER => i.to_string(),
                _ => continue,
            },
            _ => continue,
        };
        out.push((format!("Mcp-Param-{}", a.name), header_value(&text)));
    }
    out
}
