//! The `bill-emulator` binary: first stdout line, flags, clean exit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn spawn(args: &[&str]) -> (Child, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bill-emulator"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "emulator did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn first_line_flags_and_exit_on_stdin_eof() {
    let (mut child, info) = spawn(&[
        "--exit-on-stdin-eof",
        "--user",
        "cli@example.com",
        "--password",
        "cli-secret-pw",
        "--org=00901CLI",
        "--dev-key",
        "CLI-KEY",
        "--login-limit",
        "1",
    ]);
    let keys: Vec<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["port", "control_port", "scheme", "v2_base", "v3_base", "control", "ca_file", "wrong_ca_file"] {
        assert!(keys.contains(&k), "{k} missing in {info}");
    }
    let port = info["port"].as_u64().unwrap();
    assert_eq!(info["v2_base"], format!("http://127.0.0.1:{port}/api/v2"));
    assert_eq!(info["v3_base"], format!("http://127.0.0.1:{port}/connect"));
    assert_eq!((info["scheme"].as_str(), info["ca_file"].is_null()), (Some("http"), true));

    let login = |pw: &str| {
        let form = [("userName", "cli@example.com"), ("password", pw), ("orgId", "00901CLI"), ("devKey", "CLI-KEY")];
        read(agent().post(format!("{}/Login.json", info["v2_base"].as_str().unwrap())).send_form(form))
    };
    assert_eq!(login("cli-secret-pw").v2_code(), None);
    assert_eq!(login("cli-secret-pw").v2_code().as_deref(), Some("BDC_1144"));
    let stats = read(agent().get(format!("{}/_emu/stats", info["control"].as_str().unwrap())).call()).json();
    assert_eq!(stats["logins"], 1);

    drop(child.stdin.take());
    assert!(wait_exit(&mut child).success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("cli-secret-pw"));
}

#[test]
fn tls_state_dir_and_sigterm() {
    let dir = std::env::temp_dir().join(format!("bill-emu-cli-{}", std::process::id()));
    let (mut child, info) = spawn(&["--tls", "--state-dir", dir.to_str().unwrap(), "--idle-timeout-ms", "1000"]);
    assert_eq!(info["scheme"], "https");
    assert!(info["v2_base"].as_str().unwrap().starts_with("https://127.0.0.1:"));
    for k in ["ca_file", "wrong_ca_file"] {
        let f = info[k].as_str().unwrap();
        assert!(std::fs::read_to_string(f).unwrap().starts_with("-----BEGIN CERTIFICATE-----"), "{k}");
    }
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("emulator.json")).unwrap()).unwrap();
    assert_eq!(saved, info);
    let cfg = read(agent().get(format!("{}/_emu/config", info["control"].as_str().unwrap())).call()).json();
    assert_eq!(cfg["idle_timeout_ms"], 1000);

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(wait_exit(&mut child).success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_flag_exits_2() {
    let bad: [&[&str]; 8] = [
        &["--bogus"],
        &["--passwd=hunter2-secret"],
        &["--port", "x"],
        &["stray-hunter2-secret"],
        &["--port", "99999"],
        &["--control-port=65616"],
        &["--rate-limit-status", "70000"],
        &["--login-limit", "-1"],
    ];
    for args in bad {
        let out = Command::new(env!("CARGO_BIN_EXE_bill-emulator")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"), "{args:?}");
    }
}

#[test]
fn print_demo_account() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bill-emulator")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let demo = run(&["--print-demo-account"]);
    assert_eq!(demo["userName"], bill_emulator::DEMO_USER);
    assert_eq!(demo["password"], bill_emulator::DEMO_PASSWORD);
    assert_eq!(demo["orgId"], bill_emulator::DEMO_ORG);
    assert_eq!(demo["orgName"], bill_emulator::DEMO_ORG_NAME);
    assert_eq!(demo["devKey"], bill_emulator::DEMO_DEV_KEY);
    // The account flags change what is seeded, and so what is printed.
    let changed = run(&["--print-demo-account", "--user", "other@example.com", "--dev-key=K2"]);
    assert_eq!((changed["userName"].as_str(), changed["devKey"].as_str()), (Some("other@example.com"), Some("K2")));
    assert_eq!(changed["password"], bill_emulator::DEMO_PASSWORD);
}
