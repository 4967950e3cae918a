//! `--header "Name: value"`: `${VAR}` expands from the environment so that
//! secrets stay out of config files. An unset variable is an error naming it,
//! never a silently empty header.

/// Headers the proxy sets itself; a `--header` may not replace them.
const MANAGED: [&str; 8] = [
    "host",
    "content-type",
    "content-length",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "transfer-encoding",
];

/// Parses and expands one `--header` value with `lookup` for variables.
pub fn parse_header(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("--header {raw:?} has no ':'; write it as \"Name: value\""))?;
    let name = name.trim();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token_char) {
        return Err(format!("--header {name:?}: not a valid header name"));
    }
    if MANAGED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("--header {name}: the proxy sets this header itself"));
    }
    let value = expand(value.trim(), &lookup).map_err(|e| format!("--header {name}: {e}"))?;
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("--header {name}: the value holds a line break"));
    }
    Ok((name.to_string(), value))
}

/// Replaces each `${VAR}` with the variable's value.
fn expand(text: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "a \"${\" without its closing \"}\"".to_string())?;
        let var = &after[..end];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("${{{var}}} is not a variable name"));
        }
        let value = lookup(var)
            .ok_or_else(|| format!("the environment variable {var} is not set (it is used as ${{{var}}})"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        match v {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_and_unset_ones_are_named() {
        assert_eq!(
            parse_header("Authorization: Bearer ${TOKEN}", env).unwrap(),
            ("Authorization".into(), "Bearer s3cret".into())
        );
        assert_eq!(parse_header("X-A:${TOKEN}-${EMPTY}x", env).unwrap().1, "s3cret-x");
        let e = parse_header("X-Key: ${MISSING_VAR}", env).unwrap_err();
        assert!(e.contains("MISSING_VAR") && e.contains("not set"), "{e}");
        assert!(parse_header("X-Key: ${OPEN", env).is_err());
        assert!(parse_header("X-Key: ${a-b}", env).is_err());
    }

    #[test]
    fn bad_names_and_managed_headers_are_refused() {
        assert!(parse_header("no colon", env).is_err());
        assert!(parse_header("Bad Name: x", env).is_err());
        assert!(parse_header("Mcp-Session-Id: x", env).is_err());
        assert!(parse_header("X-Ok: a:b", env).is_ok());
    }
}
