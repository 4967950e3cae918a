//! `mcp-oauth config <url>`: the JSON to paste into Claude Desktop's or
//! Cursor's MCP configuration (stdout), and where it goes (stderr).

use clap::Args;

use super::Failure;

#[derive(Args)]
pub(crate) struct ConfigArgs {
    /// The MCP server URL
    pub url: String,
    /// The server's name in the client (default: from the URL's host)
    #[arg(long)]
    pub name: Option<String>,
    /// More `mcp-oauth proxy` options, after `--` (e.g. -- --header "X-Key: ${KEY}")
    #[arg(last = true)]
    pub proxy_args: Vec<String>,
}

/// A name for the server from its URL: the host, and the port if any.
fn default_name(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("mcp").trim_start_matches("mcp.");
    match url.port() {
        Some(p) => format!("{host}-{p}"),
        None => host.to_string(),
    }
}

/// `${VAR}` names in the proxy arguments, for the snippet's `env`.
fn variables(args: &[String]) -> Vec<String> {
    let mut vars = Vec::new();
    for a in args {
        let mut rest = a.as_str();
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else { break };
            if !vars.iter().any(|v| v == &after[..end]) {
                vars.push(after[..end].to_string());
            }
            rest = &after[end + 1..];
        }
    }
    vars
}

pub(crate) fn config(a: ConfigArgs) -> Result<(), Failure> {
    let url = mcp_oauth_host::http::check_policy(&a.url).map_err(|e| {
        Failure::Usage(format!(
            "{e}; give the MCP server's https URL, e.g. https://mcp.example.com/mcp"
        ))
    })?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::Usage(format!("cannot tell where this program is: {e}")))?;
    let mut args = vec!["proxy".to_string(), a.url.clone()];
    args.extend(a.proxy_args.iter().cloned());
    let mut server = serde_json::json!({"command": exe.display().to_string(), "args": args});
    let vars = variables(&a.proxy_args);
    if !vars.is_empty() {
        let env: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .map(|v| (v.clone(), serde_json::Value::String(format!("<your {v}>"))))
            .collect();
        server["env"] = serde_json::Value::Object(env);
    }
    let name = a.name.unwrap_or_else(|| default_name(&url));
    let snippet = serde_json::json!({"mcpServers": {name: server}});
    println!("{}", serde_json::to_string_pretty(&snippet).unwrap_or_default());
    let p = mcp_oauth_host::terminal::printable;
    eprintln!(
        "\nAdd the entry under \"mcpServers\" to your client's configuration:\n\
         \x20 Claude Desktop: claude_desktop_config.json (Settings > Developer > Edit Config)\n\
         \x20 Cursor:         ~/.cursor/mcp.json (or .cursor/mcp.json in a project)\n\
         Desktop clients start the proxy with few environment variables; put any it\n\
         needs (MCP_OAUTH_HOME, BROWSER, the variables your --header values name)\n\
         under \"env\".\n\n\
         Sign in beforehand, so the client's first request does not wait for the\n\
         browser (its request timeout is often 60 s):\n\n  {} login {}",
        p(&exe.display().to_string()),
        p(&a.url)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_variables() {
        let u = url::Url::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(default_name(&u), "example.com");
        let u = url::Url::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(default_name(&u), "127.0.0.1-8080");
        let v = variables(&["--header".into(), "X: ${A} ${B}-${A}".into()]);
        assert_eq!(v, vec!["A".to_string(), "B".to_string()]);
    }
}
