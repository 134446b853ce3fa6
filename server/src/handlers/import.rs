//! `POST /v1/stock/import`: bulk receive and adjust, one JSON object per line (NDJSON),
//! streamed.
//!
//! The body is never held whole: it is read frame by frame and cut into lines in a buffer of at
//! most [`IMPORT_LINE_BYTES_MAX`] bytes; the whole body is bounded by [`IMPORT_BODY_BYTES_MAX`].
//! Each line is a `POST /v1/stock/receive` or `POST /v1/stock/adjust` body plus an optional
//! `"op": "receive" | "adjust"` (absent: a line with `delta` or `counted` is an adjust, any other
//! a receive). Each valid line is one engine command, submitted without waiting for its
//! durability; the answer waits once, for the last applied record, so a 200 means every
//! applied line is durable. When the log's queue is full (`Busy`) the import waits for what it
//! already submitted and retries the line: back-pressure, not a rejection.
//!
//! A bad line (JSON syntax, unknown field, invalid value, unknown SKU or location, too long)
//! is rejected on its own with its 1-based line number; the others are applied. Blank lines are
//! skipped (they keep their numbers). The report: `{lines, applied, rejected, errors: [{line,
//! code, message}], errors_truncated}`, `lines` counting the non-blank ones.
//!
//! An import is not idempotent (receives add up), so it refuses an `Idempotency-Key` rather than
//! silently ignoring it. If the engine fails as a whole mid-import (read-only, busy for longer
//! than [`BUSY_WAIT_MAX`], the client went away), the answer is that error, and the lines before
//! it may have been applied: `GET /v1/stock/movements` tells which.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_engine::limits::{
    ADJUST_QTY_MAX, IMPORT_BODY_BYTES_MAX, IMPORT_ERRORS_MAX, IMPORT_LINE_BYTES_MAX, LINE_QTY_MAX, NOTE_LEN_MAX,
    UNIT_COST_MAX,
};
use aisle_engine::wal::Lsn;
use aisle_engine::{Context, EngineError};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Call, Reply};
use crate::auth::Principal;
use crate::dto::{AdjustIn, LotIn, ReceiveIn};
use crate::problem::ApiError;
use crate::schema::{CODE, TEXT};
use crate::shared::App;

/// How long one line may keep meeting `Busy` before the import gives up with 503.
pub const BUSY_WAIT_MAX: Duration = Duration::from_secs(30);
/// First and longest pause when `Busy` persists with nothing of ours left to wait for.
const BUSY_PAUSE_MIN: Duration = Duration::from_millis(1);
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(50);

/// Media types an import body may declare; none at all is accepted too.
const CONTENT_TYPES: &[&str] = &["application/x-ndjson", "application/ndjson", "application/jsonl", "application/json"];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Receive,
    Adjust,
}

/// One line as sent: the union of the receive and adjust bodies, plus `op` (default: adjust
/// when `delta` or `counted` is given, else receive).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportLineIn {
    op: Option<Op>,
    #[schemars(pattern(CODE))]
    location: String,
    #[schemars(pattern(CODE))]
    sku: String,
    /// Receive: the units that arrive.
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    qty: Option<i64>,
    #[schemars(range(max = UNIT_COST_MAX))]
    unit_cost: Option<u64>,
    lot: Option<LotIn>,
    /// Receive: free text; adjust: `count`, `damage`, `loss`, `found` or `other`.
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    reason: Option<String>,
    #[schemars(range(min = -ADJUST_QTY_MAX, max = ADJUST_QTY_MAX))]
    delta: Option<i64>,
    #[schemars(range(min = 0, max = ADJUST_QTY_MAX))]
    counted: Option<i64>,
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    note: Option<String>,
}

/// A line checked and converted, ready for the engine.
enum Command {
    Receive(aisle_engine::command::Receive),
    Adjust(aisle_engine::command::Adjust),
}

/// A field given that the line's op does not take: as the single routes' unknown-field 400.
fn not_for(field: &str, op: &str) -> ApiError {
    ApiError::malformed(field, format!("unknown field `{field}` for op {op}"))
}

fn missing(field: &str) -> ApiError {
    ApiError::malformed(field, format!("missing field `{field}`"))
}

impl ImportLineIn {
    /// What the import does with this line before the engine sees it: `Ok` when it would be
    /// submitted, else the error its report names. Public for the fuzz targets.
    pub fn check(self, principal: &Principal) -> Result<(), ApiError> {
        self.into_command(principal).map(drop)
    }

    fn into_command(self, principal: &Principal) -> Result<Command, ApiError> {
        let adjust = self.delta.is_some() || self.counted.is_some();
        match self.op.unwrap_or(if adjust { Op::Adjust } else { Op::Receive }) {
            Op::Receive => {
                for (field, given) in [
                    ("delta", self.delta.is_some()),
                    ("counted", self.counted.is_some()),
                    ("note", self.note.is_some()),
                ] {
                    if given {
                        return Err(not_for(field, "receive"));
                    }
                }
                let body = ReceiveIn {
                    location: self.location,
                    sku: self.sku,
                    qty: self.qty.ok_or_else(|| missing("qty"))?,
                    unit_cost: self.unit_cost,
                    lot: self.lot,
                    reason: self.reason,
                };
                let receive = body.into_command()?;
                principal.check_location(&receive.location)?;
                Ok(Command::Receive(receive))
            }
            Op::Adjust => {
                for (field, given) in [("qty", self.qty.is_some()), ("unit_cost", self.unit_cost.is_some())] {
                    if given {
                        return Err(not_for(field, "adjust"));
                    }
                }
                let body = AdjustIn {
                    location: self.location,
                    sku: self.sku,
                    delta: self.delta,
                    counted: self.counted,
                    reason: self.reason.ok_or_else(|| missing("reason"))?,
                    lot: self.lot,
                    note: self.note,
                };
                Ok(Command::Adjust(body.into_command()?))
            }
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LineError {
    line: u64,
    code: &'static str,
    message: String,
}

/// The answer of an import.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct ImportReport {
    /// Non-blank lines read: `applied + rejected`.
    lines: u64,
    applied: u64,
    rejected: u64,
    /// The first [`IMPORT_ERRORS_MAX`] rejected lines, in line order.
    errors: Vec<LineError>,
    /// Whether more lines were rejected than `errors` lists.
    errors_truncated: bool,
}

impl ImportReport {
    fn reject(&mut self, line: u64, code: &'static str, message: String) {
        self.lines += 1;
        self.rejected += 1;
        if self.errors.len() < IMPORT_ERRORS_MAX {
            self.errors.push(LineError { line, code, message });
        } else {
            self.errors_truncated = true;
        }
    }

    fn reject_error(&mut self, line: u64, error: &ApiError) {
        let message = match error {
            ApiError::Malformed(list) | ApiError::Engine(EngineError::Invalid(list)) => {
                list.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            }
            ApiError::Engine(EngineError::InsufficientStock(list)) => list
                .iter()
                .map(|s| {
                    format!(
                        "insufficient stock of {} at {}: requested {}, available {}",
                        s.sku,
                        s.location.as_deref().unwrap_or("-"),
                        s.requested,
                        s.available
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        self.reject(line, error.parts().problem.code, message);
    }
}

/// Whether an engine error is about the line (reject it, go on) rather than the engine.
fn line_fault(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::Invalid(_)
            | EngineError::NotFound { .. }
            | EngineError::InsufficientStock(_)
            | EngineError::Conflict(_)
    )
}

/// The state of one import: who, what it reported, and the last record it submitted.
struct Importer<'a> {
    app: &'a App,
    principal: &'a Principal,
    report: ImportReport,
    /// The last record submitted, and the last one already waited for.
    last_lsn: Option<Lsn>,
    waited_lsn: Option<Lsn>,
}

impl Importer<'_> {
    /// One line (without its `\n`). `overlong` says it exceeded the line limit (and `bytes` is
    /// then whatever part of it was kept).
    async fn line(&mut self, number: u64, bytes: &[u8], overlong: bool) -> Result<(), ApiError> {
        if overlong {
            let message = format!("the line is longer than {IMPORT_LINE_BYTES_MAX} bytes");
            self.report.reject(number, "payload_too_large", message);
            return Ok(());
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let line = match super::json_object::<ImportLineIn>(bytes) {
            Ok(line) => line,
            Err(e) => {
                self.report.reject_error(number, &e);
                return Ok(());
            }
        };
        let command = match line.into_command(self.principal) {
            Ok(command) => command,
            Err(e) => {
                self.report.reject_error(number, &e);
                return Ok(());
            }
        };
        self.submit(number, command).await
    }

    /// Applies one command, retrying it while the engine is busy.
    async fn submit(&mut self, number: u64, command: Command) -> Result<(), ApiError> {
        let engine = &self.app.engine;
        let busy_since = Instant::now();
        let mut pause = BUSY_PAUSE_MIN;
        loop {
            let ctx = Context::actor(&self.principal.name);
            let submitted = match &command {
                Command::Receive(receive) => engine.receive(ctx, receive.clone()).map(|ack| ack.lsn),
                Command::Adjust(adjust) => engine.adjust(ctx, adjust.clone()).map(|ack| ack.lsn),
            };
            match submitted {
                Ok(lsn) => {
                    self.report.lines += 1;
                    self.report.applied += 1;
                    self.last_lsn = lsn.or(self.last_lsn);
                    return Ok(());
                }
                Err(EngineError::Busy) if busy_since.elapsed() < BUSY_WAIT_MAX => {
                    if self.last_lsn > self.waited_lsn {
                        // The log's queue is full: let what this import queued drain.
                        self.wait_durable().await?;
                    } else {
                        // Full of others' records (or the audit queue): back off.
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(BUSY_PAUSE_MAX);
                    }
                }
                Err(e) if line_fault(&e) => {
                    self.report.reject_error(number, &ApiError::Engine(e));
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until every record submitted so far is durable.
    async fn wait_durable(&mut self) -> Result<(), ApiError> {
        if let Some(lsn) = self.last_lsn {
            if self.waited_lsn < Some(lsn) {
                self.app.engine.durable(lsn).await.map_err(EngineError::from)?;
                self.waited_lsn = Some(lsn);
            }
        }
        Ok(())
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Ok(()) };
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).map(str::trim).unwrap_or_default();
    if CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
        Ok(())
    } else {
        Err(ApiError::malformed("Content-Type", "must be application/x-ndjson (one JSON object per line)"))
    }
}

/// Cuts a stream of byte chunks into lines, keeping at most [`IMPORT_LINE_BYTES_MAX`] bytes of
/// a line that spans chunks.
#[derive(Debug, Default)]
struct Lines {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The current line is over the limit; its bytes are being skipped to its end.
    overlong: bool,
    /// Number of the line being read, 1-based.
    number: u64,
}

impl Lines {
    /// Keeps `bytes` as (more of) the unfinished line, within the limit.
    fn keep(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > IMPORT_LINE_BYTES_MAX {
            self.overlong = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

pub async fn import(app: &Arc<App>, mut call: Call<'_>) -> Result<Reply, ApiError> {
    if call.idempotency_key.is_some() {
        return Err(ApiError::malformed(
            "Idempotency-Key",
            "an import is not idempotent (receives add up) and takes no Idempotency-Key",
        ));
    }
    let request = call
        .request
        .take()
        .ok_or_else(|| ApiError::Internal("the import route was not given its request unread".into()))?;
    check_content_type(request.headers())?;
    let mut body = request.into_body();
    if body.size_hint().lower() > IMPORT_BODY_BYTES_MAX as u64 {
        return Err(ApiError::PayloadTooLarge(IMPORT_BODY_BYTES_MAX));
    }
    let principal = call.principal()?;
    let mut importer = Importer { app, principal, report: ImportReport::default(), last_lsn: None, waited_lsn: None };
    let mut lines = Lines { number: 1, ..Lines::default() };
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::malformed("body", e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > IMPORT_BODY_BYTES_MAX {
            return Err(ApiError::PayloadTooLarge(IMPORT_BODY_BYTES_MAX));
        }
        let mut rest = &data[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..end], &rest[end + 1..]);
            if lines.partial.is_empty() && !lines.overlong {
                // The whole line is in this chunk: no copy.
                importer.line(lines.number, head, head.len() > IMPORT_LINE_BYTES_MAX).await?;
            } else {
                lines.keep(head);
                importer.line(lines.number, &lines.partial, lines.overlong).await?;
                lines.partial.clear();
                lines.overlong = false;
            }
            lines.number += 1;
            rest = tail;
        }
        lines.keep(rest);
    }
    if !lines.partial.is_empty() || lines.overlong {
        importer.line(lines.number, &lines.partial, lines.overlong).await?;
    }
    importer.wait_durable().await?;
    Reply::json(StatusCode::OK, &importer.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers).is_ok(), "none is fine");
        for (value, ok) in [
            ("application/x-ndjson", true),
            ("application/json; charset=utf-8", true),
            ("Application/X-NDJSON", true),
            ("text/csv", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().expect("header value"));
            assert_eq!(check_content_type(&headers).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn lines_keep_within_the_limit() {
        let mut lines = Lines::default();
        lines.keep(&vec![b'x'; IMPORT_LINE_BYTES_MAX]);
        assert!(!lines.overlong);
        lines.keep(b"y");
        assert!(lines.overlong && lines.partial.is_empty());
    }
}
