//! The built `keel` binary: version, help, and start-up refusals that name
//! the bad setting.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let cases: [(&[(&str, &str)], &str); 11] = [
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
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": allowed http/protobuf",
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "often")],
            "always_on | always_off | traceidratio",
        ),
    ];
    for (vars, expected) in cases {
        let mut cmd = keel();
        // A free port, never the default 8000 (a `make run` may hold it);
        // a case may still set BACKEND_PORT itself.
        cmd.arg("serve").env("BACKEND_PORT", "0");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let (code, _, stderr) = output_within(cmd, Duration::from_secs(20));
        assert_eq!(code, Some(1), "{vars:?}");
        assert!(stderr.contains(expected), "{vars:?}: {stderr}");
    }
}

/// Runs `cmd` to completion with a deadline (a case that unexpectedly
/// starts serving fails instead of hanging): exit code, stdout, stderr.
fn output_within(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

/// A port held by a listener of the test (what `make run` does to 8000).
fn busy_port() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Settings are checked before any socket is bound: a bad provider key on a
/// busy port is reported as the key, not as the port.
#[test]
fn bad_provider_setting_on_a_busy_port_names_the_setting() {
    let (_held, port) = busy_port();
    let mut cmd = keel();
    cmd.args(["serve", "--port", &port.to_string()])
        .env("AI_PROVIDER", "openai")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_API_KEY", "sk-test\u{1}");
    let (code, stdout, stderr) = output_within(cmd, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("OPENAI_API_KEY contains characters not allowed"),
        "{stderr}"
    );
    let all = format!("{stdout}{stderr}");
    assert!(!all.contains("cannot listen"), "{all}");
}

/// A busy port is one message (not a log line plus a copy on stderr) that
/// says how to pick another port.
#[test]
fn port_in_use_is_reported_once_with_a_hint() {
    let (_held, port) = busy_port();
    let mut cmd = keel();
    cmd.args(["serve", "--port", &port.to_string()]);
    let (code, stdout, stderr) = output_within(cmd, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    let all = format!("{stdout}{stderr}");
    assert_eq!(all.matches("cannot listen on").count(), 1, "{all}");
    assert!(
        stderr.contains("--port") && stderr.contains("BACKEND_PORT"),
        "{stderr}"
    );
}

/// Waits until keel answers readiness on `port` (or exits, or 15 s pass).
fn wait_ready(child: &mut std::process::Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready_ok(port) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("keel exited early with {status}");
        }
        assert!(Instant::now() < deadline, "keel did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    busy_port().1
}

/// `keel serve 2>&1 | tee log` and Ctrl-C: `tee` dies first, every later
/// log write fails with EPIPE. keel must still stop on SIGTERM, within the
/// grace period, with a clean exit.
#[test]
fn sigterm_stops_keel_after_its_log_reader_went_away() {
    let port = free_port();
    let mut child = keel()
        .args(["serve", "--port", &port.to_string()])
        .env("LOG_LEVEL", "debug")
        .env("SHUTDOWN_GRACE_SECONDS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut child, port);
    // The reader goes away: both pipes now have no reader.
    drop(child.stdout.take());
    drop(child.stderr.take());
    // Requests that log, so the broken pipe is hit before the signal too.
    for _ in 0..3 {
        assert!(ready_ok(port));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "clean exit after SIGTERM: {status}");
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keel did not stop on SIGTERM after its log reader went away");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs written to a pipe or a file carry no ANSI colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let port = free_port();
    let mut child = keel()
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.contains("keel listening") && Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("keel listening"), "{seen}");
    assert!(
        !seen.contains('\u{1b}'),
        "ANSI codes in piped logs: {seen:?}"
    );
}

/// `make help` lines up the descriptions of every target, long names too.
#[test]
fn make_help_columns_align() {
    let out = Command::new("make")
        .args(["--no-print-directory", "-s", "help"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MAKEFLAGS")
        .output()
        .expect("make is installed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "colour codes on a pipe: {text:?}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("recommend-resil-preset")),
        "{text}"
    );
    // Where each description starts: after the name and its padding.
    let columns: Vec<usize> = lines
        .iter()
        .map(|l| {
            let name_end = l.trim_start().find(' ').unwrap() + (l.len() - l.trim_start().len());
            name_end + l[name_end..].len() - l[name_end..].trim_start().len()
        })
        .collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
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
    // No preset in force (simple): production is closer by score but
    // would change summarize, sentiment and qa, so the plan keeps simple.
    let (code, out, _) = run(&["config", "migrate", "--format", "env"], &legacy);
    assert_eq!(code, 0);
    assert!(out.contains("RESILIENCE_PRESET=simple"), "{out}");
    assert!(
        out.contains("'production' scores higher but would change"),
        "{out}"
    );
    // With production in force, production it is.
    let mut on_production = legacy.to_vec();
    on_production.push(("RESILIENCE_PRESET", "production"));
    let (code, out, _) = run(&["config", "migrate", "--format", "env"], &on_production);
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

/// The start-up log of `keel serve` with `vars`, up to its "keel listening"
/// line (or 15 s).
fn start_up_log(vars: &[(&str, &str)]) -> String {
    let port = free_port();
    let mut cmd = keel();
    cmd.args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.contains("keel listening") && Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("keel listening"), "{seen}");
    seen
}

/// Fault injection in production is off unless asked for, and asking for it
/// is said out loud at start-up.
#[test]
fn chaos_enabled_in_production_warns_at_start_up() {
    let production = [
        ("ENVIRONMENT", "production"),
        ("API_KEY", "client-key"),
        ("INTERNAL_API_KEY", "operator-key"),
    ];
    let quiet = start_up_log(&production);
    assert!(!quiet.contains("CHAOS_ENABLED"), "{quiet}");
    let mut vars = production.to_vec();
    vars.push(("CHAOS_ENABLED", "true"));
    let loud = start_up_log(&vars);
    assert!(
        loud.lines()
            .any(|l| l.contains("WARN") && l.contains("CHAOS_ENABLED=true in production")),
        "{loud}"
    );
}
