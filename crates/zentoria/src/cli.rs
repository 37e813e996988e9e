//! The `zentoria` command line. Every subcommand takes the same `--config`, `--data-dir` and
//! `--database-url`, and works on the same database a running server uses.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use zentoria_core::{Role, Scopes};
use zentoria_platform::{Actor, ClientInfo, NewKeyRequest};

use crate::Services;
use crate::config::{self, Overrides};

#[derive(Parser, Debug)]
#[command(
    name = "zentoria",
    version,
    about = "Zentoria: a self-hosted AI control plane in one binary"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct GlobalArgs {
    /// TOML configuration file (also ZENTORIA_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database, master key and data live [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [default: SQLite inside the data dir].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Inspect and manage background jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Upload files and folders into knowledge, and wait for their ingestion.
    Ingest(crate::knowledge_cli::IngestArgs),
    /// Search knowledge.
    Search(crate::knowledge_cli::SearchArgs),
    /// Rebuild the full-text index from the database (stop the server first).
    Reindex,
}

#[derive(Subcommand, Debug)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// queued, running, succeeded, failed, dead or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// How many at most (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued job, or ask a running one to stop.
    Cancel { id: String },
    /// Queue a failed, dead or cancelled job again.
    Retry { id: String },
    /// List cron schedules and when each runs next.
    Schedules,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Make the user an admin (same as --role admin).
        #[arg(long)]
        admin: bool,
        /// admin, user or viewer [default: user].
        #[arg(long, conflicts_with = "admin")]
        role: Option<String>,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key and print it (and nothing else) on standard output.
    Create {
        /// The user who owns the key.
        #[arg(long)]
        user: String,
        /// A label to recognise the key by.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. chat,files:read.
        #[arg(long)]
        scopes: String,
        /// Lifetime, e.g. 30d or 12h; without it the key does not expire.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Comma-separated models the key may use (`provider/model`, aliases, `provider/*`);
        /// without it, any.
        #[arg(long, value_name = "MODELS")]
        models: Option<String>,
        /// Tokens the key may spend per calendar month (UTC) on models.
        #[arg(long, value_name = "TOKENS")]
        monthly_token_budget: Option<u64>,
    },
    /// List API keys (never their secrets).
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key at once.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the audit log's hash chain; exits non-zero when an entry was changed or removed.
    Verify,
}

/// Parses the command line, runs the command and turns failures into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let overrides = Overrides {
        config: cli.global.config.clone(),
        listen: match &cli.command {
            Command::Serve { listen } => listen.clone(),
            _ => None,
        },
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
    };
    let loaded = match config::load(&overrides, &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&loaded.config);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, loaded.config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &zentoria_core::config::Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

async fn run(command: Command, config: zentoria_core::config::Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { .. } => {
            let listener = tokio::net::TcpListener::bind(&config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let services = Services::open(config).await?;
            crate::serve(services, listener, crate::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let services = Services::open(config).await?;
            services.close().await;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Users(cmd) => with_services(config, |s| users(s, cmd)).await,
        Command::Keys(cmd) => with_services(config, |s| keys(s, cmd)).await,
        Command::Jobs(cmd) => with_services(config, |s| jobs(s, cmd)).await,
        Command::Ingest(args) => crate::knowledge_cli::ingest(args, config).await,
        Command::Search(args) => crate::knowledge_cli::search(args, config).await,
        Command::Reindex => crate::knowledge_cli::reindex(config).await,
        Command::Audit(AuditCommand::Verify) => {
            with_services(config, |s| async move {
                let report = s.platform.audit().verify().await?;
                if report.ok {
                    println!("audit log intact: {} entries verified", report.entries);
                    Ok(ExitCode::SUCCESS)
                } else {
                    println!(
                        "audit log TAMPERED: {} (after {} good entries)",
                        report.problem.unwrap_or_default(),
                        report.entries
                    );
                    Ok(ExitCode::from(3))
                }
            })
            .await
        }
    }
}

/// Opens the services, runs `f`, and closes them (flushing the audit log) whatever happens.
async fn with_services<F, Fut>(
    config: zentoria_core::config::Config,
    f: F,
) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Services) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let services = Services::open(config).await?;
    let platform = services.platform.clone();
    let db = services.db.clone();
    let result = f(services).await;
    platform.audit().flush().await;
    db.close().await;
    result
}

async fn users(s: Services, cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Create {
            username,
            admin,
            role,
            password_stdin: _,
        } => {
            let role: Role = match (admin, role) {
                (true, _) => Role::Admin,
                (false, Some(r)) => r.parse()?,
                (false, None) => Role::User,
            };
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            let user = s
                .platform
                .create_user(
                    &username,
                    password,
                    role,
                    Some(Actor::cli()),
                    &ClientInfo::cli(),
                )
                .await?;
            eprintln!(
                "created {} user {} ({})",
                role.as_str(),
                user.username,
                user.id
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn keys(s: Services, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            user,
            name,
            scopes,
            expires_in,
            models,
            monthly_token_budget,
        } => {
            let owner = s.platform.user_by_name(&user).await?;
            let scopes = Scopes::parse_list(&scopes)?;
            let created = s
                .platform
                .create_key(
                    &owner,
                    owner.role.scopes(),
                    NewKeyRequest {
                        name,
                        scopes,
                        expires_in,
                        limits: zentoria_platform::KeyLimits {
                            models: models.map(|m| {
                                m.split(',')
                                    .map(|m| m.trim().to_owned())
                                    .filter(|m| !m.is_empty())
                                    .collect()
                            }),
                            monthly_token_budget,
                        },
                    },
                    Some(Actor::cli()),
                    &ClientInfo::cli(),
                )
                .await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", created.key)?;
            eprintln!(
                "created key {} for {}; it will not be shown again",
                created.info.id, owner.username
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { user, json } => {
            let owner = match &user {
                Some(name) => Some(s.platform.user_by_name(name).await?.id),
                None => None,
            };
            let keys = s.platform.list_keys_of(owner.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &keys)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<20}  {:<24}  {:<8}  SCOPES",
                    "ID", "NAME", "PREFIX", "STATE"
                )?;
                for k in keys {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else if k
                        .expires_at
                        .is_some_and(|e| e <= zentoria_core::time::now_ms())
                    {
                        "expired"
                    } else {
                        "active"
                    };
                    writeln!(
                        out,
                        "{:<36}  {:<20}  {:<24}  {:<8}  {}",
                        k.id,
                        k.name,
                        k.prefix,
                        state,
                        k.scopes.to_list()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { id } => {
            s.platform.revoke_key(None, &id, &ClientInfo::cli()).await?;
            eprintln!("revoked key {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn jobs(s: Services, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    let client = ClientInfo::cli();
    match cmd {
        JobsCommand::List {
            kind,
            status,
            limit,
            json,
        } => {
            let list = s
                .jobs
                .list(
                    None,
                    zentoria_jobs::ListJobs {
                        kind,
                        status,
                        cursor: None,
                        limit,
                    },
                )
                .await?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<24}  {:<9}  {:>8}  {:>4}  LAST ERROR",
                    "ID", "KIND", "STATUS", "ATTEMPTS", "%"
                )?;
                for j in list {
                    writeln!(
                        out,
                        "{:<36}  {:<24}  {:<9}  {:>8}  {:>4}  {}",
                        j.id,
                        j.kind,
                        j.status,
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.progress.map(|p| p.to_string()).unwrap_or_default(),
                        j.last_error.unwrap_or_default()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let j = s.jobs.cancel(None, &id, &client).await?;
            eprintln!(
                "job {id} is {}{}",
                j.status,
                if j.cancel_requested && j.status == "running" {
                    " (cancellation requested)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Schedules => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<28}  {:<18}  {:<16}  {:<24}  {:<8}  NEXT RUN",
                "NAME", "CRON", "TIME ZONE", "JOB", "MISSED"
            )?;
            for sch in s.jobs.schedules().await? {
                writeln!(
                    out,
                    "{:<28}  {:<18}  {:<16}  {:<24}  {:<8}  {}",
                    sch.name,
                    sch.cron,
                    sch.timezone,
                    sch.job_kind,
                    sch.missed,
                    if sch.enabled {
                        zentoria_core::time::rfc3339(sch.next_run_at)
                    } else {
                        "disabled".into()
                    }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { id } => {
            let j = s.jobs.retry(None, &id, &client).await?;
            eprintln!("job {id} is {} again", j.status);
            Ok(ExitCode::SUCCESS)
        }
    }
}
