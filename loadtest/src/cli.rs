//! Command line and the run: set up, load, read back, check, report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::aisle::{self, AisleShared, AisleWorker, Catalog, CatalogConfig, CheckoutConfig, Mix, PosRead};
use crate::backends::{self, PgClaimer, RedisClaimer, RedisKeys};
use crate::check::{check_cells, check_flash, Verdict};
use crate::driver::{self, Load, LoadConfig};
use crate::flash::{self, Claimer, FlashConfig, FlashShared, FlashWorker};
use crate::http::{Endpoint, WalCounters};
use crate::report::{comparison_markdown, Digest, FlashSides, Report, RunInfo};
use crate::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Reserve one line (Zipf-popular SKU, any location), then commit or release it.
    Checkout,
    /// Many customers claim from one flash sale.
    Flash,
    /// POS stock reads.
    Pos,
    /// A blend of checkout, pos and flash steps (`--mix`).
    Mixed,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Checkout => "checkout",
            Scenario::Flash => "flash",
            Scenario::Pos => "pos",
            Scenario::Mixed => "mixed",
        }
    }
}

/// Drives a running aisle server (or Redis / PostgreSQL for the flash comparison) and
/// reports throughput, latency percentiles, errors and whether anything was oversold.
#[derive(Debug, Parser)]
#[command(name = "aisle-loadtest", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Args,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints a markdown table comparing the JSON reports of earlier runs (`--json`).
    Compare {
        /// Report files; the first aisle run is the reference of the ratios.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Also write the table here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// One load run.
#[derive(Debug, Parser)]
#[command(name = "aisle-loadtest")]
pub struct Args {
    /// `http://host:port` (aisle), `redis://host:port` or `postgres://user@host:port/db`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// aisle bearer token (an admin token: the scenarios create their catalog).
    #[arg(long, env = "AISLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// aisle bearer token of the measured requests (default: --token), e.g. a channel token
    /// for `web`, whose request budget then applies; set-up and checks still use --token.
    #[arg(long, env = "AISLE_LOAD_TOKEN", hide_env_values = true)]
    pub load_token: Option<String>,
    #[arg(long, value_enum, default_value_t = Scenario::Checkout)]
    pub scenario: Scenario,
    /// Workers, each with its own connection.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: scenario steps per second, at fixed intended times. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time, e.g. `30s`, `2m`, `500ms`.
    #[arg(short = 'd', long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before measuring starts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Names the target in the report and in `compare` tables (default: the backend's name).
    #[arg(long)]
    pub label: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seed of every worker's random choices (same seed, same streams).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of every code the run creates; unique per run by default.
    #[arg(long)]
    pub prefix: Option<String>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Connections used to create the catalog and read it back.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,

    /// checkout/pos/mixed: SKUs created.
    #[arg(long, default_value_t = 200)]
    pub skus: usize,
    /// checkout/pos/mixed: locations created (every SKU is stocked at every location).
    #[arg(long, default_value_t = 20)]
    pub locations: usize,
    /// checkout/pos/mixed: units received into every cell.
    #[arg(long, default_value_t = 10_000)]
    pub stock: i64,
    /// Zipf exponent of SKU popularity.
    #[arg(long, default_value_t = 1.1)]
    pub zipf_s: f64,
    /// checkout: units per reservation, 1 to this.
    #[arg(long, default_value_t = 2)]
    pub max_qty: u32,
    /// checkout: share of reservations committed (the rest are released).
    #[arg(long, default_value_t = 0.5)]
    pub commit_ratio: f64,
    /// pos: what a read asks for.
    #[arg(long, value_enum, default_value_t = PosRead::Cell)]
    pub pos_read: PosRead,
    /// mixed: weights of the step kinds.
    #[arg(long, default_value = "checkout=30,pos=60,flash=10")]
    pub mix: String,

    /// flash: distinct customers.
    #[arg(long, default_value_t = 100_000)]
    pub customers: u64,
    /// flash: units on sale.
    #[arg(long, default_value_t = 10_000)]
    pub quantity: u32,
    /// flash: units one customer may win.
    #[arg(long, default_value_t = 1)]
    pub per_customer_limit: u32,
    /// flash: units per claim.
    #[arg(long, default_value_t = 1)]
    pub claim_qty: u32,
    /// flash: share of claims by a customer who already claimed.
    #[arg(long, default_value_t = 0.1)]
    pub repeat_ratio: f64,
    /// flash on aisle: pool the sale over the network (`location: null`).
    #[arg(long)]
    pub network_pool: bool,
}

/// Parses `30s`, `1.5s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{text}: expected e.g. 30s, 500ms, 2m"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{text}: must be a non-negative time"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Aisle,
    Redis,
    Postgres,
}

impl Backend {
    fn of(target: &str) -> Result<Backend, BoxError> {
        if target.starts_with("http://") {
            Ok(Backend::Aisle)
        } else if target.starts_with("redis://") {
            Ok(Backend::Redis)
        } else if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(format!("{target}: the target is http://, redis:// or postgres://").into())
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Aisle => "aisle",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
        }
    }
}

fn valid_prefix(p: &str) -> bool {
    (1..=40).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Args {
    fn check(&self) -> Result<(), BoxError> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("--rate must be positive".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if self.claim_qty == 0 || self.claim_qty > self.per_customer_limit {
            return Err("--claim-qty must be 1 to --per-customer-limit".into());
        }
        if !(0.0..=1.0).contains(&self.repeat_ratio) || !(0.0..=1.0).contains(&self.commit_ratio) {
            return Err("--repeat-ratio and --commit-ratio are shares from 0 to 1".into());
        }
        if self.zipf_s < 0.0 || self.stock < 1 || self.skus == 0 || self.locations == 0 || self.max_qty == 0 {
            return Err("--zipf-s must be >= 0; --stock, --skus, --locations, --max-qty >= 1".into());
        }
        if self.customers == 0 || self.quantity == 0 {
            return Err("--customers and --quantity must be at least 1".into());
        }
        Ok(())
    }

    fn load_config(&self) -> LoadConfig {
        LoadConfig {
            load: self.rate.map_or(Load::Closed, |rate| Load::Open { rate }),
            warmup: self.warmup,
            duration: self.duration,
            progress: !self.quiet,
        }
    }

    fn flash_config(&self) -> FlashConfig {
        FlashConfig {
            customers: self.customers,
            quantity: self.quantity,
            per_customer_limit: self.per_customer_limit,
            claim_qty: self.claim_qty,
            repeat_ratio: self.repeat_ratio,
            network_pool: self.network_pool,
        }
    }
}

/// Runs the tool; returns the process exit status (0 passed, 1 a check failed, 2 an error).
pub fn main() -> i32 {
    let cli = Cli::parse();
    if let Some(Command::Compare { reports, out }) = cli.command {
        return match compare(&reports, out.as_deref()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("aisle-loadtest compare: {e}");
                2
            }
        };
    }
    let args = cli.run;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aisle-loadtest: cannot start the runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => report.exit_code(),
        Err(e) => {
            eprintln!("aisle-loadtest: {e}");
            2
        }
    }
}

/// Sets up, loads, checks and reports; prints the table and writes the JSON.
pub async fn run(args: Args) -> Result<Report, BoxError> {
    args.check()?;
    let backend = Backend::of(&args.target)?;
    if backend != Backend::Aisle && args.scenario != Scenario::Flash {
        return Err("Redis and PostgreSQL targets run the flash scenario only".into());
    }
    let prefix = match &args.prefix {
        Some(p) => p.clone(),
        None => {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            format!("lt{secs}-{}", std::process::id())
        }
    };
    if !valid_prefix(&prefix) {
        return Err("--prefix: 1 to 40 of A-Z a-z 0-9 - _".into());
    }
    let report = if args.scenario == Scenario::Flash {
        run_flash(&args, backend, &prefix).await?
    } else {
        run_aisle(&args, &prefix).await?
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}

/// Prints (and writes) the comparison table of saved reports.
pub fn compare(reports: &[PathBuf], out: Option<&std::path::Path>) -> Result<(), BoxError> {
    let mut runs = Vec::with_capacity(reports.len());
    for path in reports {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        runs.push(serde_json::from_slice::<Digest>(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let table = comparison_markdown(&runs);
    print!("{table}");
    if let Some(out) = out {
        std::fs::write(out, &table).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn info(args: &Args, backend: Backend, prefix: &str, notes: Vec<String>, durability: Option<String>) -> RunInfo {
    RunInfo {
        label: args.label.clone().unwrap_or_else(|| backend.name().to_owned()),
        durability,
        scenario: args.scenario.name().to_owned(),
        target: args.target.clone(),
        backend: backend.name().to_owned(),
        prefix: prefix.to_owned(),
        load: args.load_config().load,
        concurrency: args.concurrency,
        warmup_s: args.warmup.as_secs_f64(),
        notes,
    }
}

fn aisle_endpoint(args: &Args) -> Result<Arc<Endpoint>, BoxError> {
    let token = args.token.as_deref().ok_or("aisle needs a token: --token or AISLE_TOKEN")?;
    Endpoint::new(&args.target, Some(token), args.timeout)
}

/// The endpoint the workers' measured requests go to: `--load-token`, else `--token`.
fn load_endpoint(args: &Args) -> Result<Arc<Endpoint>, BoxError> {
    match args.load_token.as_deref() {
        Some(token) => Endpoint::new(&args.target, Some(token), args.timeout),
        None => aisle_endpoint(args),
    }
}

async fn run_flash(args: &Args, backend: Backend, prefix: &str) -> Result<Report, BoxError> {
    let shared = Arc::new(FlashShared::new(prefix, args.flash_config()));
    let run_for = args.warmup + args.duration;
    let n = args.concurrency;
    let mut workers = Vec::with_capacity(n);
    let mut wal_before = None;
    let mut notes = match backend {
        Backend::Aisle => {
            let endpoint = aisle_endpoint(args)?;
            flash::setup_aisle(&endpoint, &shared, run_for).await?;
            let load = load_endpoint(args)?;
            for w in 0..n {
                let claimer = Claimer::Aisle(crate::http::Conn::new(load.clone()));
                workers.push(FlashWorker::new(claimer, w, n, args.seed, shared.clone()));
            }
            wal_before = WalCounters::read(&endpoint).await;
            Vec::new()
        }
        Backend::Redis => {
            let notes = backends::redis_setup(&args.target, &shared).await?;
            for w in 0..n {
                let conn = backends::redis_connect(&args.target, args.timeout).await?;
                let claimer = Claimer::Redis(RedisClaimer::new(conn, RedisKeys::new(prefix)));
                workers.push(FlashWorker::new(claimer, w, n, args.seed, shared.clone()));
            }
            notes
        }
        Backend::Postgres => {
            let notes = backends::pg_setup(&args.target, &shared).await?;
            for w in 0..n {
                let claimer = Claimer::Postgres(PgClaimer::connect(&args.target, args.per_customer_limit).await?);
                workers.push(FlashWorker::new(claimer, w, n, args.seed, shared.clone()));
            }
            notes
        }
    };
    let result = driver::run(&args.load_config(), workers).await;
    let durability = match backend {
        Backend::Aisle => wal_note(&aisle_endpoint(args)?, wal_before, &mut notes).await,
        Backend::Redis => backends::redis_fsync_of(&notes).map(|v| format!("appendfsync {v}")),
        Backend::Postgres => backends::pg_durability_of(&notes),
    };
    let fin = match backend {
        Backend::Aisle => flash::final_aisle(&aisle_endpoint(args)?, &shared).await?,
        Backend::Redis => backends::redis_final(&args.target, &shared).await?,
        Backend::Postgres => backends::pg_final(&args.target, &shared).await?,
    };
    let client = shared.tally.summary(args.per_customer_limit);
    let verdict = check_flash(&client, &fin);
    let sides = FlashSides { client, backend: fin };
    Ok(Report::new(info(args, backend, prefix, notes, durability), &result, Some(sides), Some(verdict)))
}

async fn run_aisle(args: &Args, prefix: &str) -> Result<Report, BoxError> {
    let endpoint = aisle_endpoint(args)?;
    let mix = match args.scenario {
        Scenario::Checkout => Mix { checkout: 1, pos: 0, flash: 0 },
        Scenario::Pos => Mix { checkout: 0, pos: 1, flash: 0 },
        _ => Mix::parse(&args.mix)?,
    };
    let catalog_cfg =
        CatalogConfig { skus: args.skus, locations: args.locations, stock: args.stock, zipf_s: args.zipf_s };
    let catalog = Catalog::new(prefix, &catalog_cfg)?;
    aisle::setup_catalog(&endpoint, &catalog, args.setup_concurrency).await?;
    let run_for = args.warmup + args.duration;
    let flash = if mix.flash > 0 {
        let shared = Arc::new(FlashShared::new(prefix, args.flash_config()));
        flash::setup_aisle(&endpoint, &shared, run_for).await?;
        Some(shared)
    } else {
        None
    };
    let ttl_seconds = u32::try_from(run_for.as_secs() + 600).unwrap_or(86_400).clamp(600, 86_400);
    let shared = Arc::new(AisleShared {
        catalog: Some(catalog),
        checkout: CheckoutConfig { max_qty: args.max_qty, commit_ratio: args.commit_ratio, ttl_seconds },
        pos_read: args.pos_read,
        flash,
        mix,
    });
    let n = args.concurrency;
    let load = load_endpoint(args)?;
    let workers = (0..n).map(|w| AisleWorker::new(load.clone(), w, n, args.seed, shared.clone())).collect();
    let wal_before = WalCounters::read(&endpoint).await;
    let result = driver::run(&args.load_config(), workers).await;

    let mut notes = Vec::new();
    let durability = wal_note(&endpoint, wal_before, &mut notes).await;
    if mix.pos > 0 {
        notes.push(match args.pos_read {
            PosRead::Cell => "pos reads one cell (GET /v1/stock/{sku}/{location}); --pos-read availability asks \
                              GET /v1/availability instead"
                .to_owned(),
            PosRead::Availability => "pos reads GET /v1/availability".to_owned(),
        });
    }
    let mut parts = Vec::new();
    if mix.checkout > 0 {
        if let Some(catalog) = &shared.catalog {
            let cells = aisle::final_cells(&endpoint, catalog, args.setup_concurrency).await?;
            parts.push(check_cells(&cells));
        }
    }
    let mut sides = None;
    if let Some(fl) = &shared.flash {
        let fin = flash::final_aisle(&endpoint, fl).await?;
        let client = fl.tally.summary(args.per_customer_limit);
        parts.push(check_flash(&client, &fin));
        sides = Some(FlashSides { client, backend: fin });
    }
    let verdict = (!parts.is_empty()).then(|| Verdict::join(parts));
    Ok(Report::new(info(args, Backend::Aisle, prefix, notes, durability), &result, sides, verdict))
}

/// Notes what aisle's WAL did during the run (from `/metrics`); returns it as the durability
/// line of the report.
async fn wal_note(endpoint: &Arc<Endpoint>, before: Option<WalCounters>, notes: &mut Vec<String>) -> Option<String> {
    let after = WalCounters::read(endpoint).await;
    let line = match (before, after) {
        (Some(b), Some(a)) => a.since(&b),
        _ => "WAL: /metrics unreadable".to_owned(),
    };
    notes.push(line.clone());
    notes.push("aisle: durability as the server was started (--durability; fsync by default)".to_owned());
    Some(line)
}
