//! The ops bundle (`ops/`) and the server's logs.
//!
//! The bundle cannot drift from the code: the alert rules pass `promtool check rules` and their
//! unit tests (`promtool test rules`), every alert has a case that fires and one that does not,
//! the Grafana dashboard is JSON whose queries parse as PromQL, and every `aisle_*` (and
//! `process_*`) name that the dashboard, the rules or their tests use is served by the real
//! server's `/metrics`. Renaming a metric without the bundle fails here.
//!
//! Logs: written to a file, the default text format carries no ANSI colour codes, and
//! `--log-format json` writes one JSON object per line.
//!
//! `promtool` (Debian package `prometheus`) is installed by `.ci/run`. Without it these checks
//! fail when `CI` is set and are skipped with a notice otherwise.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{runtime, Server, ADMIN};

const LOC: &str = "OPSB-LOC";
const SKU: &str = "OPSB-SKU";
const SALE: &str = "OPSB-DROP";
/// How long a server may take to print its address or to stop.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("ops")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `promtool ARGS` run in `dir`; `None` when promtool is not installed and `CI` is not set.
fn promtool(dir: &Path, args: &[&str]) -> Option<Output> {
    match Command::new("promtool").args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!(
                "notice: promtool is not installed, `promtool {}` skipped (apt-get install prometheus; CI fails instead)",
                args.join(" ")
            );
            None
        }
        Err(e) => panic!("promtool {}: {e} (.ci/run installs the Debian package prometheus)", args.join(" ")),
    }
}

fn assert_promtool(dir: &Path, args: &[&str]) -> bool {
    let Some(out) = promtool(dir, args) else { return false };
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Every metric name a text uses: maximal runs of `[a-z0-9_:]` that start with `aisle_` or
/// `process_` at a word boundary. Alert names (`AisleReadOnly`) and environment variables
/// (`AISLE_LOG_RETENTION_BYTES`) are not lower case, so they are not taken for metrics.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !(word(bytes[i - 1]) || bytes[i - 1].is_ascii_uppercase());
        if at_boundary && (bytes[i..].starts_with(b"aisle_") || bytes[i..].starts_with(b"process_")) {
            let end = bytes[i..].iter().position(|&b| !word(b)).map_or(bytes.len(), |n| i + n);
            names.insert(text[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The names `/metrics` serves: every sample's name (histograms' `_bucket`, `_sum` and
/// `_count` included) and every family named in a `# TYPE` line.
fn served_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split(' ').next() {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn missing<'a>(used: &'a BTreeSet<String>, served: &BTreeSet<String>) -> Vec<&'a str> {
    used.iter().filter(|name| !served.contains(*name)).map(String::as_str).collect()
}

/// Every Prometheus query of the dashboard, with the panel it belongs to.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push((panel["title"].as_str().expect("title").to_owned(), expr.to_owned()));
        }
    }
    queries
}

#[test]
fn ops_alert_rules_pass_promtool_and_every_alert_is_tested_both_ways() {
    let dir = ops_dir().join("prometheus");
    let rules = read(&dir.join("alerts.yml"));
    let tests = read(&dir.join("alerts_test.yml"));

    // Each alert says how bad it is and what to do.
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 8, "alerts.yml has {} alerts", alerts.len());
    let mut names = Vec::new();
    for block in &alerts {
        let name = block.lines().next().expect("a name").trim();
        for field in ["expr:", "severity:", "summary:", "description:"] {
            assert!(block.contains(field), "{name} has no {field}");
        }
        names.push(name);
    }

    // Each alert has a test case where it fires and one where it stays silent.
    for name in &names {
        let (mut fires, mut silent) = (0, 0);
        let mut lines = tests.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line == format!("alertname: {name}") {
                match lines.next() {
                    Some("exp_alerts: []") => silent += 1,
                    Some("exp_alerts:") => fires += 1,
                    other => panic!("{name}: alertname followed by {other:?}"),
                }
            }
        }
        assert!(fires > 0 && silent > 0, "{name}: {fires} firing and {silent} silent cases in alerts_test.yml");
    }

    if assert_promtool(&dir, &["check", "rules", "alerts.yml"]) {
        assert_promtool(&dir, &["test", "rules", "alerts_test.yml"]);
        assert_promtool(&dir, &["check", "config", "prometheus.yml"]);
    }
}

#[test]
fn ops_dashboard_is_json_and_its_queries_parse() {
    let dashboard: Value =
        serde_json::from_str(&read(&ops_dir().join("grafana").join("aisle.json"))).expect("aisle.json is JSON");
    assert_eq!(dashboard["title"], "aisle");
    let variables = dashboard["templating"]["list"].as_array().expect("templating variables");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "a `datasource` variable picks the Prometheus data source"
    );
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "panel ids are unique: {panel}");
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().expect("x") + grid["w"].as_u64().expect("w") <= 24, "{panel}");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            assert!(!panel["targets"].as_array().expect("targets").is_empty(), "{}", panel["title"]);
        }
    }

    // The panels the dashboard promises, by the metric each one reads.
    let queries = dashboard_queries(&dashboard);
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, expr)| metric_names(expr)).collect();
    for name in [
        "aisle_http_requests_total",
        "aisle_http_request_duration_seconds_bucket",
        "aisle_active_reservations",
        "aisle_flash_sale_remaining",
        "aisle_flash_sale_claims_total",
        "aisle_wal_fsync_duration_seconds_bucket",
        "aisle_wal_batch_records_bucket",
        "aisle_wal_bytes_total",
        "aisle_snapshot_duration_seconds",
        "aisle_recovery_duration_seconds",
        "aisle_read_only",
        "aisle_wal_retained_bytes",
        "aisle_wal_oldest_retained_lsn",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "no panel queries {name}");
    }

    // Every query parses: promtool checks them as recording rules, Grafana's variables filled in.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, expr)) in queries.iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*");
        assert!(!expr.contains('$'), "{title}: a variable the check does not fill in: {expr}");
        let quoted = serde_json::to_string(&expr).expect("a JSON string is a YAML string");
        rules.push_str(&format!("      - record: dashboard:query_{i}\n        expr: {quoted}\n"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("dashboard.yml"), rules).expect("write");
    assert_promtool(dir.path(), &["check", "rules", "dashboard.yml"]);
}

#[test]
fn ops_bundle_names_only_metrics_the_server_serves() {
    let prometheus = ops_dir().join("prometheus");
    let mut used = BTreeSet::new();
    for file in [
        ops_dir().join("grafana").join("aisle.json"),
        prometheus.join("alerts.yml"),
        prometheus.join("alerts_test.yml"),
    ] {
        let names = metric_names(&read(&file));
        assert!(names.len() >= 5, "{} names only {names:?}", file.display());
        used.extend(names);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let exposition = runtime().block_on(async {
        let server = Server::start(dir.path());
        // Traffic that creates every labelled series: requests, a hold, a flash sale and a
        // claim, a snapshot.
        server.seed(LOC, SKU, 10).await;
        let hold = json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1, "location": LOC}]});
        let made = server.admin("POST", "/v1/reservations", Some(hold)).await;
        assert_eq!(made.status, 201, "{made:?}");
        let now = time::OffsetDateTime::now_utc();
        let rfc3339 = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339).expect("a time in range formats")
        };
        let sale = json!({"sku": SKU, "location": LOC, "quantity": 5, "per_customer_limit": 1,
                          "starts_at": rfc3339(now - time::Duration::minutes(1)),
                          "ends_at": rfc3339(now + time::Duration::hours(1))});
        let put = server.admin("PUT", &format!("/v1/flash-sales/{SALE}"), Some(sale)).await;
        assert_eq!(put.status, 201, "{put:?}");
        let claim =
            server.admin("POST", &format!("/v1/flash-sales/{SALE}/claims"), Some(json!({"customer": "c-1"}))).await;
        assert_eq!(claim.status, 201, "{claim:?}");
        let snapshot = server.admin("POST", "/v1/ops/snapshot", None).await;
        assert_eq!(snapshot.status, 200, "{snapshot:?}");
        let metrics = server.raw("GET", "/metrics", None, None).await;
        assert_eq!(metrics.status, 200, "/metrics needs no token: {metrics:?}");
        metrics.body.as_str().expect("text").to_owned()
    });
    let served = served_names(&exposition);

    let gone = missing(&used, &served);
    assert!(gone.is_empty(), "ops/ names metrics that /metrics does not serve: {gone:?}");
    // The check sees a rename: an old name is missing.
    let renamed: BTreeSet<String> = ["aisle_wal_fsync_seconds_bucket".to_owned()].into();
    assert_eq!(missing(&renamed, &served), ["aisle_wal_fsync_seconds_bucket"]);
    // The figures the alerts read are there and plausible.
    for (name, value) in
        [("aisle_read_only", "0"), ("aisle_snapshots_total", "1"), ("aisle_snapshot_failures_total", "0")]
    {
        assert!(exposition.lines().any(|line| line == format!("{name} {value}")), "{name} {value}\n{exposition}");
    }
    let gauge = |name: &str| -> f64 {
        let line = exposition.lines().find(|l| l.starts_with(&format!("{name} "))).expect(name);
        line[name.len() + 1..].parse().expect("a number")
    };
    let (free, size) = (gauge("aisle_data_dir_free_bytes"), gauge("aisle_data_dir_size_bytes"));
    assert!(free > 0.0 && free <= size, "free {free} of {size}");
    let taken = gauge("aisle_last_snapshot_success_timestamp_seconds");
    let unix_now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!((unix_now - 600.0..=unix_now + 1.0).contains(&taken), "snapshot at {taken}, now {unix_now}");
    assert_eq!(gauge("aisle_wal_retention_limit_bytes"), 4.0 * 1024.0 * 1024.0 * 1024.0);
}

/// Runs `aisle serve ARGS` with stdout and stderr written to files (neither is a terminal),
/// takes a snapshot over HTTP (a log line with fields), stops it with SIGTERM and returns what
/// it wrote to stdout and to stderr.
fn serve_logged(args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout_path, stderr_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let file = |path: &Path| std::fs::File::create(path).expect("create a log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aisle-server"))
        .arg("serve")
        .args(args)
        .env("AISLE_LISTEN", "127.0.0.1:0")
        .env("AISLE_DATA_DIR", dir.path().join("data"))
        .env("AISLE_ADMIN_TOKEN", ADMIN)
        .env("AISLE_LOG", "info")
        .env_remove("AISLE_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(file(&stdout_path))
        .stderr(file(&stderr_path))
        .spawn()
        .expect("spawn the aisle binary");
    let started = Instant::now();
    let address = loop {
        let printed = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if let Some(line) = printed.lines().find_map(|line| line.strip_prefix("listening on ")) {
            break line.to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}): {}", read(&stderr_path));
        }
        assert!(started.elapsed() < PROCESS_TIMEOUT, "no `listening on` within {PROCESS_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    runtime().block_on(async {
        let answer = reqwest::Client::new()
            .post(format!("http://{address}/v1/ops/snapshot"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(answer.status().as_u16(), 200);
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("wait for the server");
    assert!(status.success(), "graceful shutdown: {status}");
    (read(&stdout_path), read(&stderr_path))
}

#[test]
fn ops_logs_to_a_file_carry_no_colour_codes() {
    let (stdout, stderr) = serve_logged(&[]);
    for what in ["engine recovered", "listening", "snapshot taken on request", "engine closed"] {
        assert!(stderr.contains(what), "no {what:?} in the log:\n{stderr}");
    }
    assert!(!stderr.contains("\x1b["), "ANSI escapes in the log written to a file:\n{stderr:?}");
    assert!(!stdout.contains("\x1b["), "ANSI escapes on stdout:\n{stdout:?}");
}

#[test]
fn ops_logs_in_json_are_one_object_per_line() {
    let (stdout, stderr) = serve_logged(&["--log-format", "json"]);
    assert!(stdout.starts_with("listening on "), "stdout keeps the plain address line: {stdout:?}");
    let events: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
        .collect();
    assert!(events.len() >= 4, "{stderr}");
    for event in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(event[field].is_string(), "{field} in {event}");
        }
    }
    let snapshot = events.iter().find(|e| e["message"] == "snapshot taken on request").expect("the snapshot's line");
    assert!(snapshot["lsn"].is_u64() && snapshot["bytes"].is_u64(), "the event's fields are JSON fields: {snapshot}");

    // A configuration that cannot be read is reported in JSON too.
    let out = Command::new(env!("CARGO_BIN_EXE_aisle-server"))
        .args(["serve", "--log-format", "json", "--config", "/nonexistent/aisle.toml"])
        .env_remove("AISLE_LOG_FORMAT")
        .output()
        .expect("run the aisle binary");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().next().expect("one error line");
    let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert_eq!(event["level"], "ERROR", "{event}");
    assert!(event["message"].as_str().expect("message").contains("/nonexistent/aisle.toml"), "{event}");
}
