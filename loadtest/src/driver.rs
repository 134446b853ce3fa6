//! Runs workers in a closed or an open loop and collects their records.
//!
//! Closed loop: `concurrency` workers each start their next step as soon as the last one
//! finished. Open loop: steps are scheduled at fixed intended times (`rate` per second, the
//! k-th at `start + k / rate`); a free worker takes the next unclaimed slot, waits for its
//! time if it is early, and sends at once if it is late. A late step's latency is counted
//! from its intended time, so a server that stalls the workers is charged for the requests
//! that queued behind the stall (coordinated-omission correction). A step whose worker was
//! early is timed from its actual send, so the tokio timer's millisecond granularity is not
//! charged to the server.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{Live, Recorder};

/// One worker: owns its connection and its random state.
pub trait Worker: Send + 'static {
    /// Performs one scenario step. `start` is when its first request counts as started
    /// (intended time in an open loop); it must call `rec.op_done()` when finished.
    fn step(&mut self, start: Instant, rec: &mut Recorder) -> impl Future<Output = ()> + Send;
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// A fixed number of workers, each back-to-back.
    Closed,
    /// A fixed arrival rate of steps per second, served by the workers.
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    /// Draw a progress bar on stderr (hidden anyway when stderr is no terminal).
    pub progress: bool,
}

/// What a run produced.
pub struct RunResult {
    pub recorder: Recorder,
    /// Length of the measured window.
    pub window: Duration,
    /// Open loop: steps scheduled inside the measured window.
    pub scheduled: u64,
    /// Open loop: scheduled steps of the measured window no worker got to before the end.
    pub missed: u64,
}

/// Runs `workers` under `cfg` and returns their merged record.
pub async fn run<W: Worker>(cfg: &LoadConfig, workers: Vec<W>) -> RunResult {
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let next_slot = Arc::new(AtomicU64::new(0));
    let interval = match cfg.load {
        Load::Open { rate } => Some(Duration::from_secs_f64(1.0 / rate.max(1e-9))),
        Load::Closed => None,
    };
    let bar = progress_bar(cfg, live.clone(), start);

    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let mut rec = Recorder::new(live.clone());
        let next_slot = next_slot.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let begin = match interval {
                    None => {
                        if now >= end {
                            break;
                        }
                        now
                    }
                    Some(interval) => {
                        let slot = next_slot.fetch_add(1, Ordering::Relaxed);
                        let intended = start + slot_offset(interval, slot);
                        if intended >= end {
                            break;
                        }
                        if intended > now {
                            tokio::time::sleep_until(intended.into()).await;
                            // Early: the timer's lateness is not the server's.
                            Instant::now()
                        } else if now >= end {
                            break;
                        } else {
                            // Late: the queueing is part of the latency.
                            intended
                        }
                    }
                };
                rec.measuring = begin >= measure_from;
                worker.step(begin, &mut rec).await;
            }
            rec
        }));
    }
    let mut recorder = Recorder::new(live.clone());
    for task in tasks {
        match task.await {
            Ok(rec) => recorder.merge(&rec),
            Err(e) => eprintln!("a worker failed: {e}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let window = cfg.duration;
    let (scheduled, missed) = match interval {
        None => (0, 0),
        Some(interval) => {
            let first = slots_before(interval, cfg.warmup);
            let last = slots_before(interval, cfg.warmup + cfg.duration);
            let scheduled = last - first;
            (scheduled, scheduled.saturating_sub(recorder.ops()))
        }
    };
    RunResult { recorder, window, scheduled, missed }
}

fn slot_offset(interval: Duration, slot: u64) -> Duration {
    Duration::from_nanos(u64::try_from(interval.as_nanos().saturating_mul(u128::from(slot))).unwrap_or(u64::MAX))
}

/// Number of slots whose intended time is before `offset`.
fn slots_before(interval: Duration, offset: Duration) -> u64 {
    let n = offset.as_nanos().div_ceil(interval.as_nanos().max(1));
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn progress_bar(cfg: &LoadConfig, live: Arc<Live>, start: Instant) -> Option<ProgressBar> {
    if !cfg.progress {
        return None;
    }
    let total = cfg.warmup + cfg.duration;
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(total.as_millis()).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = ProgressStyle::default_bar().template("{spinner} [{bar:30}] {elapsed} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let ticker = bar.clone();
    let warmup = cfg.warmup;
    tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        while !ticker.is_finished() {
            tick.tick().await;
            let now = Instant::now();
            let elapsed = now.duration_since(start);
            ticker.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            let requests = live.requests.load(Ordering::Relaxed);
            let rate = (requests - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, requests);
            let phase = if elapsed < warmup { "warm-up" } else { "measuring" };
            ticker.set_message(format!(
                "{phase}: {rate:.0} req/s, {requests} requests, {} errors",
                live.errors.load(Ordering::Relaxed)
            ));
        }
    });
    Some(bar)
}
