//! rmcp's own client over the mcp-oauth transport, against the host's demo
//! servers (an authorization server and a protected MCP server on
//! 127.0.0.1) with the real engine component, signing in through the
//! headless browser: a cold start, a warm start from the store, a refresh,
//! a rejected token, a decline and its latch, DPoP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::select::StorePlace;
use mcp_oauth_host::{AuthError, Config, Error, Mode, Runtime, RuntimeOptions, Session, SessionIo};
use mcp_oauth_rmcp::{engine_error, transport};
use rmcp::ServiceExt;
use rmcp::service::ClientInitializeError;

/// A fresh store directory, removed with all it holds when dropped.
struct Home(PathBuf);

impl Home {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-oauth-rmcp-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A session for the demo's MCP server on the store in `home` (plain files,
/// whatever the environment says), consenting at once and signing in
/// through the headless browser. Each call loads its own runtime: a second
/// one on the same home is a new process as far as the store goes.
fn session(home: &Path, server: &DemoServer) -> Arc<Session> {
    let runtime = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        secrets: SecretsChoice::File,
        place: StorePlace::default(),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    };
    Arc::new(runtime.session(&server.mcp_url(), Config::default(), io).unwrap())
}

/// Connects an rmcp client through the transport, lists the tools, closes.
async fn tool_names(session: &Arc<Session>, url: &str) -> Vec<String> {
    let client = ().serve(transport(session.clone(), url)).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    client.cancel().await.unwrap();
    tools.into_iter().map(|t| t.name.into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_sign_in_then_a_warm_start_from_the_store() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = Home::new("cold");
    let cold = session(&home.0, &server);
    assert_eq!(tool_names(&cold, &server.mcp_url()).await, ["echo"]);
    assert_eq!(server.count("/authorize"), 1, "{:?}", server.log());
    // Another runtime and session on the same store: the stored token, no
    // request to the authorization server.
    let before = server.as_requests();
    let warm = session(&home.0, &server);
    assert_eq!(tool_names(&warm, &server.mcp_url()).await, ["echo"]);
    assert_eq!(server.as_requests(), before, "{:?}", server.log());
    assert_eq!(server.count("/authorize"), 1);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once() {
    // 4 s tokens: stale once half their lifetime is left (the engine's
    // margin, 60 s, is capped at half the lifetime).
    let server = DemoServer::start(Faults {
        access_ttl_secs: Some(4),
        ..Faults::default()
    })
    .unwrap();
    let home = Home::new("refresh");
    let session = session(&home.0, &server);
    let client = ().serve(transport(session.clone(), server.mcp_url())).await.unwrap();
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let before = server.count("/token");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools[0].name, "echo");
    assert_eq!(
        server.count("/token"),
        before + 1,
        "exactly one refresh: {:?}",
        server.log()
    );
    assert_eq!(server.count("/authorize"), 1, "no new sign-in");
    client.cancel().await.unwrap();
    assert!(!server.reuse_detected(), "a rotated refresh token was reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_answered_through_the_session_and_the_request_retried() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = Home::new("rejected");
    let session = session(&home.0, &server);
    let client = ().serve(transport(session.clone(), server.mcp_url())).await.unwrap();
    assert_eq!(client.list_all_tools().await.unwrap().len(), 1);
    // As after a server reset: the access and refresh tokens are refused.
    server.revoke_all();
    // 401 → the engine signs in again → the same request, retried, succeeds.
    assert_eq!(client.list_all_tools().await.unwrap()[0].name, "echo");
    assert_eq!(server.count("/authorize"), 2, "{:?}", server.log());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_fails_the_connection_and_is_latched() {
    let server = DemoServer::start(Faults {
        deny: true,
        ..Faults::default()
    })
    .unwrap();
    let home = Home::new("decline");
    let session = session(&home.0, &server);
    for attempt in 1..=2 {
        let error = match ().serve(transport(session.clone(), server.mcp_url())).await {
            Ok(_) => panic!("attempt {attempt}: connected although the user declined"),
            Err(e) => e,
        };
        let text = error.to_string();
        assert!(text.contains("declined"), "attempt {attempt}: {text}");
        let ClientInitializeError::TransportError {
            error: transport_error, ..
        } = &error
        else {
            panic!("attempt {attempt}: not a transport error: {text}");
        };
        assert!(
            matches!(
                engine_error(&*transport_error.error),
                Some(Error::Auth(AuthError::Declined))
            ),
            "attempt {attempt}: {text}"
        );
        // The second attempt meets the latch: no new sign-in.
        assert_eq!(server.count("/authorize"), 1, "attempt {attempt}: {:?}", server.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_go_with_a_fresh_proof_on_every_request() {
    let server = DemoServer::start(Faults {
        dpop: true,
        ..Faults::default()
    })
    .unwrap();
    let home = Home::new("dpop");
    let session = session(&home.0, &server);
    let client = ().serve(transport(session.clone(), server.mcp_url())).await.unwrap();
    // The server refuses a bound token sent as Bearer, and a proof used twice.
    for _ in 0..3 {
        assert_eq!(client.list_all_tools().await.unwrap()[0].name, "echo");
    }
    client.cancel().await.unwrap();
    assert!(session.authorize(Mode::Silent).unwrap().dpop, "the grant is DPoP-bound");
    assert_eq!(server.count("/authorize"), 1, "{:?}", server.log());
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

/// Requests to the MCP server (any method) for three `tools/list` calls by a
/// new client on a new store, against the demo with `faults`.
async fn mcp_requests_for_three_listings(faults: Faults, tag: &str) -> usize {
    let server = DemoServer::start(faults).unwrap();
    let home = Home::new(tag);
    let session = session(&home.0, &server);
    let client = ().serve(transport(session.clone(), server.mcp_url())).await.unwrap();
    for _ in 0..3 {
        assert_eq!(client.list_all_tools().await.unwrap()[0].name, "echo");
    }
    client.cancel().await.unwrap();
    assert!(session.authorize(Mode::Silent).unwrap().dpop, "the grant is DPoP-bound");
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    server.count("/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_nonce_the_mcp_server_demands_is_learnt_once_and_kept() {
    let plain = mcp_requests_for_three_listings(
        Faults {
            dpop: true,
            ..Faults::default()
        },
        "dpop-plain",
    )
    .await;
    // The MCP server demands a nonce of its own; rmcp's errors do not carry
    // it, so the transport probes for it once: the refused request and the
    // probe are the only requests more than without a nonce, and later
    // requests carry the nonce from the start.
    let with_nonce = mcp_requests_for_three_listings(
        Faults {
            dpop: true,
            dpop_nonce: Some("as-nonce-1".into()),
            mcp_dpop_nonce: Some("rs-nonce-1".into()),
            ..Faults::default()
        },
        "dpop-nonce",
    )
    .await;
    assert_eq!(
        with_nonce,
        plain + 2,
        "{plain} requests without a nonce, {with_nonce} with"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_401_of_a_long_session_is_answered_with_a_refresh() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = Home::new("rearm");
    let session = session(&home.0, &server);
    let client = ().serve(transport(session.clone(), server.mcp_url())).await.unwrap();
    client.list_all_tools().await.unwrap();
    // The access tokens revoked, the refresh tokens good: each 401 is
    // answered with a refresh, as the success after each retry re-arms the
    // engine's once-per-rejection refresh.
    for round in 1..=3 {
        server.revoke_access_tokens();
        let (mcp, token) = (server.count("/mcp"), server.count("/token"));
        assert_eq!(client.list_all_tools().await.unwrap()[0].name, "echo", "round {round}");
        assert_eq!(server.count("/token"), token + 1, "round {round}: one refresh");
        assert_eq!(server.count("/mcp"), mcp + 2, "round {round}: refused, sent again");
    }
    client.cancel().await.unwrap();
    assert_eq!(server.count("/authorize"), 1, "{:?}", server.log());
}
