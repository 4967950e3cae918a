//! The shared store through the real CLI and the library: one sign-in serves
//! every home on the store, a warm token costs no store command, usage
//! errors exit 2 without the password, an unreachable store exits 1 in time,
//! plain records are announced once, `status` shows the store without its
//! password.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use std::sync::Arc;

use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::redis::url::StoreUrl;
use mcp_oauth_host::storage::redis::{RedisOptions, RedisStore};
use mcp_oauth_host::{Config, Mode, Runtime, RuntimeOptions, SessionIo};
use support::{Cli, RedisServer, TempHome, key_file, temp_home};

/// The CLI on `home` with the variables `env` (the store's).
fn cli(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    env.iter().fold(Cli::new(home), |c, (k, v)| c.env(k, v)).run(args)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn commands_served(server: &RedisServer) -> u64 {
    let mut c = redis::Client::open(server.url("")).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// A library session on the shared store at `url` (sealed with `key`, else
/// plain), signing in through the headless browser; its home goes last.
fn library_session(url: &str, key: Option<&Path>, demo: &DemoServer) -> (TempHome, Runtime, mcp_oauth_host::Session) {
    let store = RedisStore::open(RedisOptions {
        url: StoreUrl::parse(url, None).unwrap(),
        user: None,
        secrets: if key.is_some() {
            SecretsChoice::Auto
        } else {
            SecretsChoice::File
        },
        key_file: key.map(Path::to_path_buf),
        ca_pem: None,
    })
    .unwrap();
    let home = temp_home("redis-lib");
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        store: Some(Arc::new(store)),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    };
    let session = rt.session(&demo.mcp_url(), Config::default(), io).unwrap();
    (home, rt, session)
}

#[test]
fn one_sign_in_serves_every_home_and_a_warm_token_costs_no_store_command() {
    let demo = DemoServer::start(Faults::default()).unwrap();
    let redis = RedisServer::start();
    let key = key_file("redis-cli-key");
    let url = redis.url("");
    let key_s = key.display().to_string();
    let env = [
        ("MCP_OAUTH_STORE", url.as_str()),
        ("MCP_OAUTH_STORE_KEY_FILE", key_s.as_str()),
    ];

    let home = temp_home("redis-a");
    let out = cli(&home, &env, &["login", &demo.mcp_url()]);
    assert!(out.status.success(), "{}", err(&out));
    let as_after_login = demo.as_requests();

    // Another machine's home: the token comes from the shared store.
    let other = temp_home("redis-b");
    let out = cli(&other, &env, &["token", &demo.mcp_url()]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(demo.as_requests(), as_after_login, "{:?}", demo.log());
    assert!(
        std::fs::read_dir(&other)
            .unwrap()
            .flatten()
            .all(|e| e.file_name() == "cache")
    );

    // No issued secret at rest in the store.
    let mut c = redis::Client::open(redis.url("")).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    for k in &keys {
        let kind: String = redis::cmd("TYPE").arg(k).query(&mut c).unwrap();
        let text: String = if kind == "hash" {
            redis::cmd("HGET").arg(k).arg("d").query(&mut c).unwrap()
        } else {
            redis::cmd("GET").arg(k).query(&mut c).unwrap()
        };
        for s in demo.issued_secrets() {
            assert!(!text.contains(&s), "{k} holds an issued secret");
        }
    }

    // The library: memory first. A second silent authorize asks the store nothing.
    let (_home, _rt, session) = library_session(&url, Some(&key), &demo);
    let first = session.authorize(Mode::Silent).unwrap();
    let before = commands_served(&redis);
    let second = session.authorize(Mode::Silent).unwrap();
    let after = commands_served(&redis);
    assert_eq!(first.token, second.token);
    // The INFO command itself is the one command counted between the reads.
    assert_eq!(after - before, 1, "a warm token() went to the store");
}

#[test]
fn usage_errors_exit_2_and_never_show_the_password() {
    let home = temp_home("redis-usage");
    for (store, word) in [
        ("http://u:pw-secret-1@127.0.0.1:1", "scheme"),
        ("redis://u:pw-secret-1@127.0.0.1:1/99", "db"),
        ("redis://u:pw-secret-1@127.0.0.1:1?nope=1", "parameter"),
    ] {
        let out = cli(&home, &[("MCP_OAUTH_STORE", store)], &["status"]);
        assert_eq!(out.status.code(), Some(2), "{store}: {}", err(&out));
        assert!(err(&out).contains(word), "{}", err(&out));
        assert!(!err(&out).contains("pw-secret-1"), "{}", err(&out));
    }
    let out = cli(&home, &[("MCP_OAUTH_USER", "a/b")], &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("user"), "{}", err(&out));

    // Sealed needs the key file: a usage error naming the variable.
    let redis = RedisServer::start();
    let out = cli(&home, &[("MCP_OAUTH_STORE", &redis.url(""))], &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("MCP_OAUTH_STORE_KEY_FILE"), "{}", err(&out));

    // A wrong password: exit 2, said so, not echoed.
    let mut c = redis::Client::open(redis.url("")).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("the-right-one")
        .query(&mut c)
        .unwrap();
    let out = cli(
        &home,
        &[
            ("MCP_OAUTH_STORE", &redis.url("")),
            ("MCP_OAUTH_STORE_PASSWORD", "a-wrong-one"),
            ("MCP_OAUTH_SECRETS", "file"),
        ],
        &["status"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", err(&out));
    assert!(err(&out).contains("refused the credentials"), "{}", err(&out));
    assert!(!err(&out).contains("a-wrong-one"), "{}", err(&out));
}

#[test]
fn unreachable_exits_1_in_time_and_plain_records_are_said_once() {
    let home = temp_home("redis-down");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = format!("redis://ops:pw-secret-2@127.0.0.1:{port}/0");
    let t = Instant::now();
    let out = cli(
        &home,
        &[("MCP_OAUTH_STORE", &store), ("MCP_OAUTH_SECRETS", "file")],
        &["token", "https://mcp.example.com/mcp"],
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(
        err(&out).contains(&format!("redis://ops:***@127.0.0.1:{port}/0")),
        "{}",
        err(&out)
    );
    assert!(!err(&out).contains("pw-secret-2"));
    assert!(!home.join("tokens").exists());

    let redis = RedisServer::start();
    let demo = DemoServer::start(Faults::default()).unwrap();
    let env = [
        ("MCP_OAUTH_STORE", redis.url("/2")),
        ("MCP_OAUTH_SECRETS", "file".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = cli(&home, &env, &["login", &demo.mcp_url()]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(err(&out).matches("keeps tokens unsealed").count(), 1, "{}", err(&out));
    let out = cli(&home, &env, &["status"]);
    assert!(out.status.success(), "{}", err(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("store:         redis://127.0.0.1:{}/2", redis.port)),
        "{stdout}"
    );
    assert!(stdout.contains("secrets:       plain"), "{stdout}");
}

#[test]
fn a_store_down_mid_session_is_an_error_not_a_new_sign_in() {
    let demo = DemoServer::start(Faults {
        access_ttl_secs: Some(2),
        ..Faults::default()
    })
    .unwrap();
    let mut redis = RedisServer::start();
    let (_home, _rt, session) = library_session(&redis.url(""), None, &demo);
    session.authorize(Mode::Interactive).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    redis.stop();
    let t = Instant::now();
    let e = session.authorize(Mode::Interactive).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(e.to_string().contains("the token store failed"), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{}", redis.port)), "{e}");
    assert_eq!(demo.count("/authorize"), 1, "a new sign-in beside the stored grant");
    assert_eq!(demo.count("/token"), 1, "a refresh without the lock");
}
