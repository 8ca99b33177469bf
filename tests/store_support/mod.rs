//! A real `redis-server` for tests: found on PATH, started on a free loopback
//! port without persistence, stopped by pid.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    /// The port speaks TLS only (certificates from tests/store_support/tls).
    tls: bool,
}

/// Test certificates, valid until 2126: `ca.crt` signed `server.crt` (for
/// 127.0.0.1 and localhost; its CA key was thrown away); `other-ca.crt` signed nothing here.
pub fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/store_support/tls").join(name)
}

/// The `redis-server` on PATH, or a panic that says how to get one.
pub fn redis_server_path() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("redis-server");
        if p.is_file() {
            return p;
        }
    }
    panic!("redis-server is not on PATH: these tests need a real Redis (Debian: apt-get install redis-server; .ci/run installs it)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A server whose port speaks only TLS.
    pub fn start_tls() -> RedisServer {
        Self::start_mode(&[], true)
    }

    /// Starts with extra `redis-server` arguments (e.g. `--requirepass x`);
    /// `{dir}` in an argument becomes the server's temporary directory.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_mode(extra, false)
    }

    fn start_mode(extra: &[&str], tls: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("bill-store-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap().to_owned();
        let extra = extra.iter().map(|s| s.replace("{dir}", &d)).collect();
        let mut s = RedisServer { child: None, port: 0, dir, extra, tls };
        // Another process may take the free port before redis-server binds it: try a few.
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn() {
                return s;
            }
        }
        let log = std::fs::read_to_string(s.dir.join("redis.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        panic!("redis-server did not start on a free loopback port; its log ends:\n{}", tail.join("\n"));
    }

    /// Starts the server on `self.port`; true once it answers.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let tls_args: Vec<String> = if self.tls {
            let f = |n: &str| tls_file(n).to_str().unwrap().to_owned();
            ["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]
                .iter()
                .map(|s| s.to_string())
                .chain(["--tls-cert-file".into(), f("server.crt"), "--tls-key-file".into(), f("server.key")])
                .chain(["--tls-ca-cert-file".into(), f("ca.crt")])
                .collect()
        } else {
            vec!["--port".into(), port]
        };
        let log_path = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log_path); // a restart must not read the last run's log
        let mut child = Command::new(redis_server_path())
            .args(&tls_args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--logfile", log_path.to_str().unwrap()])
            .args(["--daemonize", "no", "--dir", self.dir.to_str().unwrap()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server failed to start");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // Our own log says so: a server of another test that happens to hold
            // the port cannot be mistaken for ours (ours fails to bind and exits).
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("Ready to accept connections") && child.try_wait().unwrap().is_none() {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// `kill -9` by pid, then reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (retrying while the old socket lingers).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis-server did not restart on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A direct client connection, for checking what is stored.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every key and every value in the server, as bytes.
pub fn dump_everything(server: &RedisServer) -> Vec<(String, Vec<u8>)> {
    let mut c = server.client();
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(100).query(&mut c).unwrap();
        for k in keys {
            let ty: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
            let mut bytes: Vec<u8> = match ty.as_str() {
                "string" => redis::cmd("GET").arg(&k).query(&mut c).unwrap(),
                "hash" => {
                    let h: HashMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
                    h.into_iter().flat_map(|(a, b)| [a, b]).flatten().collect()
                }
                "zset" => {
                    let z: Vec<Vec<u8>> =
                        redis::cmd("ZRANGE").arg(&k).arg(0).arg(-1).arg("WITHSCORES").query(&mut c).unwrap();
                    z.concat()
                }
                "none" => continue, // expired between SCAN and TYPE
                other => panic!("unexpected key type {other} for {k}"),
            };
            let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query(&mut c).unwrap();
            bytes.extend(dump.unwrap_or_default());
            out.push((k, bytes));
        }
        cursor = next;
        if cursor == 0 {
            return out;
        }
    }
}
