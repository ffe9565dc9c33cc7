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
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("BACKEND_PORT", "eighty")], "BACKEND_PORT"),
        (&[("AI_PROVIDER", "claude")], "local | openai | gemini"),
        (&[("ENVIRONMENT", "production")], "API_KEY"),
        (&[("LOG_LEVEL", "loud=[")], "LOG_LEVEL"),
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
