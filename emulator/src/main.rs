//! `bill-emulator`: runs the emulator and prints where it listens as one JSON
//! line on stdout. Never prints secrets.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bill_emulator::{Account, Config, ConfigPatch, Emulator};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// Flags of the seeded account (the demo account unless changed).
#[derive(clap::Args)]
struct AccountFlags {
    /// The seeded account's user name.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Its password.
    #[arg(long, value_name = "PW")]
    password: Option<String>,
    /// Its organization id.
    #[arg(long, value_name = "ORGID")]
    org: Option<String>,
    /// Its organization's name.
    #[arg(long, value_name = "NAME")]
    org_name: Option<String>,
    /// Its devKey.
    #[arg(long, value_name = "KEY")]
    dev_key: Option<String>,
}

impl AccountFlags {
    fn account(self) -> Account {
        let demo = Account::demo();
        Account {
            user_name: self.user.unwrap_or(demo.user_name),
            password: self.password.unwrap_or(demo.password),
            org_id: self.org.unwrap_or(demo.org_id),
            org_name: self.org_name.or(demo.org_name),
            dev_key: self.dev_key.unwrap_or(demo.dev_key),
            ..demo
        }
    }
}

/// Runs the BILL emulator and prints where it listens as one JSON line.
#[derive(Parser)]
#[command(name = "bill-emulator", args_override_self = true)]
struct Cli {
    /// Main port on 127.0.0.1 (0 = a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Control port on 127.0.0.1 (0 = a free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    #[command(flatten)]
    settings: ConfigPatch,
    /// Serve the main port over HTTPS with a generated CA.
    #[arg(long)]
    tls: bool,
    /// Where CA files and emulator.json go.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Exit when stdin closes.
    #[arg(long)]
    exit_on_stdin_eof: bool,
    #[command(flatten)]
    account: AccountFlags,
    /// Print the seeded account (the demo account, changed by the account
    /// flags) as one JSON line and exit; test suites read it from here.
    #[arg(long)]
    print_demo_account: bool,
}

/// Clap's own messages quote the values they reject; a value may be a secret.
fn flag_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => a.split(['=', ' ']).next().unwrap_or("").to_string(),
        _ => String::new(),
    };
    let no_value = matches!(e.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty());
    match e.kind() {
        ErrorKind::UnknownArgument if arg.starts_with('-') => format!("unknown flag: {arg}"),
        ErrorKind::UnknownArgument => "unexpected argument (values follow their flag)".into(),
        ErrorKind::InvalidValue if no_value => format!("{arg} needs a value"),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => format!("{arg}: invalid or out-of-range value"),
        ErrorKind::NoEquals | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("{arg} needs a value")
        }
        ErrorKind::ArgumentConflict | ErrorKind::TooManyValues => format!("{arg} given more than once"),
        _ => "bad command line".into(),
    }
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bill-emulator: {}\n{}", flag_error(&e), Cli::command().render_usage());
            return ExitCode::from(2);
        }
    };
    let account = cli.account.account();
    if cli.print_demo_account {
        println!("{}", serde_json::to_string(&account).expect("account serializes"));
        return ExitCode::SUCCESS;
    }
    let mut cfg = Config {
        port: cli.port,
        control_port: cli.control_port,
        tls: cli.tls,
        state_dir: cli.state_dir.clone(),
        accounts: vec![account],
        ..Config::default()
    };
    cfg.apply(cli.settings);
    let emu = match Emulator::start(cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bill-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let line = serde_json::to_string(emu.info()).expect("info serializes");
    if let Some(dir) = cli.state_dir {
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
