//! `bill-emulator`: runs the emulator and prints where it listens as one JSON
//! line on stdout. Never prints secrets.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bill_emulator::{Account, Config, Emulator};

const USAGE: &str = "usage: bill-emulator [--port N] [--control-port N] [--idle-timeout-ms N] [--hour-ms N]
  [--login-limit N] [--request-limit N] [--max-in-flight N] [--rate-limit-status N]
  [--api-endpoint URL] [--tls] [--state-dir DIR] [--exit-on-stdin-eof]
  [--user NAME] [--password PW] [--org ORGID] [--org-name NAME] [--dev-key KEY]";

struct Cli {
    cfg: Config,
    exit_on_stdin_eof: bool,
}

fn parse(args: Vec<String>) -> Result<Cli, String> {
    let mut cfg = Config::default();
    let mut acct = Account::demo();
    let mut exit_on_stdin_eof = false;
    // `--flag=value` is split so that no value is ever echoed in an error.
    let mut it = args.into_iter().flat_map(|a| match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => vec![f.to_string(), v.to_string()],
        _ => vec![a],
    });
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--port" => cfg.port = num(val()?)? as u16,
            "--control-port" => cfg.control_port = num(val()?)? as u16,
            "--idle-timeout-ms" => cfg.idle_timeout = Duration::from_millis(num(val()?)?),
            "--hour-ms" => cfg.hour = Duration::from_millis(num(val()?)?.max(1)),
            "--login-limit" => cfg.login_limit = num(val()?)?,
            "--request-limit" => cfg.request_limit = num(val()?)?,
            "--max-in-flight" => cfg.max_in_flight = num(val()?)?,
            "--rate-limit-status" => cfg.rate_limit_status = num(val()?)? as u16,
            "--api-endpoint" => cfg.api_endpoint = Some(val()?),
            "--tls" => cfg.tls = true,
            "--state-dir" => cfg.state_dir = Some(PathBuf::from(val()?)),
            "--exit-on-stdin-eof" => exit_on_stdin_eof = true,
            "--user" => acct.user_name = val()?,
            "--password" => acct.password = val()?,
            "--org" => acct.org_id = val()?,
            "--org-name" => acct.org_name = Some(val()?),
            "--dev-key" => acct.dev_key = val()?,
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown flag: {other}")),
            _ => return Err("unexpected argument (values follow their flag)".into()),
        }
    }
    cfg.accounts = vec![acct];
    Ok(Cli { cfg, exit_on_stdin_eof })
}

/// Blocks until SIGTERM, SIGINT, or (if asked) end of stdin.
fn wait_for_exit(exit_on_stdin_eof: bool) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        if exit_on_stdin_eof {
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                let _ = tx.send(());
            });
        } else {
            std::mem::forget(tx);
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = rx => {}
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    let cli = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("bill-emulator: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let state_dir = cli.cfg.state_dir.clone();
    let emu = match Emulator::start(cli.cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bill-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let line = serde_json::to_string(emu.info()).expect("info serializes");
    if let Some(dir) = state_dir {
        let _ =
            std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("emulator.json"), format!("{line}\n")));
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    drop(out);
    if let Err(e) = wait_for_exit(cli.exit_on_stdin_eof) {
        eprintln!("bill-emulator: {e}");
    }
    drop(emu);
    ExitCode::SUCCESS
}
