//! A real `redis-server` for tests, started on a free loopback port and
//! killed on drop (or on demand, for fault tests).
//!
//! When `redis-server` is not installed, [`RedisServer::start`] returns
//! `None` after printing why, so `make test` still passes on a bare machine —
//! unless `KEEL_REQUIRE_REDIS=1` (set by CI), which turns the absence into a
//! panic.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Set in durable mode: the directory of the append-only file, kept
    /// across [`RedisServer::restart`] and removed on drop.
    dir: Option<std::path::PathBuf>,
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn required() -> bool {
    std::env::var("KEEL_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

impl RedisServer {
    /// Starts a server, or returns `None` (with a printed reason) when
    /// `redis-server` is unavailable and Redis is not required.
    pub fn start() -> Option<RedisServer> {
        match Self::try_start() {
            Ok(server) => Some(server),
            Err(reason) if !required() => {
                eprintln!(
                    "SKIP: redis-server not available ({reason}); set KEEL_REQUIRE_REDIS=1 to make this a failure"
                );
                None
            }
            Err(reason) => panic!("KEEL_REQUIRE_REDIS=1 but redis-server cannot start: {reason}"),
        }
    }

    /// Like [`RedisServer::start`], but durable: `--appendonly yes
    /// --appendfsync always` in a private directory, so what was written
    /// before a [`RedisServer::kill`] is there after [`RedisServer::restart`].
    pub fn start_durable() -> Option<RedisServer> {
        match Self::try_start_in(true) {
            Ok(server) => Some(server),
            Err(reason) if !required() => {
                eprintln!(
                    "SKIP: redis-server not available ({reason}); set KEEL_REQUIRE_REDIS=1 to make this a failure"
                );
                None
            }
            Err(reason) => panic!("KEEL_REQUIRE_REDIS=1 but redis-server cannot start: {reason}"),
        }
    }

    fn try_start() -> Result<RedisServer, String> {
        Self::try_start_in(false)
    }

    fn try_start_in(durable: bool) -> Result<RedisServer, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let dir = if durable {
            let dir =
                std::env::temp_dir().join(format!("keel-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            Some(dir)
        } else {
            None
        };
        let mut server = RedisServer {
            port,
            child: None,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut args: Vec<String> = [
            "--port",
            port.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--protected-mode",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match &self.dir {
            Some(dir) => {
                args.extend(
                    ["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(String::from),
                );
                args.push(dir.display().to_string());
            }
            None => args.extend(["--appendonly", "no"].map(String::from)),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "redis-server did not listen on port {} within 5 s",
            self.port
        ))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("cannot restart redis-server: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
