//! The `tributary-api` binary as an operator runs it: configuration errors, start-up, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="; // 32 bytes of '*'

fn api() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary-api"));
    // A clean environment: only what each test sets.
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIBUTARY_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "info");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn without_a_master_key_the_server_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = api().current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("master_key is not set"), "{err}");
    assert!(!dir.path().join("tributary.db").exists(), "nothing is created before the configuration is valid");
}

#[test]
fn invalid_configuration_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    for (k, v, needle) in [
        ("TRIBUTARY_MASTER_KEY", "too-short", "master_key"),
        ("TRIBUTARY_LISTEN", "not-an-address", "listen"),
        ("TRIBUTARY_DATABASE_URL", "mysql://x", "database_url"),
        ("TRIBUTARY_WORKERS", "many", "workers"),
        ("TRIBUTARY_LOG_FORMAT", "xml", "log_format"),
        ("TRIBUTARY_METRICS_LISTEN", "somewhere", "metrics_listen"),
    ] {
        let out = api().current_dir(dir.path()).env("TRIBUTARY_MASTER_KEY", KEY).env(k, v).output().unwrap();
        assert!(!out.status.success(), "{k}={v} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{k}: {err}");
        assert!(err.contains(needle), "{k}: {err}");
    }
    let out = api().args(["--config", "/nonexistent/tributary.toml"]).env("TRIBUTARY_MASTER_KEY", KEY).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn settings_come_from_the_file_and_environment_variables_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.toml");
    std::fs::write(&file, format!("master_key = \"{KEY}\"\nlisten = \"not-valid\"\n")).unwrap();
    let out = api().args(["--config", file.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"), "the file's listen is used");
    let port = free_port();
    let db = dir.path().join("deep/er/t.db");
    let mut child = api()
        .args(["--config", file.to_str().unwrap()])
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIBUTARY_DATABASE_URL", format!("sqlite://{}", db.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_health(port);
    assert!(db.exists(), "an absolute sqlite:// path is created with its directories");
    stop(&mut child);
}

fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server did not become healthy on port {port}");
}

fn stop(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_migrates_a_new_database_serves_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = api()
        .current_dir(dir.path())
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_health(port);
    assert!(dir.path().join("tributary.db").exists(), "the default sqlite://tributary.db is created in the working directory");
    let status = stop(&mut child);
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok).collect();
    assert!(log.iter().any(|l| l.contains("shutdown requested")), "{log:?}");
    assert!(log.iter().all(|l| !l.contains(KEY)), "the master key is never logged");
}

#[test]
fn an_in_flight_request_finishes_before_the_server_exits() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = api()
        .current_dir(dir.path())
        .env("TRIBUTARY_MASTER_KEY", KEY)
        .env("TRIBUTARY_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_health(port);
    // Send the head of a request, ask the server to stop, then finish the request.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "the in-flight request was answered: {buf:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
