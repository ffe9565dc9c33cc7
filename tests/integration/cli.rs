//! The built `keel` binary: version, help, and start-up refusals that name
//! the bad setting.

use std::process::Command;

fn keel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    // Start from a clean slate: no inherited keel settings, no .env.
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    c
}

#[test]
fn version_and_help() {
    let out = keel().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("keel {}", env!("CARGO_PKG_VERSION"))
    );
    let out = keel().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve"), "{help}");
    let out = keel().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--host") && help.contains("--port"), "{help}");
}

#[test]
fn bad_settings_stop_start_up_with_a_clear_message() {
    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[("BACKEND_PORT", "eighty")], "BACKEND_PORT"),
        (&[("AI_PROVIDER", "claude")], "local | openai | gemini"),
        (&[("ENVIRONMENT", "production")], "API_KEY"),
        (&[("LOG_LEVEL", "loud=[")], "LOG_LEVEL"),
        (
            &[("RESILIENCE_PRESET", "fast")],
            "simple | development | production",
        ),
        (
            &[("RESILIENCE_CUSTOM_CONFIG", "{}")],
            "RESILIENCE_CUSTOM_CONFIG",
        ),
        (
            &[("RESILIENCE_CUSTOM_CONFIG", r#"{"retry_attempts": 15}"#)],
            "retry_attempts",
        ),
        (&[("RETRY_MAX_ATTEMPTS", "many")], "RETRY_MAX_ATTEMPTS"),
        (
            &[
                ("AI_PROVIDER", "openai"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
                ("OPENAI_API_KEY", "sk-test\u{1}"),
            ],
            "OPENAI_API_KEY contains characters not allowed",
        ),
    ];
    for (vars, expected) in cases {
        let mut cmd = keel();
        cmd.arg("serve");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{vars:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{vars:?}: {stderr}");
    }
}

fn run(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = keel();
    cmd.args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn presets_commands() {
    let (code, out, _) = run(&["presets", "list"], &[]);
    assert_eq!(code, 0);
    for name in ["simple", "development", "production"] {
        assert!(out.contains(name), "{out}");
    }
    let (code, out, _) = run(&["presets", "show", "production"], &[]);
    assert_eq!(code, 0);
    let qa = out.lines().find(|l| l.starts_with("qa ")).expect("qa row");
    let cols: Vec<&str> = qa.split_whitespace().collect();
    assert_eq!(&cols[..5], ["qa", "critical", "7", "10", "300s"], "{qa}");
    let (code, _, err) = run(&["presets", "show", "fast"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("allowed: simple, development, production"),
        "{err}"
    );

    let (code, out, _) = run(&["presets", "recommend", "prod"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("recommended preset: production") && out.contains("0.90"),
        "{out}"
    );
    let (_, out, _) = run(
        &["presets", "recommend"],
        &[("ENVIRONMENT", "staging"), ("DEBUG", "false")],
    );
    assert!(out.contains("recommended preset: production"), "{out}");
    let (_, out, _) = run(&["presets", "recommend"], &[]);
    assert!(
        out.contains("recommended preset: simple") && out.contains("0.50"),
        "{out}"
    );
}

#[test]
fn config_commands() {
    let (code, out, _) = run(
        &["config", "validate"],
        &[("RESILIENCE_PRESET", "development")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("valid"), "{out}");
    let (code, out, _) = run(
        &["config", "validate", "--json", r#"{"retry_attempts": 15}"#],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("retry_attempts") && out.contains("maximum of 10"),
        "{out}"
    );
    let (code, out, _) = run(
        &[
            "config",
            "validate",
            "--json",
            r#"{"exponential_min": 9, "exponential_max": 6}"#,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("exponential_min must be less than exponential_max"),
        "{out}"
    );

    let (code, out, _) = run(&["config", "migrate"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("recommended preset: simple") && out.contains("HIGH"),
        "{out}"
    );
    let legacy = [
        ("RETRY_MAX_ATTEMPTS", "5"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "10"),
        ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "120"),
        ("DEFAULT_RESILIENCE_STRATEGY", "conservative"),
    ];
    let (code, out, _) = run(&["config", "migrate", "--format", "env"], &legacy);
    assert_eq!(code, 0);
    assert!(out.contains("RESILIENCE_PRESET=production"), "{out}");
    let (code, _, _) = run(&["config", "migrate", "--format", "yaml"], &[]);
    assert_eq!(code, 2);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = keel()
        .args(["serve", "--port", &port.to_string()])
        .env("LOG_LEVEL", "warn")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if ready_ok(port) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keel did not become ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "clean exit after SIGTERM");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keel did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// On an image without a CA bundle, a plain-`http` provider (a model server
/// on the local network) still starts, and an `https` one is refused at
/// start-up with the fix named — not on the first request.
#[test]
fn root_certificates_are_needed_only_for_https_providers() {
    let dir = std::env::temp_dir().join(format!("keel-no-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty_bundle = dir.join("empty.pem");
    std::fs::write(&empty_bundle, "").unwrap();
    let no_ca = |base_url: &str| {
        let mut c = keel();
        c.env("SSL_CERT_FILE", &empty_bundle)
            .env("SSL_CERT_DIR", &dir)
            .env("AI_PROVIDER", "openai")
            .env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_BASE_URL", base_url)
            .env("LOG_LEVEL", "error");
        c
    };

    let out = no_ca("https://llm.example.test/v1")
        .args(["serve", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("root certificates") && stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = no_ca("http://127.0.0.1:9/v1")
        .args(["serve", "--port", &port.to_string()])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready_ok(port) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("keel exited with {status} for a plain-http provider");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keel did not become ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A bare HTTP/1.0 readiness probe (no client library needed in a sync test).
fn ready_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.write_all(b"GET /v1/health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}
